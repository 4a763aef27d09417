//! Assembles each Lua script (shared prelude + body) and its SHA-1, so components can call
//! `EVALSHA` without hashing at run time (every request is a fresh wasm instance). Every
//! `lua/<name>.lua` but the prelude becomes a constant `<NAME>`, so a new script is a new file.
use std::{env, fs, path::PathBuf};

/// Scripts that do not touch the roaring structure ship without the prelude.
const STANDALONE: &[&str] = &["session", "post", "rate"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let prelude = fs::read_to_string("lua/roaring.lua").expect("read lua/roaring.lua");
    println!("cargo:rerun-if-changed=lua");
    let mut names: Vec<String> = fs::read_dir("lua")
        .expect("read lua/")
        .filter_map(|e| {
            let path = e.expect("lua/ entry").path();
            let stem = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "lua" && stem != "roaring").then_some(stem)
        })
        .collect();
    names.sort();
    let mut consts = String::new();
    for name in &names {
        let with_prelude = !STANDALONE.contains(&name.as_str());
        let body = fs::read_to_string(format!("lua/{name}.lua")).expect("read script");
        // A `#!lua flags=…` line must stay the script's first line, ahead of the prelude.
        let (shebang, body) = match body.strip_prefix("#!") {
            Some(rest) => {
                let (line, rest) = rest.split_once('\n').unwrap_or((rest, ""));
                (format!("#!{line}\n"), rest.to_owned())
            }
            None => (String::new(), body),
        };
        let source = if with_prelude {
            format!("{shebang}{prelude}\n{body}")
        } else {
            format!("{shebang}{body}")
        };
        let sha = sha1_smol::Sha1::from(source.as_bytes())
            .digest()
            .to_string();
        fs::write(out.join(format!("{name}.lua")), &source).expect("write script");
        let upper = name.to_uppercase();
        consts.push_str(&format!(
            "/// The `{name}` script (see `lua/{name}.lua`).\npub const {upper}: Script = Script {{ name: \"{name}\", source: include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}.lua\")), sha1: \"{sha}\" }};\n"
        ));
    }
    let all: Vec<String> = names.iter().map(|n| n.to_uppercase()).collect();
    consts.push_str(&format!(
        "/// Every script, for `SCRIPT LOAD` at start-up and for tests.\npub const ALL: &[Script] = &[{}];\n",
        all.join(", ")
    ));
    fs::write(out.join("scripts.rs"), consts).expect("write scripts.rs");
}

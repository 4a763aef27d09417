//! Assembles each Lua script (shared prelude + body) and its SHA-1, so components can call
//! `EVALSHA` without hashing at run time (every request is a fresh wasm instance).
use std::{env, fs, path::PathBuf};

const WITH_PRELUDE: &[&str] = &["like", "likers", "cardinality", "contains"];
const STANDALONE: &[&str] = &["session"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let prelude = fs::read_to_string("lua/roaring.lua").expect("read lua/roaring.lua");
    println!("cargo:rerun-if-changed=lua");
    let mut consts = String::new();
    for (name, with_prelude) in WITH_PRELUDE
        .iter()
        .map(|n| (n, true))
        .chain(STANDALONE.iter().map(|n| (n, false)))
    {
        let body = fs::read_to_string(format!("lua/{name}.lua")).expect("read script");
        let source = if with_prelude {
            format!("{prelude}\n{body}")
        } else {
            body
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
    fs::write(out.join("scripts.rs"), consts).expect("write scripts.rs");
}

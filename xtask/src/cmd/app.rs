//! `cargo xtask build-app`: the Yew web app, built offline into `yew-app/dist/` (what the
//! edge's static component serves at `/`): `cargo build` for wasm32-unknown-unknown, plain
//! `wasm-bindgen --target web` (the CLI installed at exactly the version in Cargo.lock),
//! `wasm-opt` from the pinned npm `binaryen`, and content-hashed file names so every asset but
//! `index.html` can be cached for a year.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::tools::{self, cargo, root};

/// The app's crate and where its build ends up.
const CRATE: &str = "yew-app";
const PROFILE: &str = "app";

/// Sizes of what the first page loads, in bytes.
#[derive(Debug)]
pub struct Sizes {
    pub files: Vec<(String, u64, u64)>,
}

impl Sizes {
    /// Total gzip bytes of the `.wasm` and JS the first page loads.
    pub fn gzip_total(&self) -> u64 {
        self.files
            .iter()
            .filter(|(n, ..)| n.ends_with(".wasm") || n.ends_with(".js"))
            .map(|(_, _, gz)| gz)
            .sum()
    }
}

/// Builds the app into `yew-app/dist/` and prints the sizes of what the first page loads.
pub fn build() -> anyhow::Result<Sizes> {
    tools::ensure_wasm_targets()?;
    let app_dir = root().join(CRATE);
    npm_ci(&app_dir)?;
    tools::run(cargo().args([
        "build",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        PROFILE,
        "-p",
        CRATE,
    ]))?;
    let wasm_bindgen = ensure_wasm_bindgen()?;

    let work = root().join("target/yew-app");
    let bindgen_dir = work.join("bindgen");
    if bindgen_dir.exists() {
        fs::remove_dir_all(&bindgen_dir).context("clearing target/yew-app/bindgen")?;
    }
    let input = root().join(format!(
        "target/wasm32-unknown-unknown/{PROFILE}/{CRATE}.wasm"
    ));
    tools::run(
        Command::new(&wasm_bindgen)
            .args(["--target", "web", "--no-typescript", "--out-name", "app"])
            .arg("--out-dir")
            .arg(&bindgen_dir)
            .arg(&input),
    )?;
    let mut wasm = bindgen_dir.join("app_bg.wasm");
    let wasm_opt = app_dir.join("node_modules/.bin/wasm-opt");
    if wasm_opt.is_file() {
        let optimised = work.join("app_bg.opt.wasm");
        // The features rustc enables by default for wasm32-unknown-unknown; wasm-opt must
        // accept them and may not introduce others.
        tools::run(
            Command::new(&wasm_opt)
                .args([
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-nontrapping-float-to-int",
                    "--enable-sign-ext",
                    "--enable-mutable-globals",
                    "--enable-reference-types",
                    "--enable-multivalue",
                ])
                .arg(&wasm)
                .arg("-o")
                .arg(&optimised),
        )?;
        wasm = optimised;
    } else {
        eprintln!("[xtask] wasm-opt not found under yew-app/node_modules; shipping unoptimised");
    }

    let dist = app_dir.join("dist");
    fs::create_dir_all(&dist).context("creating yew-app/dist")?;
    for entry in fs::read_dir(&dist).context("reading yew-app/dist")? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n != ".gitkeep") {
            if path.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
    }
    let wasm_name = emit(&dist, "app_bg", "wasm", &read(&wasm)?)?;
    let js_name = emit(&dist, "app", "js", &read(&bindgen_dir.join("app.js"))?)?;
    let socket_io = strip_source_map(&read(
        &app_dir.join("node_modules/socket.io-client/dist/socket.io.esm.min.js"),
    )?);
    let socket_name = emit(&dist, "socketio", "js", &socket_io)?;
    let css_name = emit(&dist, "style", "css", &read(&app_dir.join("style.css"))?)?;
    let index = fs::read_to_string(app_dir.join("index.html"))
        .context("reading index.html")?
        .replace("{{APP_JS}}", &js_name)
        .replace("{{APP_WASM}}", &wasm_name)
        .replace("{{SOCKET_IO}}", &socket_name)
        .replace("{{CSS}}", &css_name);
    fs::write(dist.join("index.html"), &index).context("writing index.html")?;

    let mut sizes = Sizes { files: Vec::new() };
    for name in [&js_name, &wasm_name, &socket_name, &css_name, "index.html"] {
        let bytes = read(&dist.join(name))?;
        sizes
            .files
            .push((name.to_owned(), bytes.len() as u64, gzip_len(&bytes)?));
    }
    for (name, raw, gz) in &sizes.files {
        eprintln!("[xtask]   {name:<40} {raw:>9} B  {gz:>8} B gzip");
    }
    eprintln!(
        "[xtask] yew-app/dist: first page loads {:.1} KB gzip of .wasm + JS (budget 400 KB)",
        sizes.gzip_total() as f64 / 1000.0
    );
    Ok(sizes)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `bytes` as `<stem>-<hash>.<ext>` and returns that name.
fn emit(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let digest = Sha256::digest(bytes);
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{stem}-{hash}.{ext}");
    fs::write(dir.join(&name), bytes).with_context(|| format!("writing {name}"))?;
    Ok(name)
}

/// The map file is not shipped, so its reference goes too (no 404 in the console).
fn strip_source_map(js: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(js);
    text.lines()
        .filter(|l| !l.starts_with("//# sourceMappingURL="))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn gzip_len(bytes: &[u8]) -> anyhow::Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().context("running gzip")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    Ok(out.stdout.len() as u64)
}

/// `npm ci` in `dir` unless `node_modules` already matches the lockfile.
pub fn npm_ci(dir: &Path) -> anyhow::Result<()> {
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (fs::metadata(&lock), fs::metadata(&installed)) {
        (Ok(l), Ok(i)) => match (l.modified(), i.modified()) {
            (Ok(l), Ok(i)) => i >= l,
            _ => false,
        },
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    if !tools::on_path("npm") {
        tools::apt_install("node and npm", &["nodejs", "npm"])?;
    }
    tools::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir),
    )
}

/// The wasm-bindgen version Cargo.lock pins (the CLI must match it exactly).
fn locked_wasm_bindgen_version() -> anyhow::Result<String> {
    let lock = fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            let version = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
                .context("Cargo.lock: wasm-bindgen without a version line")?;
            return Ok(version.to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

/// The `wasm-bindgen` CLI at the locked version, installed with cargo when missing or
/// different (this takes a few minutes, once).
fn ensure_wasm_bindgen() -> anyhow::Result<PathBuf> {
    let version = locked_wasm_bindgen_version()?;
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?
        .join("bin/wasm-bindgen");
    let installed = Command::new(&cargo_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed.as_deref() == Some(&format!("wasm-bindgen {version}")) {
        return Ok(cargo_bin);
    }
    eprintln!(
        "[xtask] installing wasm-bindgen-cli {version} (found {}); this takes a few minutes",
        installed.as_deref().unwrap_or("none")
    );
    let locked = tools::run(cargo().args([
        "install",
        "--locked",
        "wasm-bindgen-cli",
        "--version",
        &version,
    ]));
    if locked.is_err() {
        // Some releases' lockfiles name yanked crates; the unlocked resolution still builds.
        tools::run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    Ok(cargo_bin)
}

/// Debian's Chromium, which the end-to-end test drives through playwright-core.
pub fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new("/usr/bin/chromium").is_file() {
        return Ok(());
    }
    tools::apt_install(
        "Chromium (for the web app's end-to-end test)",
        &["chromium"],
    )
}

//! `cargo xtask test`: what CI runs. Lints, builds every wasm target, then runs every test in
//! release mode (one build of wasmtime serves the tests, `up` and the benchmarks).

use crate::tools::{self, cargo};

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_wasm_targets()?;
    tools::ensure_redis()?;
    tools::ensure_postgres()?;
    if !args.no_lint {
        tools::run(cargo().args(["fmt", "--all", "--check"]))?;
        clippy(&["--all-targets"])?;
        let mut wasm = vec!["--target", "wasm32-wasip2", "-p", "edge-kit"];
        let (components, test_components) = (tools::components()?, tools::test_components()?);
        for c in components.iter().chain(&test_components) {
            wasm.extend(["-p", c.as_str()]);
        }
        clippy(&wasm)?;
        // The web app: its browser code for the browser target, its pure modules and tests
        // natively (it is not a default member, so the workspace clippy above skips it).
        clippy(&["--target", "wasm32-unknown-unknown", "-p", "yew-app"])?;
        clippy(&["--all-targets", "-p", "yew-app"])?;
    }
    // The core crate must build for the browser too (the app reuses it).
    tools::run(cargo().args([
        "check",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "likes-core",
    ]))?;
    tools::build_components(true)?;
    // The edge's conformance tests and the app's end-to-end test also run on the real Spin.
    // Outside CI a missing Spin skips those (the tests say so in one line); in CI it fails.
    let spin = match tools::find_spin()? {
        Some(spin) => Some(spin),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => Some(tools::require_spin()?),
        None => None,
    };
    // The edge serves the built app at `/` (spin.toml), so it exists before any test starts.
    match &spin {
        // Every `[component.*.build]` of spin.toml, as a Spin user runs them: this builds the
        // web app too, and the tests then run the `.wasm` files `spin build` left.
        Some(spin) => tools::run(
            std::process::Command::new(spin)
                .args(["build", "--from"])
                .arg(tools::root().join("spin.toml")),
        )?,
        None => crate::cmd::app::build().map(drop)?,
    }
    // Every native binary and test, in the one build `cargo test` below reuses: the hub's edge
    // tests and the app's end-to-end test run the real service binaries it leaves in
    // target/release.
    tools::build_native()?;
    // The hub's tests drive the official Socket.IO JS client: install it once, up front, rather
    // than from several tests at the same moment.
    crate::cmd::app::npm_ci(&tools::root().join("realtime-hub/js"))?;
    let with_spin = |mut cmd: std::process::Command| {
        if let Some(spin) = &spin {
            cmd.env("SPIN", spin);
        }
        cmd
    };
    tools::run(with_spin(cargo()).args(["test", "--release"]))?;
    // The vendored engineioxide: its patch is in use, is the whole diff from crates.io, and
    // upstream's own tests pass on the patched crate.
    crate::cmd::vendor_check::run(Default::default())?;
    // The short chaos run: every service killed -9 once under load, on the binaries just built;
    // no acknowledged like may be lost or counted twice, every socket must converge.
    crate::cmd::chaos::run(crate::cmd::chaos::Args::short())?;
    // The app's unit tests and its end-to-end test in headless Chromium, which drives the
    // real edge host, realtime hub and load lab binaries built by the run above.
    crate::cmd::app::ensure_chromium()?;
    tools::run(with_spin(cargo()).args(["test", "--release", "-p", "yew-app"]))
}

/// `cargo clippy --release <args> -- -D warnings`: every lint is an error in CI.
fn clippy(args: &[&str]) -> anyhow::Result<()> {
    tools::run(
        cargo()
            .args(["clippy", "--release"])
            .args(args)
            .args(["--", "-D", "warnings"]),
    )
}

//! `cargo xtask test`: what CI runs. Lints, builds every wasm target, then runs every test in
//! release mode (one build of wasmtime serves the tests, `up` and the benchmarks).

use crate::tools::{self, COMPONENTS, TEST_COMPONENTS, cargo};

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
        tools::run(cargo().args([
            "clippy",
            "--release",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        let mut wasm = cargo();
        wasm.args([
            "clippy",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "edge-kit",
        ]);
        for c in COMPONENTS.iter().chain(TEST_COMPONENTS) {
            wasm.args(["-p", c]);
        }
        tools::run(wasm.args(["--", "-D", "warnings"]))?;
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
    tools::run(cargo().args(["test", "--release"]))
}

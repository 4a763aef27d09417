//! `cargo xtask <command>`: the two commands a newcomer needs (`up`, `test`) and the
//! benchmarks. Everything a command needs (wasm targets, redis-server) it installs or names in
//! one line.

mod acl;
mod cluster;
mod cmd;
mod proc;
mod stack;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Run, test and measure the likes system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build everything and run the system: Redis on 6380, the edge on 3000; Ctrl-C stops it.
    Up(cmd::up::Args),
    /// fmt, clippy, every wasm build, and every test against real servers (what CI runs).
    Test(cmd::test::Args),
    /// Build the Spin components (release, `component` profile).
    Build,
    /// Build the web app (Yew, wasm32-unknown-unknown) into yew-app/dist/, served at `/`.
    BuildApp,
    /// Benchmarks; results go to target/bench/ and are summarised in docs/BENCHMARKS.md.
    Bench(cmd::bench::Args),
    /// Load lab: a fresh system on free ports under `likes-load` (flags after `load` go to it).
    Load(cmd::load::Args),
    /// Chaos: load with a ledger while every service in turn is killed -9; audits every acked like.
    Chaos(cmd::chaos::Args),
    /// Soak: a steady mixed load for `--minutes`, every process's RSS sampled, memory slopes.
    Soak(cmd::soak::Args),
    /// Fuzz every `cargo fuzz` target in tools/fuzz/ for `--seconds` each (installs nightly, cargo-fuzz).
    Fuzz(cmd::fuzz::Args),
    /// Check vendor/engineioxide: patch in use, equals crates.io + the .patch, upstream tests pass.
    VendorCheck(cmd::vendor_check::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => cmd::up::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Build => tools::build_components(false),
        Command::BuildApp => cmd::app::build().map(drop),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Load(args) => cmd::load::run(args),
        Command::Fuzz(args) => cmd::fuzz::run(args),
        Command::Chaos(args) => cmd::chaos::run(args),
        Command::Soak(args) => cmd::soak::run(args),
        Command::VendorCheck(args) => cmd::vendor_check::run(args),
    }
}

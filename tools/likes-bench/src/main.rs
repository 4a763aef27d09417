//! Benchmark tools for the like path, driven by `cargo xtask bench likes`:
//!
//! - `drive`: closed-loop HTTP load (N keep-alive connections) of state-changing likes/unlikes;
//! - `redis`: the same script straight into Redis, the ceiling every HTTP path is compared to;
//! - `redis-benchmark`: the same script through `redis-benchmark` (no pipelining), the looser
//!   ceiling `shared/facts.md` used;
//! - `native`: the same like logic as a plain axum handler, the reference for the wasm host;
//! - `memory`: bytes per like of the dedupe structure vs a plain Redis SET;
//! - `seed`: the posts the like benchmarks cycle through;
//! - `upload`: a 12 MP photo through the edge's upload component vs the same pipeline natively;
//! - `heavy`: a light request's latency while clients upload tiny JPEGs declaring 7000×7000.
//!
//! Each prints one JSON object on stdout so xtask can tabulate and compute ratios.

mod drive;
mod heavy;
mod http1;
mod memory;
mod native;
mod redis_benchmark;
mod redis_ceiling;
mod seed;
mod upload;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "likes-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Drive(drive::Args),
    Redis(redis_ceiling::Args),
    RedisBenchmark(redis_benchmark::Args),
    Native(native::Args),
    Memory(memory::Args),
    Upload(upload::Args),
    Heavy(heavy::Args),
    Seed(seed::Args),
}

/// The native reference handler uses the same allocator as the edge host, so the comparison is
/// about wasm, not malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command;
    let runtime = match &command {
        Command::Drive(a) if a.threads == 1 => tokio::runtime::Builder::new_current_thread(),
        Command::Drive(a) if a.threads > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(a.threads);
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Drive(a) => drive::run(a).await,
        Command::Redis(a) => redis_ceiling::run(a).await,
        Command::RedisBenchmark(a) => redis_benchmark::run(a).await,
        Command::Native(a) => native::run(a).await,
        Command::Memory(a) => memory::run(a).await,
        Command::Upload(a) => upload::run(a).await,
        Command::Heavy(a) => heavy::run(a).await,
        Command::Seed(a) => seed::run(a).await,
    }
}

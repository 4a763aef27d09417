//! `edge-host` command line: parse flags, set up logging and metrics, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use edge_host::{Config, config, variables};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Runs the Spin HTTP components of a spin.toml on wasmtime, without a Spin install.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Path to the Spin manifest.
    #[arg(short = 'f', long, env = "EDGE_MANIFEST", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address for the public HTTP listener.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Address for the admin listener (/metrics, /healthz); off when absent, and then no
    /// metrics are kept.
    #[arg(long, env = "EDGE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Variable override `name=value` (repeatable); wins over SPIN_VARIABLE_<NAME>.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "EDGE_MAX_BODY_BYTES", default_value_t = config::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: u64,
    /// Wall-time limit per request, in milliseconds.
    #[arg(long, env = "EDGE_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Linear-memory limit per instance, in MiB.
    #[arg(long, env = "EDGE_MEMORY_LIMIT_MIB", default_value_t = config::DEFAULT_MEMORY_LIMIT_BYTES >> 20)]
    memory_limit_mib: usize,
    /// Maximum live instances (pooling allocator size); extra requests wait.
    #[arg(long, env = "EDGE_MAX_INSTANCES", default_value_t = config::DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// Shared Redis connections per address.
    #[arg(long, env = "EDGE_REDIS_CONNECTIONS", default_value_t = config::DEFAULT_REDIS_CONNECTIONS)]
    redis_connections: usize,
    /// Serving threads, each with its own event loop and Redis connections; 0 means one per CPU.
    #[arg(long, env = "EDGE_WORKERS", default_value_t = 0)]
    workers: usize,
    /// Seconds in-flight requests get after SIGINT/SIGTERM.
    #[arg(long, env = "EDGE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Disable wasmtime's on-disk compilation cache.
    #[arg(long)]
    no_compilation_cache: bool,
    /// Write a perf map (`/tmp/perf-<pid>.map`) so `perf report` names the guests' functions.
    #[arg(long, env = "EDGE_PERFMAP")]
    perfmap: bool,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.manifest);
        config.variables = variables::overrides_from_env(std::env::vars_os());
        for pair in &self.variables {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--variable {pair:?}: expected NAME=VALUE"))?;
            config
                .variables
                .insert(name.to_ascii_lowercase(), value.to_owned());
        }
        config.max_body_bytes = self.max_body_bytes;
        config.request_timeout = Duration::from_millis(self.request_timeout_ms);
        config.memory_limit_bytes = self.memory_limit_mib.saturating_mul(1024 * 1024);
        config.max_instances = self.max_instances;
        config.redis_connections_per_address = self.redis_connections;
        config.workers = self.workers;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config.compilation_cache = !self.no_compilation_cache;
        config.perfmap = self.perfmap;
        Ok(config)
    }
}

/// Per-request instances allocate and free many small objects (resource tables, lowered lists,
/// hyper and tokio state); mimalloc's thread-local free lists cut that cost against glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("info,wasmtime=warn,cranelift=warn");

    let cli = Cli::parse();
    let listen = cli.listen;
    let admin_listen = cli.admin_listen;
    let mut config = cli.into_config()?;

    let buckets = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    // Metrics are kept only when the admin listener can serve them: the recorder holds every
    // histogram sample until an upkeep drains it, and only the admin server runs upkeep.
    if admin_listen.is_some() {
        let handle = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .context("invalid histogram buckets")?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        config.metrics = Some(handle);
    }

    let (listener, admin) = service_kit::bind_listeners(listen, admin_listen).await?;
    edge_host::run(listener, admin, config, service_kit::shutdown_signal()).await
}

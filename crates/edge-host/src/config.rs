//! Host configuration: what `main` builds from flags and the environment, and tests build directly.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// Default request body limit: 10 MiB, counted on the bytes actually received.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Default wall-time limit per request (Fermyon Cloud's 30 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default linear-memory limit per instance: the upload pipeline's decode budget (256 MiB, enough
/// for a 50 MP image) plus its working set. It is reserved, not committed: an instance only
/// touches what it allocates, and the pool keeps 2 MiB resident per slot.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 384 * 1024 * 1024;
/// Default pool size: the maximum number of live instances (concurrent requests in wasm).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
/// Default number of shared Redis connections per address.
pub const DEFAULT_REDIS_CONNECTIONS: usize = 4;
/// Default time in-flight requests get to finish after shutdown starts.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything [`crate::run`] needs besides its listeners.
///
/// `Debug` lists variable names only: values may be secrets.
#[derive(Clone)]
pub struct Config {
    /// Path to `spin.toml`.
    pub manifest: PathBuf,
    /// Application variable overrides, by lowercase name (`SPIN_VARIABLE_<NAME>` in `main`).
    pub variables: HashMap<String, String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: u64,
    /// Wall-time limit for a request, from routing to the end of the guest's work.
    pub request_timeout: Duration,
    /// Linear-memory limit per instance, in bytes.
    pub memory_limit_bytes: usize,
    /// Maximum number of live instances; requests beyond it wait for a free slot.
    pub max_instances: u32,
    /// Shared Redis connections per address (round-robin).
    pub redis_connections_per_address: usize,
    /// Serving threads (each a single-threaded event loop with its own Redis connections);
    /// 0 means one per available CPU.
    pub workers: usize,
    /// How long in-flight requests may run after shutdown is requested.
    pub shutdown_grace: Duration,
    /// Use wasmtime's on-disk compilation cache (`$HOME/.cache/wasmtime` by default).
    pub compilation_cache: bool,
    /// Write `/tmp/perf-<pid>.map` so `perf` names the compiled guest functions it samples.
    pub perfmap: bool,
    /// Handle of the globally installed Prometheus recorder, rendered at `/metrics`.
    pub metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.variables.keys().collect();
        names.sort();
        f.debug_struct("Config")
            .field("manifest", &self.manifest)
            .field("variables", &names)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("memory_limit_bytes", &self.memory_limit_bytes)
            .field("max_instances", &self.max_instances)
            .field(
                "redis_connections_per_address",
                &self.redis_connections_per_address,
            )
            .field("workers", &self.workers)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("compilation_cache", &self.compilation_cache)
            .field("perfmap", &self.perfmap)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Config {
    /// The number of serving threads: `workers`, or one per available CPU when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// A configuration for `manifest` with every limit at its default.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            variables: HashMap::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
            redis_connections_per_address: DEFAULT_REDIS_CONNECTIONS,
            workers: 0,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            compilation_cache: true,
            perfmap: false,
            metrics: None,
        }
    }

    /// Adds a variable override (the name is lowercased, as Spin does).
    pub fn variable(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables
            .insert(name.to_ascii_lowercase(), value.into());
        self
    }
}

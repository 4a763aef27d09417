//! Everything the daemon can be told, in one plain struct that `main` fills from flags and
//! environment and tests fill directly.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// Daemon configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://host:port` of the Redis the edge writes to.
    pub redis_url: String,
    /// `postgres://user@host:port/db` of the record.
    pub postgres_url: String,
    /// Streams to consume; every stream (`likes_core::keys::all_streams()`) by default.
    pub streams: Vec<String>,
    /// Consumer group name (one group = one independent reader of every stream).
    pub group: String,
    /// This consumer's name inside the group. Keep it stable across restarts: entries delivered
    /// but not acknowledged stay in this consumer's pending list and are re-read from there.
    pub consumer: String,
    /// Entries pending at another consumer for this long are taken over (XAUTOCLAIM): that
    /// consumer is presumed dead.
    pub claim_idle: Duration,
    /// A batch closes at this many events...
    pub batch_max: usize,
    /// ...or this long after its first event arrived, whichever comes first.
    pub batch_wait: Duration,
    /// How long one blocking read waits for a first event (bounds shutdown latency).
    pub idle_block: Duration,
    /// PostgreSQL connections in the pool.
    pub pg_pool_size: usize,
    /// Run the embedded migrations before consuming.
    pub migrate: bool,
    /// First and longest retry delay when Redis or PostgreSQL fails.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Where to serve `/metrics` and `/healthz`; none when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// The installed Prometheus recorder, rendered by `/metrics` (installed by `main`; a
    /// process has one global recorder, so tests leave it out).
    pub metrics: Option<PrometheusHandle>,
    /// How often the backlog per stream is sampled into `sync_lag_entries`.
    pub lag_sample_every: Duration,
    /// Trim streams below what every group has committed, keeping entries younger than this
    /// (a replay window); `None` never trims.
    pub trim_keep: Option<Duration>,
    /// How often streams are trimmed.
    pub trim_every: Duration,
    /// Reconcile recently active posts this often; `None` never reconciles.
    pub reconcile_every: Option<Duration>,
    /// Fault injection for crash tests; never set in production.
    pub fault: Fault,
}

/// Deliberate crashes at the points that matter for exactly-once, so tests can prove that a
/// crash there loses nothing and applies nothing twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Exit the process (code [`FAULT_EXIT_CODE`]) right after the Nth committed batch, before
    /// its `XACK`: the worst place to die.
    ExitAfterCommitBeforeAck(u64),
}

/// Exit code of an injected crash, so tests can tell it from a real failure.
pub const FAULT_EXIT_CODE: i32 = 86;

impl Config {
    /// Defaults for everything but the two URLs.
    pub fn new(redis_url: impl Into<String>, postgres_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            postgres_url: postgres_url.into(),
            streams: likes_core::keys::all_streams(),
            group: "sync-daemon".into(),
            consumer: "sync-daemon-1".into(),
            claim_idle: Duration::from_secs(10),
            batch_max: 1000,
            batch_wait: Duration::from_millis(50),
            idle_block: Duration::from_millis(1000),
            pg_pool_size: 8,
            migrate: true,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            admin_listen: None,
            metrics: None,
            lag_sample_every: Duration::from_secs(5),
            trim_keep: None,
            trim_every: Duration::from_secs(10),
            reconcile_every: None,
            fault: Fault::None,
        }
    }
}

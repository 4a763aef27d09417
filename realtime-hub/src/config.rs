//! Runtime configuration of the hub, built by `main` from flags/env and by tests directly.

use std::time::Duration;

/// Default coalescing window: at most one `likes:updated` per post per window.
pub const DEFAULT_COALESCE_WINDOW: Duration = Duration::from_millis(100);
/// Default cap on the posts (rooms) one socket may be subscribed to, from the contract.
pub const DEFAULT_MAX_POSTS_PER_SOCKET: usize = likes_core::api::realtime::MAX_POSTS_PER_SOCKET;
/// Default largest Engine.IO payload a client may send; 500 wire ids fit in ~12 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// Default `subscribe`/`unsubscribe` events allowed per socket per second (the burst is twice
/// that).
pub const DEFAULT_EVENTS_PER_SECOND: u32 = 20;
/// Default time between the Engine.IO pings the hub sends every client (the protocol's 25 s).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// Default time a client has to answer a ping before the hub closes it (the protocol's 20 s).
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Which browser origins may reach the hub cross-origin (long-polling needs CORS; WebSocket
/// does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin (`*`), for development.
    Any,
    /// Exactly these origins, e.g. `http://127.0.0.1:3000`.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses flag values: `*` anywhere means any origin.
    pub fn from_values(values: &[String]) -> Self {
        if values.iter().any(|v| v.trim() == "*") {
            Self::Any
        } else {
            Self::List(values.iter().map(|v| v.trim().to_owned()).collect())
        }
    }
}

/// Everything `run` needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://host:port` of the Redis that the edge publishes `like_event`/`post_event` on
    /// and that holds the post hashes.
    pub redis_url: String,
    /// Per-post coalescing window (zero disables coalescing).
    pub coalesce_window: Duration,
    /// Cap on posts one socket may be subscribed to.
    pub max_posts_per_socket: usize,
    /// Largest Engine.IO payload accepted from a client, in bytes.
    pub max_payload_bytes: u64,
    /// Client events allowed per socket per second (0 disables the limit).
    pub events_per_second: u32,
    /// Time between the Engine.IO pings sent to every client.
    pub ping_interval: Duration,
    /// Time a client has to answer a ping before its connection is closed.
    pub ping_timeout: Duration,
    /// Origins allowed by CORS.
    pub cors_origins: CorsOrigins,
    /// First delay before reconnecting to Redis; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest delay between Redis reconnect attempts.
    pub reconnect_max: Duration,
    /// How often the Pub/Sub connection is pinged, so a silently dead link is noticed.
    pub redis_ping_interval: Duration,
    /// Time connections get to close after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Config {
    /// The defaults, with the given Redis URL.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            coalesce_window: DEFAULT_COALESCE_WINDOW,
            max_posts_per_socket: DEFAULT_MAX_POSTS_PER_SOCKET,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            cors_origins: CorsOrigins::List(vec![
                "http://127.0.0.1:3000".to_owned(),
                "http://localhost:3000".to_owned(),
            ]),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            redis_ping_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

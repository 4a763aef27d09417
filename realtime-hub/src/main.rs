//! `realtime-hub` command line: parse flags/env, set up logging, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use realtime_hub::{Config, CorsOrigins};

/// Socket.IO hub: relays live like counts from Redis Pub/Sub to browsers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on (Socket.IO, /healthz).
    #[arg(long, env = "HUB_LISTEN", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Address for the admin listener (/metrics, /healthz); off when absent. Keep it private.
    #[arg(long, env = "HUB_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Redis URL (Pub/Sub and count reads).
    #[arg(long, env = "HUB_REDIS_URL", default_value = "redis://127.0.0.1:6380")]
    redis_url: String,
    /// Per-post coalescing window, e.g. `100ms` (`0s` disables coalescing).
    #[arg(long, env = "HUB_COALESCE_WINDOW", default_value = "100ms", value_parser = humantime::parse_duration)]
    coalesce_window: Duration,
    /// Allowed CORS origin (repeatable or comma-separated; `*` for any).
    #[arg(
        long = "cors-origin",
        env = "HUB_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:3000,http://localhost:3000"
    )]
    cors_origins: Vec<String>,
    /// Most posts one socket may subscribe to.
    #[arg(long, env = "HUB_MAX_POSTS_PER_SOCKET", default_value_t = realtime_hub::config::DEFAULT_MAX_POSTS_PER_SOCKET)]
    max_posts_per_socket: usize,
    /// Largest client payload, in bytes.
    #[arg(long, env = "HUB_MAX_PAYLOAD_BYTES", default_value_t = realtime_hub::config::DEFAULT_MAX_PAYLOAD_BYTES)]
    max_payload_bytes: u64,
    /// Client events allowed per socket per second (0 = unlimited).
    #[arg(long, env = "HUB_EVENTS_PER_SECOND", default_value_t = realtime_hub::config::DEFAULT_EVENTS_PER_SECOND)]
    events_per_second: u32,
    /// Time between Engine.IO pings to every client, e.g. `25s`.
    #[arg(long, env = "HUB_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// Time a client has to answer a ping before it is disconnected, e.g. `20s`.
    #[arg(long, env = "HUB_PING_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    ping_timeout: Duration,
    /// Seconds connections get to close after SIGINT/SIGTERM.
    #[arg(long, env = "HUB_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    shutdown_grace_secs: u64,
}

impl Cli {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.redis_url);
        config.coalesce_window = self.coalesce_window;
        config.cors_origins = CorsOrigins::from_values(&self.cors_origins);
        config.max_posts_per_socket = self.max_posts_per_socket;
        config.max_payload_bytes = self.max_payload_bytes;
        config.events_per_second = self.events_per_second;
        config.ping_interval = self.ping_interval;
        config.ping_timeout = self.ping_timeout;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("info");
    let cli = Cli::parse();
    let listen = cli.listen;
    let admin_listen = cli.admin_listen;
    let config = cli.into_config();
    let (listener, admin) = service_kit::bind_listeners(listen, admin_listen).await?;
    realtime_hub::run(listener, admin, config, service_kit::shutdown_signal()).await
}

//! `sync-daemon`: the CLI over [`sync_daemon::run`].

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sync_daemon::{Config, Fault};

#[derive(Parser)]
#[command(
    version,
    about = "Drains the Redis event streams into PostgreSQL exactly once"
)]
struct Cli {
    /// Redis the edge writes to.
    #[arg(
        long,
        env = "LIKES_REDIS_URL",
        default_value = "redis://127.0.0.1:6380",
        global = true
    )]
    redis_url: String,
    /// PostgreSQL, the record.
    #[arg(
        long,
        env = "LIKES_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5433/likes",
        global = true
    )]
    database_url: String,
    /// Streams to consume, comma-separated (default: all 17).
    #[arg(long, env = "SYNC_STREAMS", value_delimiter = ',')]
    streams: Vec<String>,
    /// Consumer group.
    #[arg(long, env = "SYNC_GROUP", default_value = "sync-daemon")]
    group: String,
    /// Consumer name; keep it stable across restarts.
    #[arg(long, env = "SYNC_CONSUMER", default_value = "sync-daemon-1")]
    consumer: String,
    /// Largest batch (events per transaction).
    #[arg(long, env = "SYNC_BATCH_MAX", default_value_t = 1000)]
    batch_max: usize,
    /// Longest wait for a batch to fill after its first event, in ms.
    #[arg(long, env = "SYNC_BATCH_WAIT_MS", default_value_t = 50)]
    batch_wait_ms: u64,
    /// PostgreSQL pool size.
    #[arg(long, env = "SYNC_PG_POOL", default_value_t = 8)]
    pg_pool: usize,
    /// Serve `/metrics` and `/healthz` here (e.g. 127.0.0.1:3003); off when absent.
    #[arg(long, env = "SYNC_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Take over entries pending at another consumer after this many ms idle.
    #[arg(long, env = "SYNC_CLAIM_IDLE_MS", default_value_t = 10_000)]
    claim_idle_ms: u64,
    /// Trim streams below what every group has committed, keeping entries younger than this
    /// many seconds (0: never trim).
    #[arg(long, env = "SYNC_TRIM_KEEP_SECS", default_value_t = 3600)]
    trim_keep_secs: u64,
    /// Reconcile recently active posts every this many seconds (0: never).
    #[arg(long, env = "SYNC_RECONCILE_SECS", default_value_t = 30)]
    reconcile_secs: u64,
    /// Do not run migrations at start.
    #[arg(long)]
    no_migrate: bool,
    /// Fault injection for crash tests: exit after the Nth committed batch, before its XACK.
    #[arg(long, hide = true, env = "SYNC_FAULT_EXIT_AFTER_COMMIT")]
    fault_exit_after_commit: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the streams (the default).
    Run,
    /// Apply the migrations and exit.
    Migrate,
    /// After a Redis loss: rebuild users, posts, feeds, counts, likers and images in Redis from
    /// PostgreSQL, then exit. Run it before the edge takes traffic again; safe to repeat.
    Rehydrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("info");
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Migrate) => return sync_daemon::migrate::migrate(&cli.database_url).await,
        Some(Command::Rehydrate) => {
            if !cli.no_migrate {
                sync_daemon::migrate::migrate(&cli.database_url).await?;
            }
            let s = sync_daemon::rehydrate::rehydrate(&cli.database_url, &cli.redis_url).await?;
            println!(
                "rehydrated in {} ms: {} users, {} posts (+{} counts without a post), {} likes, \
                 {} recent likers lists, {} image variants",
                s.millis, s.users, s.posts, s.counts_only, s.likes, s.recent_lists, s.images
            );
            return Ok(());
        }
        Some(Command::Run) | None => {}
    }
    let mut config = Config::new(cli.redis_url, cli.database_url);
    if !cli.streams.is_empty() {
        config.streams = cli.streams;
    }
    config.group = cli.group;
    config.consumer = cli.consumer;
    config.batch_max = cli.batch_max.max(1);
    config.batch_wait = Duration::from_millis(cli.batch_wait_ms);
    config.pg_pool_size = cli.pg_pool;
    config.migrate = !cli.no_migrate;
    config.claim_idle = Duration::from_millis(cli.claim_idle_ms);
    config.reconcile_every =
        (cli.reconcile_secs > 0).then(|| Duration::from_secs(cli.reconcile_secs));
    config.trim_keep = (cli.trim_keep_secs > 0).then(|| Duration::from_secs(cli.trim_keep_secs));
    config.admin_listen = cli.admin_listen;
    if config.admin_listen.is_some() {
        let buckets = [
            1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
        ];
        config.metrics = Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&buckets)
                .context("invalid histogram buckets")?
                .install_recorder()
                .context("cannot install the metrics recorder")?,
        );
    }
    if let Some(n) = cli.fault_exit_after_commit {
        config.fault = Fault::ExitAfterCommitBeforeAck(n);
    }
    sync_daemon::run(config, service_kit::shutdown_signal()).await?;
    Ok(())
}

//! The sync daemon: drains the Redis event streams (`likes_core::keys::all_streams()`) into
//! PostgreSQL with an exactly-once effect.
//!
//! Per stream: a consumer group read, batches of up to `batch_max` entries or `batch_wait`,
//! one transaction per batch that applies the folded like rows, moves counts by the rows that
//! really changed, upserts users, inserts posts with their images and writes the stream
//! checkpoint; `XACK` only after COMMIT; entries at or below the checkpoint are skipped. See
//! `apply` and `consumer`; `rehydrate` goes the other way, PostgreSQL to Redis.
//!
//! `main` is a thin CLI over [`run`], which tests call in-process.

pub mod admin;
pub mod apply;
pub mod checkpoint;
pub mod config;
pub mod consumer;
pub mod lag;
pub mod migrate;
pub mod reconcile;
pub mod rehydrate;
pub mod trim;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;

pub use config::{Config, FAULT_EXIT_CODE, Fault};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0:#}")]
    Config(anyhow::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("a consumer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the daemon until `shutdown` resolves. PostgreSQL or Redis being down is not an error:
/// the daemon waits (migrations included) and catches up. On shutdown the batch in flight is
/// either committed or left pending in Redis, never half-applied.
///
/// Several daemons (same group, distinct `consumer` names) may share streams safely; splitting
/// `streams` between them is cheaper (no waiting on each other's pending entries).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let pool = pool(&config).map_err(Error::Config)?;
    let redis = service_kit::redis::Redis::open(config.redis_url.as_str())
        .context("redis url")
        .map_err(Error::Config)?;

    let health = Arc::new(admin::Health::default());
    let mut admin_task = None;
    if let Some(addr) = config.admin_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let (h, m, stop) = (health.clone(), config.metrics.clone(), stop_rx.clone());
        admin_task = Some(tokio::spawn(async move {
            if let Err(e) = admin::serve(listener, h, m, stop).await {
                tracing::error!(error = format!("{e:#}"), "admin listener failed");
            }
        }));
        tokio::spawn(lag::sample_lag(
            redis.clone(),
            config.streams.clone(),
            config.group.clone(),
            config.lag_sample_every,
            stop_rx.clone(),
        ));
    }

    if config.migrate && !migrate_until_done(&config, &health, stop_rx.clone()).await {
        return Ok(());
    }

    let shared = Arc::new(consumer::Shared {
        config: config.clone(),
        pool,
        redis,
        commits: 0.into(),
        health,
        recent: Default::default(),
    });
    if let Some(every) = config.reconcile_every {
        tokio::spawn(reconcile_loop(shared.clone(), every, stop_rx.clone()));
    }
    if let Some(keep) = config.trim_keep {
        tokio::spawn(trim_loop(shared.clone(), keep, stop_rx.clone()));
    }
    tracing::info!(streams = config.streams.len(), group = %config.group, consumer = %config.consumer, "consuming");
    let tasks: Vec<_> = config
        .streams
        .iter()
        .map(|s| {
            tokio::spawn(consumer::run_stream(
                shared.clone(),
                s.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    if let Some(t) = admin_task {
        t.await?;
    }
    Ok(())
}

/// Retries migrations until they succeed; false when shut down first.
async fn migrate_until_done(
    config: &Config,
    health: &admin::Health,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let mut delay = config.backoff_min;
    loop {
        match migrate::migrate(&config.postgres_url).await {
            Ok(()) => {
                health
                    .postgres
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                health
                    .postgres
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = format!("{e:#}"), "migrations failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return false,
        }
        delay = (delay * 2).min(config.backoff_max);
    }
}

fn pool(config: &Config) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = config.postgres_url.parse().context("postgres url")?;
    pg.connect_timeout(Duration::from_secs(3));
    pg.application_name("sync-daemon");
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pg_pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(5)))
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .context("building the PostgreSQL pool")
}

/// Trims every stream every `trim_every`, below what all groups have committed.
async fn trim_loop(shared: Arc<consumer::Shared>, keep: Duration, mut stop: watch::Receiver<bool>) {
    let cfg = &shared.config;
    let mut conn = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(cfg.trim_every) => {}
            _ = stop.changed() => return,
        }
        if conn.is_none() {
            conn = shared.redis.connect(&Default::default()).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        for stream in &cfg.streams {
            match trim::trim_once(&shared.pool, c, stream, keep, now_ms).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("sync_trimmed_total", "stream" => stream.clone())
                        .increment(n);
                    tracing::debug!(%stream, removed = n, "trimmed");
                }
                Err(e) => {
                    tracing::warn!(%stream, error = format!("{e:#}"), "trimming failed");
                    conn = None;
                    break;
                }
            }
        }
    }
}

/// Reconciles the posts touched since the last round, every `every`; posts that cannot be
/// compared yet (not drained, raced, errors) wait for the next round.
async fn reconcile_loop(
    shared: Arc<consumer::Shared>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let posts: Vec<likes_core::PostId> = match shared.recent.lock() {
            Ok(mut recent) => recent.drain().collect(),
            Err(_) => return,
        };
        if posts.is_empty() {
            continue;
        }
        if conn.is_none() {
            // Its own connection: the repair uses WATCH, which is per connection. Rebuilding a
            // big post's likers is one long MULTI, so replies may take seconds. On a cluster no
            // command is retried: a retry after a failover would reach the new primary, where
            // the WATCH was never made, and EXEC there would not be conditional.
            let options = service_kit::redis::Options {
                response_timeout: Duration::from_secs(60),
                cluster_retries: 0,
                ..Default::default()
            };
            conn = shared.redis.connect(&options).await.ok();
        }
        let mut retry = Vec::new();
        for post in posts {
            let Some(c) = conn.as_mut() else {
                retry.push(post);
                continue;
            };
            match reconcile::reconcile_post(&shared.pool, c, post).await {
                Ok(reconcile::Outcome::NotDrained | reconcile::Outcome::Raced) => retry.push(post),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        post = post.get(),
                        error = format!("{e:#}"),
                        "reconciliation failed"
                    );
                    conn = None;
                    retry.push(post);
                }
            }
        }
        if let Ok(mut recent) = shared.recent.lock() {
            recent.extend(retry);
        }
    }
}

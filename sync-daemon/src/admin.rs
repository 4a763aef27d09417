//! The admin listener: Prometheus `/metrics` and `/healthz`, plus the lag sampler that feeds
//! `sync_lag_entries`.
//!
//! Metrics (all labelled by `stream` where it applies): `sync_events_applied_total`,
//! `sync_events_skipped_total` (at or below the checkpoint: re-deliveries after a crash),
//! `sync_events_parked_total`, `sync_batches_total`, `sync_batch_size` (histogram),
//! `sync_lag_seconds` (age of the newest committed entry when it was committed),
//! `sync_lag_entries` (entries not yet delivered + delivered but unacknowledged),
//! `sync_errors_total{kind=redis|postgres}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Whether the last attempt to reach each dependency worked; `/healthz` reports it.
#[derive(Debug)]
pub struct Health {
    pub redis: AtomicBool,
    pub postgres: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            redis: AtomicBool::new(true),
            postgres: AtomicBool::new(true),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    health: Arc<Health>,
    metrics: Option<PrometheusHandle>,
}

/// Serves `/metrics` and `/healthz` on `listener` until shutdown.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Option<PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .with_state(AdminState { health, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving the admin endpoints")
}

async fn healthz(State(s): State<AdminState>) -> (StatusCode, String) {
    let redis = s.health.redis.load(Ordering::Relaxed);
    let postgres = s.health.postgres.load(Ordering::Relaxed);
    let status = if redis && postgres {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "down" };
    (
        status,
        format!("redis {}\npostgres {}\n", word(redis), word(postgres)),
    )
}

async fn render(State(s): State<AdminState>) -> String {
    match s.metrics {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => "# no metrics recorder installed\n".to_owned(),
    }
}

/// Samples each stream's backlog (`XINFO GROUPS`: lag + pending) every `every`.
pub async fn sample_lag(
    redis: redis::Client,
    streams: Vec<String>,
    group: String,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            conn = redis.get_multiplexed_async_connection().await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        for stream in &streams {
            let groups: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
                redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(stream)
                    .query_async(c)
                    .await;
            let Ok(groups) = groups else {
                conn = None;
                break;
            };
            let int = |g: &std::collections::HashMap<String, redis::Value>, k: &str| match g.get(k)
            {
                Some(redis::Value::Int(n)) => *n as f64,
                _ => 0.0,
            };
            if let Some(g) = groups.iter().find(|g| {
                matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes())
            }) {
                metrics::gauge!("sync_lag_entries", "stream" => stream.clone())
                    .set(int(g, "lag") + int(g, "pending"));
            }
        }
    }
}

//! The admin listener: Prometheus `/metrics` and `/healthz` (`sync_lag_entries` is sampled by
//! [`crate::lag`]).
//!
//! Metrics (all labelled by `stream` where it applies): `sync_events_applied_total`,
//! `sync_events_skipped_total` (at or below the checkpoint: re-deliveries after a crash),
//! `sync_events_parked_total`, `sync_batches_total`, `sync_batch_size` (histogram),
//! `sync_lag_seconds` (age of the newest committed entry when it was committed),
//! `sync_lag_entries` (entries not yet delivered + delivered but unacknowledged),
//! `sync_errors_total{kind=redis|postgres}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

//! `load-lab`: the control endpoint behind the app's Load lab page. A page starts a load run
//! over Socket.IO (`lab:start`), every connected page watches its progress (`lab:progress`)
//! and verdict (`lab:done`), and `lab:stop` ends the load early. The run is the load
//! generator itself ([`likes_load::run`]), one at a time, and only when the server was
//! started with the lab enabled.
//!
//! - [`lab`]: the one-run-at-a-time state, planning a run from a request, broadcasting.
//! - [`handlers`]: the Socket.IO events and their acks.
//! - [`config`]: what the lab targets and its caps.

pub mod config;
pub mod handlers;
pub mod lab;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::Config;
use lab::Lab;

/// Serves Socket.IO (`/socket.io/`) and `/healthz` on `listener` until `shutdown` resolves;
/// then stops a running run (waiting for its verdict up to the grace period), disconnects
/// every socket and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cors = cors_layer(&config.cors_origins)?;
    let enabled = config.enabled;
    let lab = Arc::new(Lab::new(config));
    let (layer, io) = SocketIo::builder()
        .with_state(Arc::clone(&lab))
        .build_layer();
    io.ns("/", handlers::on_connect.with(handlers::register));

    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(layer)
        .layer(cors);

    let addr = listener.local_addr().ok();
    tracing::info!(?addr, enabled, "load lab listening");
    let graceful = {
        let io = io.clone();
        let lab = Arc::clone(&lab);
        async move {
            shutdown.await;
            tracing::info!("shutting down: stopping the run, disconnecting sockets");
            lab.shutdown().await;
            io.close().await;
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .await
        .context("serving the load lab")?;
    tracing::info!("load lab stopped");
    Ok(())
}

/// The CORS policy for the configured origins (Socket.IO long-polling needs it; WebSocket
/// does not).
fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim())
                    .with_context(|| format!("invalid CORS origin {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE]))
}

//! `load-lab`: the control endpoint behind the app's Load lab page. A page starts a load run
//! over Socket.IO (`lab:start`), every connected page watches its progress (`lab:progress`)
//! and verdict (`lab:done`), and `lab:stop` ends the load early. The run is the load
//! generator itself ([`likes_load::run`]), one at a time, and only when the server was
//! started with the lab enabled.
//!
//! Only the app's own pages may drive it: every request's `Origin` must be an allowed one
//! ([`origin`]), and every Socket.IO connection must present the per-process lab key
//! ([`handlers::authenticate`]), which the app reads from the edge's same-origin
//! `/api/config`. A run larger than the lab's [`config::Limits`] is refused.
//!
//! - [`lab`]: the one-run-at-a-time state, planning and capping a run, broadcasting.
//! - [`handlers`]: the key check, the Socket.IO events and their acks.
//! - [`origin`]: the `Origin` check in front of Socket.IO, and CORS for the same origins.
//! - [`config`]: what the lab targets, its caps and its key.

pub mod config;
pub mod handlers;
pub mod lab;
pub mod origin;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;

pub use config::Config;
use lab::Lab;
use origin::AllowedOrigins;

/// Serves Socket.IO (`/socket.io/`) and `/healthz` on `listener` until `shutdown` resolves;
/// then stops a running run (waiting for its verdict up to the grace period), disconnects
/// every socket and returns. Refuses to start with invalid origins or limits.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let origins = Arc::new(AllowedOrigins::parse(&config.allowed_origins)?);
    if origins.any() {
        tracing::warn!(
            "--allowed-origin *: pages on any site may connect (the key still guards runs)"
        );
    }
    config
        .limits
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid lab limits")?;
    let enabled = config.enabled;
    let lab = Arc::new(Lab::new(config));
    let (layer, io) = SocketIo::builder()
        .with_state(Arc::clone(&lab))
        .build_layer();
    // The last `with` runs first: no handler is registered for a socket without the key.
    io.ns(
        "/",
        handlers::on_connect
            .with(handlers::register)
            .with(handlers::authenticate),
    );

    // Outermost first on the way in: the origin check, then CORS, then Socket.IO.
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(layer)
        .layer(origins.cors_layer())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&origins),
            origin::check,
        ));

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

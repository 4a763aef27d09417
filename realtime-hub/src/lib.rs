//! The realtime hub: relays like counts from Redis Pub/Sub to Socket.IO clients.
//!
//! - [`bridge`]: one task subscribed to every shard's `like_event`/`post_event` channel (on the
//!   node that owns it, on a cluster), subscribing again with backoff whenever messages may have
//!   been missed, and resyncing room counts each time.
//! - [`emitter`] + [`coalesce`]: per-post coalescing into `likes:updated` room emits.
//! - [`handlers`]: `subscribe`/`unsubscribe` with acks carrying current counts.
//! - [`metrics`]: Prometheus text at `/metrics` on the admin listener only, so nothing on the
//!   public Socket.IO port tells a stranger how busy the hub is; `/healthz` on both.
//! - [`serve`]: the HTTP/1.1 accept loop, tuned so an idle socket holds no request buffer.
//!
//! Every hub subscribes to Redis on its own, so N hubs behind any load balancer all deliver
//! every change to their own sockets; no sticky sessions are needed for WebSocket clients.

pub mod bridge;
pub mod coalesce;
pub mod config;
pub mod counts;
pub mod emitter;
pub mod handlers;
pub mod hub;
pub mod metrics;
pub mod rate;
pub mod serve;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use tokio::sync::mpsc;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::{Config, CorsOrigins};
use hub::{Hub, SharedHub};

/// Capacity of the bridge → emitter channel; when full the bridge stops reading Pub/Sub.
const CHANGES_CAPACITY: usize = 16 * 1024;

/// WebSocket read buffer per socket. Clients send little (pongs; a feed page's subscribe is a
/// few hundred bytes, the largest, 500 ids, ~12 KiB, is read in chunks and grows the buffer),
/// and every idle socket pays for the whole buffer: the default 4 KiB was ~4 KiB of RSS each.
pub const WS_READ_BUFFER_BYTES: usize = 256;

/// State of the plain HTTP routes.
#[derive(Clone)]
struct AppState {
    io: SocketIo,
    hub: SharedHub,
}

/// Serves Socket.IO (`/socket.io/`) and `/healthz` on `listener`, and `/metrics` and `/healthz`
/// on `admin` when given, until `shutdown` resolves; then disconnects every socket and returns
/// once connections closed (or the grace period ran out).
pub async fn run(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let redis = service_kit::redis::Redis::open(config.redis_url.as_str())
        .with_context(|| format!("invalid Redis URL {:?}", config.redis_url))?;
    let options = service_kit::redis::Options::default()
        .with_response_timeout(std::time::Duration::from_secs(2));
    let counts = service_kit::redis::Lazy::new(redis.clone(), options);
    let cors = cors_layer(&config.cors_origins)?;
    let grace = config.shutdown_grace;
    let window = config.coalesce_window;
    let hub: SharedHub = Arc::new(Hub::new(config, counts));

    // Engine.IO's `max_payload` bounds only long-polling bodies; the WebSocket limits are
    // separate, and tungstenite checks them from a frame's header before reading its payload.
    let max_message = usize::try_from(hub.config.max_payload_bytes).unwrap_or(usize::MAX);
    let (layer, io) = SocketIo::builder()
        .max_payload(hub.config.max_payload_bytes)
        .ws_max_message_size(max_message)
        .ws_max_frame_size(max_message)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .ping_interval(hub.config.ping_interval)
        .ping_timeout(hub.config.ping_timeout)
        .with_state(Arc::clone(&hub))
        .build_layer();
    io.ns("/", handlers::on_connect.with(handlers::register));

    let (changes_tx, changes_rx) = mpsc::channel(CHANGES_CAPACITY);
    let emitter = tokio::spawn(emitter::run(
        io.clone(),
        Arc::clone(&hub),
        window,
        changes_rx,
    ));
    let bridge = tokio::spawn(bridge::run(redis, io.clone(), Arc::clone(&hub), changes_tx));

    let state = AppState {
        io: io.clone(),
        hub: Arc::clone(&hub),
    };
    let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|listener| {
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics_text))
            .with_state(state.clone());
        let mut stopped = admin_stopped;
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        })
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
        .layer(layer)
        .layer(axum::middleware::map_request(
            serve::detach_from_read_buffer,
        ))
        .layer(cors);

    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "realtime hub listening");

    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let io_for_close = io.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: disconnecting sockets");
        io_for_close.close().await;
        let _ = closed_tx.send(());
    };
    let server = serve::serve(listener, app, graceful);
    let grace_timer = async {
        if closed_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        () = server => Ok(()),
        () = grace_timer => {
            tracing::warn!(?grace, "connections still open after the grace period; closing");
            Ok(())
        }
    };
    bridge.abort();
    emitter.abort();
    let _ = admin_stop.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("realtime hub stopped");
    result
}

/// The CORS policy for the configured origins.
fn cors_layer(origins: &CorsOrigins) -> anyhow::Result<CorsLayer> {
    let allow = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => {
            let values = list
                .iter()
                .map(|o| {
                    HeaderValue::from_str(o).with_context(|| format!("invalid CORS origin {o:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            AllowOrigin::list(values)
        }
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    // Credentials (cookies) are not used by the app; `*` with credentials is invalid anyway.
    Ok(layer)
}

/// 200 while the bridge is subscribed to Redis, 503 otherwise (no live updates possible).
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.hub.redis_up() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "redis pub/sub not connected\n",
        )
    }
}

/// Prometheus text exposition.
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let rooms = match state.io.of("/") {
        Some(ns) => ns
            .rooms()
            .await
            .map(|r| {
                r.iter()
                    .filter(|r| r.parse::<likes_core::PostId>().is_ok())
                    .count()
            })
            .unwrap_or(0),
        None => 0,
    };
    let gauges = metrics::Gauges {
        sockets: state.io.of("/").map(|ns| ns.sockets().len()).unwrap_or(0),
        rooms,
        redis_up: state.hub.redis_up(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.hub.metrics.render(gauges),
    )
}

//! The HTTP/1.1 accept loop, instead of `axum::serve`, so that hyper's per-connection read
//! buffer can be capped, and [`detach_from_read_buffer`], so that a socket does not keep that
//! buffer alive: the two were ~16 KiB, over half of what every idle socket cost.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Uri, header};
use hyper::server::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// hyper's smallest allowed read buffer; a Socket.IO handshake or polling request fits easily.
const HTTP_READ_BUFFER_BYTES: usize = 8 * 1024;
/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, asks every HTTP
/// connection to finish its request and returns once they did. Upgraded WebSockets are no
/// longer HTTP connections: the caller closes them (socketioxide's `close`).
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let mut http = http1::Builder::new();
    http.max_buf_size(HTTP_READ_BUFFER_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of fds, usually: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = http
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
                    .with_upgrades();
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let mut conn = pin!(conn);
                    let result = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// The request headers the Socket.IO layer reads: the WebSocket handshake key and the polling
/// body's type. CORS runs outside [`detach_from_read_buffer`] and sees every header; no handler
/// of the hub reads the rest, and each kept header is stored with every socket for its life.
const KEPT_HEADERS: [HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

/// Copies the request's URI and the headers in [`KEPT_HEADERS`] into their own small
/// allocations and drops the other headers and extensions. hyper parses them as slices of the connection's read
/// buffer, and engineioxide keeps the request parts of every socket for its whole life, so
/// without this each idle socket pins that whole buffer (and ~1 KB of headers nobody reads).
pub async fn detach_from_read_buffer(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    let kept = |name: &HeaderName| KEPT_HEADERS.contains(name);
    let mut headers = HeaderMap::with_capacity(parts.headers.keys().filter(|n| kept(n)).count());
    for (name, value) in &parts.headers {
        if !kept(name) {
            continue;
        }
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    parts.headers = headers;
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    // Of the extensions only hyper's upgrade handle is read below this layer; axum's routing
    // extensions (its copy of the URI, which shares the read buffer, and the path parameters)
    // would otherwise live as long as the socket.
    let upgrade = parts.extensions.remove::<OnUpgrade>();
    parts.extensions = Extensions::new();
    if let Some(upgrade) = upgrade {
        parts.extensions.insert(upgrade);
    }
    Request::from_parts(parts, body)
}

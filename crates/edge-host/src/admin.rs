//! The admin listener: Prometheus `/metrics` and `/healthz`, kept off the public port.

use std::convert::Infallible;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::problem;
use crate::server::stopped;

/// How often histogram buckets are drained when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Answers one admin request.
fn respond(
    method: &Method,
    path: &str,
    metrics: Option<&PrometheusHandle>,
) -> hyper::Response<HyperOutgoingBody> {
    match (method, path) {
        (&Method::GET, "/healthz") => problem::plain(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/metrics") => {
            let body = match metrics {
                Some(handle) => {
                    handle.run_upkeep();
                    handle.render()
                }
                None => "# no metrics recorder installed\n".to_owned(),
            };
            problem::plain(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        (_, "/healthz" | "/metrics") => problem::response(
            &likes_core::problem::Problem::method_not_allowed("only GET is supported here"),
        ),
        _ => problem::not_found(path),
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(handle) = metrics.clone() {
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(UPKEEP_INTERVAL) => handle.run_upkeep(),
                    () = stopped(&mut stop) => break,
                }
            }
        });
    }
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let response = respond(request.method(), request.uri().path(), metrics.as_ref());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let stopping = async move { stopped(&mut stop).await };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "admin connection error");
                    }
                }
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            respond(&Method::GET, "/healthz", None).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::GET, "/metrics", None).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            respond(&Method::GET, "/nope", None).status(),
            StatusCode::NOT_FOUND
        );
    }
}

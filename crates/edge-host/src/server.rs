//! The public HTTP server: hyper HTTP/1.1 with keep-alive, Spin routing, body limits, the
//! guest call, problem+json errors and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::uri::Authority;
use http::{StatusCode, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use likes_core::problem::Problem;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::body::{self, BodyError};
use crate::invoke::{GuestFailure, invoke};
use crate::metrics::{self, InFlight};
use crate::problem;
use crate::routes::Router;
use crate::runtime::Runtime;

/// Longest time a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most headers a request may have (431 problem+json beyond, see `parse_errors.rs`). Together
/// with hyper's read buffer (about 400 KiB for the whole head) and its 64 KiB URI limit (414),
/// these are the request-head limits in the README.
const MAX_HEADERS: usize = 100;
/// The reserved path prefix Spin answers itself.
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

type Response = hyper::Response<HyperOutgoingBody>;

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Server {
    /// `[application] name`, for `/.well-known/spin/info`.
    pub app_name: String,
    /// `[application] version`.
    pub app_version: Option<String>,
    /// The route table.
    pub router: Router,
    /// Engine and compiled components.
    pub runtime: Arc<Runtime>,
    /// Request body limit in bytes.
    pub max_body_bytes: u64,
    /// The listener's address, the authority of requests without `Host`.
    pub local_addr: SocketAddr,
}

/// What the request log line and metrics need to know about a handled request.
struct Outcome<'a> {
    response: Response,
    route: Option<&'a str>,
    component: Option<&'a str>,
}

impl Outcome<'_> {
    fn host(response: Response) -> Self {
        Self {
            response,
            route: None,
            component: None,
        }
    }
}

impl Server {
    /// Handles one request: never fails, every error is a response.
    async fn handle(&self, request: hyper::Request<Incoming>, client: SocketAddr) -> Response {
        let started = Instant::now();
        let _in_flight = InFlight::enter();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();

        let outcome = self.dispatch(request, &path, client, started).await;

        let status = outcome.response.status().as_u16();
        let elapsed = started.elapsed();
        let component = outcome.component.unwrap_or("-");
        metrics::request(component, status, elapsed);
        tracing::info!(
            method = %method,
            path = %path,
            route = outcome.route.unwrap_or("-"),
            component,
            status,
            elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        outcome.response
    }

    async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
        path: &str,
        client: SocketAddr,
        started: Instant,
    ) -> Outcome<'_> {
        let (mut parts, body) = request.into_parts();

        if let Some(name) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            body::discard(body);
            return Outcome::host(self.well_known(name));
        }
        let Some(matched) = self.router.route(path) else {
            body::discard(body);
            return Outcome::host(problem::not_found(path));
        };
        let (route, component_id) = (matched.raw_route, matched.component);
        let with_route = |response| Outcome {
            response,
            route: Some(route),
            component: Some(component_id),
        };

        let Some(component) = self.runtime.component(matched.component) else {
            tracing::error!(
                component = matched.component,
                "routed to a component that was not compiled"
            );
            body::discard(body);
            return with_route(problem::internal());
        };

        // The guest sees an absolute URI: our scheme, the Host authority, the full path+query.
        let authority = match parts.headers.get(header::HOST) {
            Some(host) => match host.to_str().ok().and_then(|h| h.parse::<Authority>().ok()) {
                Some(authority) => authority.to_string(),
                None => {
                    body::discard(body);
                    return with_route(problem::response(&Problem::bad_request(
                        "the Host header is not a valid authority",
                    )));
                }
            },
            None => parts
                .uri
                .authority()
                .map_or_else(|| self.local_addr.to_string(), ToString::to_string),
        };
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let full_url = format!("http://{authority}{path_and_query}");
        let Ok(uri) = full_url.parse::<Uri>() else {
            body::discard(body);
            return with_route(problem::response(&Problem::bad_request(
                "the request URI is invalid",
            )));
        };
        matched.apply_headers(&mut parts.headers, &full_url, &client.to_string());
        parts.uri = uri;

        let deadline = started + self.runtime.request_timeout;
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let bytes = match tokio::time::timeout_at(
            deadline.into(),
            body::read_limited(body, self.max_body_bytes, expects_continue),
        )
        .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(BodyError::TooLarge { limit })) => return with_route(problem::too_large(limit)),
            Ok(Err(BodyError::Read(e))) => {
                tracing::debug!(error = %e, "request body read failed");
                return with_route(problem::response(&Problem::bad_request(
                    "the request body could not be read",
                )));
            }
            Err(_) => return with_route(problem::request_timeout()),
        };

        let request = hyper::Request::from_parts(parts, Full::new(bytes));
        match invoke(&self.runtime, component, request, deadline).await {
            Ok(response) => with_route(response),
            Err(failure) => {
                // Traps, OOMs and timeouts were already logged by the guest task.
                if !matches!(
                    failure,
                    GuestFailure::Trap(_) | GuestFailure::OutOfMemory(_) | GuestFailure::Timeout
                ) {
                    tracing::error!(
                        component = matched.component,
                        kind = failure.kind(),
                        error = %failure,
                        "request failed in the guest"
                    );
                }
                with_route(problem::internal())
            }
        }
    }

    /// `/.well-known/spin/health` and `/.well-known/spin/info`, byte for byte as Spin 4
    /// answers them (its `trigger-http` `well_known`): a bare `OK`, and the app's name and
    /// version (when it has one) as pretty-printed JSON.
    fn well_known(&self, name: &str) -> Response {
        match name {
            "health" => hyper::Response::new(problem::full("OK")),
            "info" => {
                let mut info = serde_json::Map::new();
                info.insert("name".into(), self.app_name.clone().into());
                if let Some(version) = &self.app_version {
                    info.insert("version".into(), version.clone().into());
                }
                let body = serde_json::to_string_pretty(&info).unwrap_or_default();
                problem::plain(StatusCode::OK, "application/json", body)
            }
            _ => problem::not_found(&format!("{WELL_KNOWN_PREFIX}{name}")),
        }
    }
}

/// An accepted connection on its way to a worker, with its shutdown watcher.
type Accepted = (std::net::TcpStream, SocketAddr, Watcher);

/// Serves `listener` until `shutdown` turns true, then stops accepting and gives in-flight
/// requests up to `grace` to finish.
///
/// Connections are served by `workers` threads, each a single-threaded tokio runtime, and a
/// connection stays on the worker it was handed to. Everything one request touches (its
/// connection, its guest, the worker's own Redis connections) then runs on one thread, with
/// no wake-ups across threads: measured, that is ~8% less CPU per request than a work-stealing
/// runtime (`docs/BENCHMARKS.md`).
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    workers: usize,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut queues = Vec::new();
    let mut threads = Vec::new();
    for index in 0..workers.max(1) {
        let (queue, accepted) = tokio::sync::mpsc::unbounded_channel();
        let server = server.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("edge-worker-{index}"))
                .spawn(move || worker(index, &server, accepted))
                .context("cannot spawn a worker thread")?,
        );
        queues.push(queue);
    }

    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%client, error = %e, "cannot hand the connection to a worker");
                continue;
            }
        };
        next = next.wrapping_add(1);
        let queue = &queues[next % queues.len()];
        if queue.send((stream, client, graceful.watcher())).is_err() {
            anyhow::bail!("edge worker {} stopped", next % queues.len());
        }
    }

    drop(listener);
    tracing::info!("shutting down: no longer accepting, waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
    // Closing the queues ends each worker's loop; its runtime then drops what is left.
    drop(queues);
    tokio::task::spawn_blocking(move || {
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an edge worker thread panicked");
            }
        }
    })
    .await
    .context("joining the worker threads")?;
    Ok(())
}

/// One worker: a single-threaded runtime serving the connections it is handed until the
/// accept loop closes its queue.
fn worker(index: usize, server: &Arc<Server>, mut accepted: UnboundedReceiver<Accepted>) {
    crate::host::redis::set_worker(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot start a worker runtime");
            return;
        }
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS);
    runtime.block_on(async {
        while let Some((stream, client, watcher)) = accepted.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%client, error = %e, "cannot register the connection");
                    continue;
                }
            };
            let server = server.clone();
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(request, client).await) }
            });
            let stream = TokioIo::new(crate::parse_errors::ProblemStream::new(stream));
            let connection = watcher.watch(builder.serve_connection(stream, service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
            });
        }
    });
}

/// Resolves once `shutdown` is (or becomes) true, or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

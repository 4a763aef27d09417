//! `edge-host`: runs the Spin HTTP components listed in a `spin.toml` on wasmtime, without Spin.
//!
//! [`run`] loads and validates the manifest, compiles every component once, then serves HTTP on
//! the given listener (and `/metrics` + `/healthz` on the optional admin listener) until the
//! shutdown future resolves. Components see what Spin would give them: the same routes and
//! `spin-*` headers, WASI P2, `wasi:http`, and `fermyon:spin/{redis,variables}@2.0.0`.

// Public: what the binary, the integration tests and the `invoke-loop` example use directly.
// The rest is the host's own business.
pub mod app;
pub mod config;
pub mod invoke;
pub mod manifest;
pub mod routes;
pub mod runtime;
pub mod variables;

mod admin;
mod body;
mod files;
mod host;
mod metrics;
mod outbound;
mod parse_errors;
mod problem;
mod server;
mod template;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use crate::config::Config;

/// Loads the application in `config`, then serves `listener` (and `admin`, if given) until
/// `shutdown` resolves; in-flight requests then get `config.shutdown_grace` to finish.
///
/// Fails before serving when the manifest, a variable, a route or a component is invalid.
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    metrics::describe();
    let app = app::App::load(&config.manifest, &config.variables)
        .with_context(|| format!("cannot load {}", config.manifest.display()))?;
    for (route, component) in app.router.routes() {
        tracing::info!(route, component, "route");
    }

    let app::App {
        name,
        version,
        router,
        components,
    } = app;
    let runtime_config = config.clone();
    let runtime =
        tokio::task::spawn_blocking(move || runtime::Runtime::new(components, &runtime_config))
            .await
            .context("component compilation panicked")??;

    let local_addr = listener
        .local_addr()
        .context("listener has no local address")?;
    let server = Arc::new(server::Server {
        app_name: name,
        app_version: version,
        router,
        runtime: Arc::new(runtime),
        max_body_bytes: config.max_body_bytes,
        local_addr,
    });

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });

    let admin_task = match admin {
        Some(listener) => {
            let addr = listener.local_addr().ok();
            tracing::info!(?addr, "admin listening");
            Some(tokio::spawn(admin::serve(
                listener,
                config.metrics.clone(),
                stopped.clone(),
            )))
        }
        None => None,
    };

    tracing::info!(%local_addr, app = %server.app_name, "serving");
    let served = server::serve(
        listener,
        server,
        stopped,
        config.shutdown_grace,
        config.worker_threads(),
    )
    .await;
    if let Some(task) = admin_task {
        task.await.context("admin server panicked")??;
    }
    served
}

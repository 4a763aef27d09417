//! Where an edge request's time goes, without HTTP: runs requests straight through the real
//! components on one thread and prints the cost of each step.
//!
//! 1. `GET /api/config` (no Redis), step by step: store, request resources, instantiation, the
//!    guest's handler, the response, dropping the store. This is the floor every request pays.
//! 2. `PUT /api/posts/p_1/like` with 64 requests in flight: CPU µs per like, Redis included.
//!
//! `cargo run --release -p edge-host --example invoke-loop -- <redis host:port> [requests]`, against
//! a Redis seeded by `likes-bench seed` and with the components built; `EDGE_MANIFEST` runs
//! another copy of the app instead of `spin.toml`. With `EDGE_PERFMAP=1`,
//! `perf record` of the loop names the guests' compiled functions.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use bytes::Bytes;
use edge_host::routes::{RouteMatch, Router};
use edge_host::runtime::{CompiledComponent, Runtime};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

const SECRET: &str = "bench-only-session-secret-not-for-production";
const CONFIG: &str = "/api/config";
const LIKE: &str = "/api/posts/p_1/like";
const IN_FLIGHT: u64 = 64;

/// The same allocator as the edge-host binary, so the loop's costs are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    service_kit::procfs::cpu_time(std::process::id()).map_or(0.0, |t| t.as_secs_f64())
}

/// A request for `path` as the server hands it to `invoke`: absolute URI, Spin's headers.
fn request(
    m: &RouteMatch<'_>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let url = format!("http://127.0.0.1:3000{path}");
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(&url)
        .header("host", "127.0.0.1:3000");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let mut req = builder.body(Full::new(Bytes::new()))?;
    m.apply_headers(req.headers_mut(), &url, "127.0.0.1:1");
    Ok(req)
}

/// Mean µs of each step of `GET /api/config`, replicating `invoke` one step at a time.
async fn config_steps(runtime: &Runtime, router: &Router, n: u64) -> anyhow::Result<()> {
    let m = router.route(CONFIG).context("no route for /api/config")?;
    let component: &CompiledComponent = runtime.component(m.component).context("component")?;
    let mut spent = [Duration::ZERO; 6];
    for _ in 0..n {
        let t0 = Instant::now();
        let mut store = runtime.new_store(component, t0 + Duration::from_secs(5))?;
        let t1 = Instant::now();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, outparam) = {
            let mut http = store.data_mut().http();
            let req = http.new_incoming_request(Scheme::Http, request(&m, "GET", CONFIG, None)?)?;
            (req, http.new_response_outparam(sender)?)
        };
        let t2 = Instant::now();
        let proxy = component.pre().instantiate_async(&mut store).await?;
        let t3 = Instant::now();
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, outparam)
            .await?;
        let t4 = Instant::now();
        let response = receiver.await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        ensure!(response.status().is_success(), "{}", response.status());
        let _ = response.into_body().collect().await;
        let t5 = Instant::now();
        drop(store);
        let t6 = Instant::now();
        for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]
            .into_iter()
            .enumerate()
        {
            spent[i] += b - a;
        }
    }
    println!("GET /api/config, {n} requests one at a time, µs per request:");
    let steps = [
        "new store (WASI context, limits)",
        "request and response-outparam resources",
        "instantiate (InstancePre, pooled)",
        "guest handler (incl. its host calls)",
        "response and body",
        "drop store (pool slot reset)",
    ];
    let total: Duration = spent.iter().sum();
    for (step, d) in steps.iter().zip(spent) {
        println!("  {step:<42} {:>6.1}", d.as_secs_f64() * 1e6 / n as f64);
    }
    println!(
        "  {:<42} {:>6.1}",
        "total",
        total.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

/// CPU µs per like with `IN_FLIGHT` likes in flight on this one thread, each by a new user.
async fn likes(runtime: Rc<Runtime>, router: &Router, n: u64, now: u64) -> anyhow::Result<()> {
    let m = router.route(LIKE).context("no route for likes")?;
    let component = runtime.component(m.component).context("component")?.clone();
    let per_task = n / IN_FLIGHT;
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let mut requests = Vec::new();
        for i in 0..per_task {
            let user = likes_core::UserId::new(10_000_000 + t * 1_000_000 + i).context("user")?;
            let token = likes_core::session::issue(SECRET.as_bytes(), user, "b", now, 3600);
            requests.push(request(&m, "PUT", LIKE, Some(&token))?);
        }
        let (runtime, component) = (runtime.clone(), component.clone());
        tasks.push(tokio::task::spawn_local(async move {
            for req in requests {
                let deadline = Instant::now() + Duration::from_secs(5);
                let response = edge_host::invoke::invoke(&runtime, &component, req, deadline)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(response.status().is_success(), "{}", response.status());
                let _ = response.into_body().collect().await;
            }
            Ok(())
        }));
    }
    // The requests (and their tokens) are made before the clock starts, and the tasks only
    // run from the first await below: what is measured is the host and the guest.
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for task in tasks {
        task.await??;
    }
    let done = per_task * IN_FLIGHT;
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    println!(
        "PUT like, {done} requests, {IN_FLIGHT} in flight on one thread: {:.1} µs CPU per request, {:.0} requests/s",
        cpu * 1e6 / done as f64,
        done as f64 / wall
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let redis = args.next().unwrap_or_else(|| "127.0.0.1:6399".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    // `EDGE_MANIFEST` points at another app (a copy with other builds of the components), so
    // two builds can be measured side by side.
    let manifest = std::env::var_os("EDGE_MANIFEST").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml"),
        std::path::PathBuf::from,
    );
    let mut config = edge_host::Config::new(&manifest)
        .variable("session_secret", SECRET)
        .variable("redis_host", redis);
    config.perfmap = std::env::var_os("EDGE_PERFMAP").is_some();
    let app = edge_host::app::App::load(&config.manifest, &config.variables)?;
    let runtime = Rc::new(Runtime::new(app.components, &config)?);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    rt.block_on(local.run_until(async {
        config_steps(&runtime, &app.router, n).await?;
        likes(runtime.clone(), &app.router, n, now).await
    }))
}

//! Closed-loop HTTP driver: each connection sends its next request as soon as the previous
//! answer arrives, over one keep-alive HTTP/1.1 connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use tokio::net::TcpStream;

use crate::workload::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    /// host:port of the server under test.
    #[arg(long)]
    addr: String,
    /// HS256 secret the server verifies tokens with.
    #[arg(long)]
    secret: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Posts each worker cycles through.
    #[arg(long, default_value_t = 50)]
    posts: u64,
    /// First user id minus one; vary it between runs against the same Redis.
    #[arg(long, default_value_t = 1_000_000)]
    user_offset: u64,
    /// Label of the target in the report.
    #[arg(long, default_value = "edge")]
    target: String,
    /// Pid of the server, to report its CPU per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Threads of the load generator: 1 runs every connection on one single-threaded runtime,
    /// 0 uses one worker per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let secret = args.secret.as_bytes().to_vec();
    let (now, _) = now();
    let mut tasks = Vec::new();
    // Warm-up: one request per connection before the clock starts, so compile caches and
    // connection setup are not measured.
    for w in 0..args.connections {
        let user =
            likes_core::UserId::new(workload::user_of(w, args.user_offset)).context("user id")?;
        let token = likes_core::session::issue(&secret, user, "bench", now, 3600);
        let stream = TcpStream::connect(&args.addr)
            .await
            .with_context(|| format!("connecting to {}", args.addr))?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (stop, errors, addr, posts) =
            (stop.clone(), errors.clone(), args.addr.clone(), args.posts);
        tasks.push(tokio::spawn(async move {
            let mut hist = workload::histogram();
            let mut i = 0u64;
            let auth = format!("Bearer {token}");
            let mut started = false;
            while !stop.load(Ordering::Relaxed) {
                let (post, like) = workload::step(i, posts);
                i += 1;
                let req = Request::builder()
                    .method(if like { "PUT" } else { "DELETE" })
                    .uri(format!("/api/posts/p_{post}/like"))
                    .header("host", &addr)
                    .header("authorization", &auth)
                    .body(Empty::<Bytes>::new())
                    .map_err(anyhow::Error::from)?;
                let t0 = Instant::now();
                let ok = match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                if !started {
                    started = true;
                    continue;
                }
                if ok {
                    let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if sender.ready().await.is_err() {
                        break;
                    }
                }
            }
            anyhow::Ok(hist)
        }));
    }
    let window = workload::Window::measure(args.seconds, args.server_pid, &stop).await;
    let mut total = workload::histogram();
    for t in tasks {
        total.add(t.await??)?;
    }
    let report = Report::new(
        &args.target,
        args.connections,
        &total,
        errors.load(Ordering::Relaxed),
        window,
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn now() -> (u64, u64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_millis() as u64)
}

//! Closed-loop HTTP driver: each connection sends its next request as soon as the previous
//! answer arrives, over one keep-alive HTTP/1.1 connection (`http1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;

use crate::http1::{self, Connection};
use crate::workload::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    edge: workload::EdgeTarget,
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
    /// What each request is: `likes` (state-changing like/unlike) or `feed` (a signed-in
    /// reader's first page of `sort=top`, 20 posts with their counts and `liked_by_me`).
    #[arg(long, value_enum, default_value_t = Workload::Likes)]
    workload: Workload,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Workload {
    Likes,
    Feed,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let secret = args.edge.secret.as_bytes().to_vec();
    let (now, _) = now();
    let mut tasks = Vec::new();
    // Warm-up: one request per connection before the clock starts, so compile caches and
    // connection setup are not measured.
    for w in 0..args.connections {
        let user =
            likes_core::UserId::new(workload::user_of(w, args.user_offset)).context("user id")?;
        let token = likes_core::session::issue(&secret, user, "bench", now, 3600);
        let mut conn = Connection::open(&args.edge.addr).await?;
        let auth = format!("Bearer {token}");
        // The worker's whole cycle, encoded once: like p1..pN, then unlike p1..pN.
        let cycle: Vec<Vec<u8>> = match args.workload {
            Workload::Likes => (0..2 * args.posts)
                .map(|i| {
                    let (post, like) = workload::step(i, args.posts);
                    let method = if like { "PUT" } else { "DELETE" };
                    http1::request(
                        method,
                        &format!("/api/posts/p_{post}/like"),
                        &args.edge.addr,
                        &auth,
                    )
                })
                .collect(),
            Workload::Feed => vec![http1::request(
                "GET",
                "/api/feed?sort=top&limit=20",
                &args.edge.addr,
                &auth,
            )],
        };
        let (stop, errors) = (stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = workload::histogram();
            let mut started = false;
            for request in cycle.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                let ok = match conn.exchange(request).await {
                    Ok(status) => (200..300).contains(&status),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                if !started {
                    started = true;
                    continue;
                }
                if ok {
                    let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
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

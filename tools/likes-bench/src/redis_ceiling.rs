//! The Redis ceiling: the like script sent straight to Redis by N concurrent callers over
//! multiplexed connections, with the same request sequence as the HTTP driver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use likes_core::scripts::{self, LikeCall};
use likes_core::{PostId, UserId};

use crate::native::{Pool, like};
use crate::workload::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: workload::RedisTarget,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 50)]
    posts: u64,
    #[arg(long, default_value_t = 3_000_000)]
    user_offset: u64,
    #[arg(long, default_value_t = 4)]
    redis_connections: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let pool = Pool::connect(&args.target.redis, args.redis_connections).await?;
    let script = Arc::new(redis::Script::new(scripts::LIKE.source));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..args.target.connections {
        let user = UserId::new(workload::user_of(w, args.user_offset)).context("user id")?;
        let (pool, script, stop, errors, posts) = (
            pool.clone(),
            script.clone(),
            stop.clone(),
            errors.clone(),
            args.posts,
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = workload::histogram();
            let mut conn = pool.get();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (post, on) = workload::step(i, posts);
                i += 1;
                let Some(post) = PostId::new(post) else {
                    continue;
                };
                let t0 = Instant::now();
                let call = LikeCall {
                    post,
                    user,
                    on,
                    ts: "2026-01-01T00:00:00.000Z".into(),
                    require_post: true,
                };
                match like(&mut conn, &script, &call).await {
                    Ok(_) => {
                        let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    let window = workload::Window::measure(args.seconds, args.target.server_pid, &stop).await;
    let mut total = workload::histogram();
    for t in tasks {
        total.add(t.await?)?;
    }
    let report = Report::new(
        "redis",
        args.target.connections,
        &total,
        errors.load(Ordering::Relaxed),
        window,
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

//! A rough drain-rate figure (not the `cargo xtask bench sync` of the issue): a backlog of likes
//! written by the production script, then the time the daemon takes to apply all of it.
//! `cargo test --release -p sync-daemon --test sync -- --ignored --nocapture drain_rate`

use std::time::Instant;

use crate::support::{Env, InProcess, like};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn drain_rate() {
    let env = Env::start();
    let conn = env.redis.async_conn().await;
    let (tasks, per_task) = (8u64, 12_500u64);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mut c = conn.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                // Distinct (post, user) pairs over 1,000 posts: every call is a state change.
                let n = t * per_task + i;
                like(&mut c, 1 + n % 1000, 1 + n / 1000, true).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("producer");
    }
    let total = tasks * per_task;
    for batch_max in [100usize, 1000, 5000] {
        let mut c = conn.clone();
        for stream in likes_core::keys::all_streams() {
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(&stream)
                .arg("sync-daemon")
                .query_async(&mut c)
                .await;
        }
        let mut config = env.config();
        config.batch_max = batch_max;
        let started = Instant::now();
        let daemon = InProcess::spawn(config);
        env.wait_drained(&mut c, "sync-daemon").await;
        let secs = started.elapsed().as_secs_f64();
        daemon.stop().await;
        assert_eq!(env.pg.psql("SELECT count(*) FROM likes"), total.to_string());
        println!(
            "batch_max {batch_max}: {total} events in {secs:.2} s = {:.0} events/s",
            total as f64 / secs
        );
        env.pg
            .psql("TRUNCATE likes, post_like_counts, stream_checkpoints");
    }
}

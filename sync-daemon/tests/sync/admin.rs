//! The real binary's operations surface: `/metrics`, `/healthz`, graceful SIGTERM.

use std::time::{Duration, Instant};

use crate::support::{Env, Lcg, Model, random_ops, spawn_binary};

async fn get(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

async fn wait_for(url: &str, what: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((status, body)) = get(url).await
            && what(status, &body)
        {
            return body;
        }
        assert!(Instant::now() < deadline, "{url} never matched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_healthz_and_graceful_sigterm() {
    let mut env = Env::start();
    let mut conn = env.redis.async_conn().await;
    let mut model = Model::default();
    random_ops(&mut conn, &mut model, &mut Lcg(3), 300, 10, 10).await;
    let port = testkit::free_port();
    let admin = format!("127.0.0.1:{port}");
    let mut child = spawn_binary(&env, &["--admin-listen", &admin]);
    env.wait_drained(&mut conn, "sync-daemon").await;
    env.assert_matches(&mut conn, &model).await;

    let metrics = wait_for(&format!("http://{admin}/metrics"), |s, b| {
        s == 200 && b.contains("sync_events_applied_total")
    })
    .await;
    for name in ["sync_batches_total", "sync_batch_size", "sync_lag_seconds"] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    wait_for(&format!("http://{admin}/healthz"), |s, _| s == 200).await;

    // PostgreSQL down: /healthz says so once a batch fails; back up: healthy again.
    env.pg.stop();
    random_ops(&mut conn, &mut model, &mut Lcg(4), 50, 10, 10).await;
    let body = wait_for(&format!("http://{admin}/healthz"), |s, _| s == 503).await;
    assert!(body.contains("postgres down"), "{body}");
    env.pg.restart();
    wait_for(&format!("http://{admin}/healthz"), |s, _| s == 200).await;
    env.wait_drained(&mut conn, "sync-daemon").await;
    env.assert_matches(&mut conn, &model).await;

    // SIGTERM: a clean exit.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

/// `XLEN` of every stream.
async fn lengths(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for stream in likes_core::keys::all_streams() {
        let n: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(conn)
            .await
            .expect("XLEN");
        out.push((stream, n));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_what_is_really_undelivered_even_when_redis_reports_a_stale_lag() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    random_ops(&mut conn, &mut model, &mut Lcg(5), 300, 10, 10).await;
    let (daemon, group) = env.spawn_daemon();
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;

    // What an AOF replay after a restart can leave: the group at the newest entry, with the
    // `entries-read` counter Redis derives its `lag` from far behind.
    let mut stale = 0;
    for (stream, len) in lengths(&mut conn).await {
        if len == 0 {
            continue;
        }
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&stream)
            .arg(&group)
            .arg("$")
            .arg("ENTRIESREAD")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("XGROUP SETID");
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .expect("XINFO GROUPS");
        if let Some(redis::Value::Int(n)) = groups[0].get("lag") {
            stale += n;
        }
        let backlog = sync_daemon::lag::backlog(&mut conn, &stream, &group)
            .await
            .expect("backlog");
        assert_eq!(backlog, Some(0), "{stream}: nothing is undelivered");
    }
    assert!(stale > 0, "Redis itself reports a lag in this state");

    // New entries the daemon has not read are counted exactly, stale counter or not.
    let before = lengths(&mut conn).await;
    random_ops(&mut conn, &mut model, &mut Lcg(6), 100, 10, 10).await;
    let after = lengths(&mut conn).await;
    for ((stream, b), (_, a)) in before.iter().zip(&after) {
        let backlog = sync_daemon::lag::backlog(&mut conn, stream, &group)
            .await
            .expect("backlog");
        if *b > 0 {
            assert_eq!(backlog, Some(a - b), "{stream}");
        }
    }
}

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

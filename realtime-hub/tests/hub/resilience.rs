//! Redis restarts under subscribed clients, and graceful shutdown.

use std::time::Duration;

use serde_json::json;
use testkit::TestRedis;

use crate::support::{Hub, LONG, post, set_count};
use testkit::socketio::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_clients_get_current_counts() {
    let mut redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    set_count(&mut conn, post(4), 1).await;
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let mut c = Client::connect(hub.addr).await;
    let ack = c.emit_ack("subscribe", json!({"posts": ["p_4"]})).await;
    assert_eq!(ack, json!({"counts": {"p_4": 1}}));

    redis.kill();
    // While Redis is down the hub reports unhealthy, and a subscribe still answers.
    let deadline = tokio::time::Instant::now() + LONG;
    while reqwest::get(hub.url("/healthz"))
        .await
        .map(|r| r.status() == 200)
        .unwrap_or(true)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz stayed 200 with Redis down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ack = c.emit_ack("subscribe", json!({"posts": ["p_5"]})).await;
    assert_eq!(ack["error"]["title"], "Service unavailable", "{ack}");

    // Redis comes back (empty) and the count changed meanwhile without any publish reaching us.
    // Same port, same users, no persistence: it comes back empty.
    redis.restart();
    let mut conn = redis.async_conn().await;
    set_count(&mut conn, post(4), 42).await;
    set_count(&mut conn, post(5), 5).await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Some(ev) = c
            .next_event("likes:updated", Duration::from_millis(200))
            .await
        {
            seen.push(ev);
        }
    }
    seen.sort_by_key(|v| v["post_id"].as_str().map(str::to_owned));
    assert_eq!(
        seen,
        [
            json!({"post_id": "p_4", "likes": 42}),
            json!({"post_id": "p_5", "likes": 5})
        ],
        "both rooms (even the one joined while Redis was down) converge"
    );
    assert!(hub.metric("realtime_hub_redis_reconnects_total").await >= 1.0);
    assert_eq!(hub.metric("realtime_hub_redis_up").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_disconnects_sockets_and_returns() {
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let addr = hub.addr;
    let mut c = Client::connect(addr).await;
    c.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
    let shutdown = tokio::spawn(hub.shutdown());
    assert!(c.closed_within(LONG).await, "socket closed by the hub");
    shutdown.await.expect("join").expect("run returned Ok");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

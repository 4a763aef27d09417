//! `/healthz`, `/metrics` (admin listener only) and CORS on the hub's listeners.

use serde_json::json;
use testkit::TestRedis;

use crate::support::Hub;
use testkit::socketio::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics() {
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let r = reqwest::get(hub.url("/healthz")).await.expect("healthz");
    assert_eq!(r.status(), 200);
    let admin_health = reqwest::get(format!("http://{}/healthz", hub.admin_addr))
        .await
        .expect("admin healthz");
    assert_eq!(admin_health.status(), 200);
    // The public Socket.IO port tells a stranger nothing about load.
    let public_metrics = reqwest::get(hub.url("/metrics")).await.expect("metrics");
    assert_eq!(public_metrics.status(), 404);

    let mut a = Client::connect(hub.addr).await;
    let mut b = Client::connect(hub.addr).await;
    a.emit_ack("subscribe", json!({"posts": ["p_1", "p_2"]}))
        .await;
    b.emit_ack("subscribe", json!({"posts": ["p_2", "p_3"]}))
        .await;
    assert_eq!(hub.metric("realtime_hub_sockets").await, 2.0);
    assert_eq!(hub.metric("realtime_hub_rooms").await, 3.0);
    assert_eq!(hub.metric("realtime_hub_client_events_in_total").await, 2.0);
    let text = hub.metrics().await;
    for name in [
        "realtime_hub_like_messages_in_total",
        "realtime_hub_like_emits_out_total",
        "realtime_hub_coalescing_ratio",
        "realtime_hub_redis_reconnects_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origin() {
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.cors_origins = realtime_hub::CorsOrigins::List(vec!["http://app.example".to_owned()]);
    })
    .await;
    let http = reqwest::Client::new();
    let polling = hub.url("/socket.io/?EIO=4&transport=polling");
    let allowed = http
        .get(&polling)
        .header("Origin", "http://app.example")
        .send()
        .await
        .expect("polling handshake");
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"http://app.example"[..])
    );
    let other = http
        .get(&polling)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .expect("polling handshake");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

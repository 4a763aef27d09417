//! Subscribe/unsubscribe acks and room-scoped delivery.

use serde_json::json;
use testkit::TestRedis;

use crate::support::{Hub, LONG, SHORT, post, publish_like, publish_post, set_count};
use testkit::socketio::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_acks_current_counts_and_unknown_posts_count_zero() {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    set_count(&mut conn, post(7), 3).await;
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let mut c = Client::connect(hub.addr).await;
    let ack = c
        .emit_ack("subscribe", json!({"posts": ["p_7", "p_8", "p_7"]}))
        .await;
    assert_eq!(ack, json!({"counts": {"p_7": 3, "p_8": 0}}));
    assert_eq!(
        c.emit_ack("subscribe", json!({"posts": []})).await,
        json!({"counts": {}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_event_reaches_only_the_posts_room() {
    let (_redis, mut conn, hub) = Hub::with_redis().await;
    let mut a = Client::connect(hub.addr).await;
    let mut b = Client::connect(hub.addr).await;
    a.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
    b.emit_ack("subscribe", json!({"posts": ["p_2"]})).await;

    publish_like(&mut conn, post(1), 5).await;
    assert_eq!(
        a.next_event("likes:updated", LONG).await,
        Some(json!({"post_id": "p_1", "likes": 5}))
    );
    assert_eq!(b.next_event("likes:updated", SHORT).await, None);

    publish_like(&mut conn, post(2), 9).await;
    assert_eq!(
        b.next_event("likes:updated", LONG).await,
        Some(json!({"post_id": "p_2", "likes": 9}))
    );
    assert_eq!(a.next_event("likes:updated", SHORT).await, None);

    // After unsubscribe, nothing more arrives.
    assert_eq!(
        a.emit_ack("unsubscribe", json!({"posts": ["p_1"]})).await,
        json!({})
    );
    publish_like(&mut conn, post(1), 6).await;
    assert_eq!(a.next_event("likes:updated", SHORT).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_created_goes_to_every_socket_without_liked_by_me() {
    let (_redis, mut conn, hub) = Hub::with_redis().await;
    let mut a = Client::connect(hub.addr).await;
    let mut b = Client::connect(hub.addr).await;
    a.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
    publish_post(
        &mut conn,
        &json!({"post_id": "p_5", "id": "p_5", "caption": "hi", "likes": 0, "liked_by_me": false}),
    )
    .await;
    for c in [&mut a, &mut b] {
        let ev = c
            .next_event("posts:created", LONG)
            .await
            .expect("posts:created");
        assert_eq!(
            ev,
            json!({"post_id": "p_5", "id": "p_5", "caption": "hi", "likes": 0})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_get_an_error_ack_and_the_socket_keeps_working() {
    let (_redis, mut conn, hub) = Hub::with_redis().await;
    let mut c = Client::connect(hub.addr).await;

    for bad in [
        r#"["subscribe","nope"]"#,
        r#"["subscribe",{"posts":["u_1"]}]"#,
        r#"["subscribe",{"posts":"p_1"}]"#,
        r#"["subscribe"]"#,
        r#"["unsubscribe",{"posts":[1]}]"#,
    ] {
        let ack = c.emit_raw_ack(bad).await;
        assert_eq!(ack["error"]["title"], "Malformed payload", "{bad} → {ack}");
        assert!(ack["error"]["detail"].is_string(), "{ack}");
    }

    // 500 posts is the limit: 501 joins nothing.
    let too_many: Vec<String> = (1..=501).map(|n| format!("p_{n}")).collect();
    let ack = c.emit_ack("subscribe", json!({ "posts": too_many })).await;
    assert_eq!(ack["error"]["title"], "Too many posts", "{ack}");
    publish_like(&mut conn, post(1), 1).await;
    assert_eq!(
        c.next_event("likes:updated", SHORT).await,
        None,
        "joined nothing"
    );

    // Exactly 500 is fine, and one more on top of them is refused.
    let ok: Vec<String> = (1..=500).map(|n| format!("p_{n}")).collect();
    let ack = c.emit_ack("subscribe", json!({ "posts": ok })).await;
    assert_eq!(
        ack["counts"].as_object().map(|m| m.len()),
        Some(500),
        "{ack}"
    );
    let ack = c.emit_ack("subscribe", json!({"posts": ["p_501"]})).await;
    assert_eq!(ack["error"]["title"], "Too many posts", "{ack}");

    // Still connected and delivering.
    publish_like(&mut conn, post(42), 7).await;
    assert_eq!(
        c.next_event("likes:updated", LONG).await,
        Some(json!({"post_id": "p_42", "likes": 7}))
    );
    assert!(hub.metric("realtime_hub_client_errors_total").await >= 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_rate_is_limited_per_socket() {
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.events_per_second = 1
    })
    .await;
    let mut c = Client::connect(hub.addr).await;
    let mut titles = Vec::new();
    for _ in 0..4 {
        let ack = c.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
        titles.push(ack["error"]["title"].as_str().unwrap_or("ok").to_owned());
    }
    assert_eq!(
        titles,
        ["ok", "ok", "Too many requests", "Too many requests"]
    );
    // Another socket has its own budget.
    let mut d = Client::connect(hub.addr).await;
    assert!(
        d.emit_ack("subscribe", json!({"posts": ["p_1"]}))
            .await
            .get("counts")
            .is_some()
    );
}

/// Regression: socketioxide sends the connect packet before it runs the connect handler, so
/// handlers registered there lost a `subscribe` emitted right after connecting (the JS client
/// flushes its buffer exactly then). Handlers are now registered in a connect middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_right_after_connect_is_never_lost() {
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    for _ in 0..40 {
        let mut c = Client::connect(hub.addr).await;
        let ack = c.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
        assert_eq!(ack, json!({"counts": {"p_1": 0}}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_frame_over_the_payload_limit_closes_only_that_socket() {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    let limit: usize = 4 * 1024;
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.max_payload_bytes = limit as u64
    })
    .await;
    let mut bystander = Client::connect(hub.addr).await;
    bystander
        .emit_ack("subscribe", json!({"posts": ["p_1"]}))
        .await;

    // Just under the limit is parsed and answered (an error ack: the padding is not a post).
    let mut c = Client::connect(hub.addr).await;
    let under = "x".repeat(limit - 64);
    let ack = c
        .emit_ack("subscribe", json!({"posts": ["p_1"], "pad": under}))
        .await;
    assert!(
        ack.get("counts").is_some() || ack.get("error").is_some(),
        "{ack}"
    );

    // One byte over: refused at the frame, before any parsing, and the socket is closed.
    let over = "x".repeat(limit);
    // The hub may close the connection before the frame is all written: either way, closed.
    let sent = c
        .try_send_frame(&format!(
            r#"421["subscribe",{{"posts":["p_2"],"pad":"{over}"}}]"#
        ))
        .await;
    assert!(
        sent.is_err() || c.closed_within(LONG).await,
        "the hub kept the socket"
    );

    publish_like(&mut conn, post(1), 3).await;
    assert_eq!(
        bystander.next_event("likes:updated", LONG).await,
        Some(json!({"post_id": "p_1", "likes": 3}))
    );
}

//! Per-post coalescing of `likes:updated`.

use std::time::Duration;

use likes_core::keys::PostKeys;
use serde_json::json;
use testkit::TestRedis;

use crate::support::{Hub, LONG, SHORT, like_message, post, publish_like};
use testkit::socketio::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_yields_few_emits_and_the_last_carries_the_final_count() {
    let (_redis, mut conn, hub) = Hub::with_redis().await;
    let mut c = Client::connect(hub.addr).await;
    c.emit_ack("subscribe", json!({"posts": ["p_3"]})).await;

    // 200 publishes in one pipeline: well within one 100 ms window.
    let mut pipe = redis::pipe();
    for n in 1..=200 {
        pipe.cmd("SPUBLISH")
            .arg(PostKeys::new(post(3)).like_channel)
            .arg(like_message(post(3), n))
            .ignore();
    }
    let started = std::time::Instant::now();
    let _: () = pipe.query_async(&mut conn).await.expect("pipeline");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "burst took {:?}",
        started.elapsed()
    );

    let got = c
        .events_for("likes:updated", Duration::from_millis(600))
        .await;
    assert!(
        !got.is_empty() && got.len() <= 4,
        "{} emits: {got:?}",
        got.len()
    );
    assert_eq!(got.last(), Some(&json!({"post_id": "p_3", "likes": 200})));
    assert_eq!(
        hub.metric("realtime_hub_like_messages_in_total").await,
        200.0
    );
    assert!(hub.metric("realtime_hub_coalescing_ratio").await >= 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_change_after_quiet_goes_out_at_once_and_windows_are_per_post() {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    // A long window makes "at once" vs "held" unambiguous.
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.coalesce_window = Duration::from_millis(700)
    })
    .await;
    let mut c = Client::connect(hub.addr).await;
    c.emit_ack("subscribe", json!({"posts": ["p_1", "p_2"]}))
        .await;

    publish_like(&mut conn, post(1), 1).await;
    assert_eq!(
        c.next_event("likes:updated", SHORT).await,
        Some(json!({"post_id": "p_1", "likes": 1})),
        "first change goes out at once"
    );
    publish_like(&mut conn, post(1), 2).await;
    publish_like(&mut conn, post(1), 3).await;
    // Another post is not held by p_1's window.
    publish_like(&mut conn, post(2), 10).await;
    assert_eq!(
        c.next_event("likes:updated", SHORT).await,
        Some(json!({"post_id": "p_2", "likes": 10}))
    );
    assert_eq!(
        c.next_event("likes:updated", Duration::from_millis(200))
            .await,
        None,
        "p_1 held"
    );
    assert_eq!(
        c.next_event("likes:updated", LONG).await,
        Some(json!({"post_id": "p_1", "likes": 3})),
        "the held newest count follows at the window's end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_redis_both_deliver() {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    let h1 = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let h2 = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let mut a = Client::connect(h1.addr).await;
    let mut b = Client::connect(h2.addr).await;
    a.emit_ack("subscribe", json!({"posts": ["p_9"]})).await;
    b.emit_ack("subscribe", json!({"posts": ["p_9"]})).await;
    for n in 1..=50 {
        publish_like(&mut conn, post(9), n).await;
    }
    for c in [&mut a, &mut b] {
        let got = c
            .events_for("likes:updated", Duration::from_millis(600))
            .await;
        assert_eq!(
            got.last(),
            Some(&json!({"post_id": "p_9", "likes": 50})),
            "{got:?}"
        );
    }
    let _ = LONG;
}

//! End to end with real likes: HTTP likes and unlikes through the real edge host (its like
//! script publishes on Redis), delivered by one or two hubs to subscribed sockets.

use std::time::Duration;

use futures::future::join_all;
use likes_core::keys::PostKeys;
use serde_json::{Value, json};
use testkit::TestRedis;

use crate::edge::{Edge, create_post, fresh_post};
use crate::support::{Hub, LONG};
use testkit::socketio::Client;

/// Waits until `c` has seen `likes:updated` carrying `want`; returns every update it saw.
async fn until_count(c: &mut Client, want: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let Some(ev) = c.next_event("likes:updated", LONG).await else {
            break;
        };
        let likes = ev["likes"].as_u64();
        seen.push(ev);
        if likes == Some(want) {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_deliver_real_likes_and_every_client_converges() {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    let edge = Edge::start(&redis).await;
    let h1 = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
    let h2 = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;

    let mut users = Vec::new();
    for i in 0..30 {
        users.push(edge.session(&format!("fan{i}")).await);
    }
    let post = fresh_post(1);
    create_post(&mut conn, post, &users[0].1).await;
    let wire = post.to_string();

    let mut clients = Vec::new();
    for hub in [&h1, &h1, &h2, &h2] {
        let mut c = Client::connect(hub.addr).await;
        let ack = c.emit_ack("subscribe", json!({ "posts": [wire] })).await;
        assert_eq!(ack, json!({ "counts": { wire.clone(): 0 } }));
        clients.push(c);
    }

    // 30 likes at once, then 10 of those users unlike at once: the final count is 20.
    let liked = join_all(users.iter().map(|(t, _)| edge.like(t, post, true))).await;
    assert!(liked.iter().all(|r| r.liked && r.post_id == post));
    assert_eq!(liked.iter().map(|r| r.likes).max(), Some(30));
    let unliked = join_all(users[..10].iter().map(|(t, _)| edge.like(t, post, false))).await;
    assert_eq!(unliked.iter().map(|r| r.likes).min(), Some(20));

    let stored: u64 = redis::cmd("HGET")
        .arg(PostKeys::new(post).post)
        .arg(likes_core::keys::post_field::LIKES)
        .query_async(&mut conn)
        .await
        .expect("HGET likes");
    assert_eq!(stored, 20);
    for (i, c) in clients.iter_mut().enumerate() {
        let seen = until_count(c, 20).await;
        assert_eq!(
            seen.last().and_then(|v| v["likes"].as_u64()),
            Some(20),
            "client {i} (hub {}) did not converge: {seen:?}",
            1 + i / 2
        );
        assert!(
            seen.iter().all(|v| v["post_id"] == wire.as_str()),
            "{seen:?}"
        );
        // Nothing contradicts the final count afterwards.
        let later = c
            .events_for("likes:updated", Duration::from_millis(300))
            .await;
        assert!(later.iter().all(|v| v["likes"] == 20), "{later:?}");
    }
    // Coalescing held back some of the 40 changes on each hub.
    for hub in [&h1, &h2] {
        assert_eq!(
            hub.metric("realtime_hub_like_messages_in_total").await,
            40.0
        );
        assert!(hub.metric("realtime_hub_like_emits_out_total").await < 40.0);
    }
}

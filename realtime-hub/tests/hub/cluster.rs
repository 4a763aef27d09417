//! The hub on a Redis Cluster (3 primaries, a replica each), behind real likes through the
//! real edge host on the same cluster: counts of posts on every node reach a client, and after
//! a primary is killed -9 and its replica promoted, the hub subscribes again on the new primary
//! and its clients converge to the stored counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field};
use serde_json::{Value, json};
use testkit::TestCluster;
use testkit::socketio::Client;

use crate::edge::{Edge, create_post, fresh_post};
use crate::support::{Hub, LONG};

/// Reads `likes:updated` until every post in `want` was last seen at its count.
async fn until_counts(c: &mut Client, want: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline && seen != *want {
        let Some(ev) = c.next_event("likes:updated", LONG).await else {
            continue;
        };
        if let (Some(post), Some(likes)) = (ev["post_id"].as_str(), ev["likes"].as_u64()) {
            seen.insert(post.to_owned(), likes);
        }
    }
    seen
}

/// The stored count of `post`, read through the cluster.
async fn stored(conn: &mut redis::cluster_async::ClusterConnection, post: PostId) -> u64 {
    redis::cmd("HGET")
        .arg(PostKeys::new(post).post)
        .arg(post_field::LIKES)
        .query_async::<Option<u64>>(conn)
        .await
        .expect("HGET likes")
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_on_a_cluster_delivers_posts_on_every_node_and_rides_a_failover() {
    let mut cluster = TestCluster::start(3, 1);
    let mut conn = cluster.async_conn().await;
    let edge = Edge::start_at(cluster.edge_variables()).await;
    let hub = Hub::start(&cluster.url_as(testkit::Role::Hub), |c| {
        c.redis_ping_interval = Duration::from_millis(500);
    })
    .await;

    // 16 consecutive ids: one post on every shard, so on every primary.
    let posts: Vec<PostId> = (1..=16).map(fresh_post).collect();
    let nodes: BTreeSet<usize> = posts
        .iter()
        .map(|p| cluster.primary_for_key(&PostKeys::new(*p).post))
        .collect();
    assert_eq!(nodes.len(), 3, "the posts are on every primary");
    let mut fans = Vec::new();
    for i in 0..4 {
        fans.push(edge.session(&format!("fan{i}")).await);
    }
    for post in &posts {
        create_post(&mut conn, *post, &fans[0].1).await;
    }
    let wires: Vec<String> = posts.iter().map(ToString::to_string).collect();
    let mut client = Client::connect(hub.addr).await;
    let ack = client
        .emit_ack("subscribe", json!({ "posts": wires }))
        .await;
    let zeros: serde_json::Map<String, Value> =
        wires.iter().map(|w| (w.clone(), json!(0))).collect();
    assert_eq!(ack, json!({ "counts": zeros }), "every post starts at 0");

    // Post i gets 1 + i % 3 likes: every node's channels carry some.
    let mut want = BTreeMap::new();
    for (i, post) in posts.iter().enumerate() {
        let n = 1 + i % 3;
        for (token, _) in &fans[..n] {
            assert!(edge.like(token, *post, true).await.liked);
        }
        want.insert(post.to_string(), n as u64);
    }
    let seen = until_counts(&mut client, &want).await;
    assert_eq!(
        seen, want,
        "counts of posts on every node reached the client"
    );

    // The primary of the first post's shard dies; the cluster promotes its replica.
    let victim = cluster.primary_for_key(&PostKeys::new(posts[0]).post);
    let moved: Vec<PostId> = posts
        .iter()
        .copied()
        .filter(|p| cluster.primary_for_key(&PostKeys::new(*p).post) == victim)
        .collect();
    let reconnects_before = hub.metric("realtime_hub_redis_reconnects_total").await;
    cluster.kill(victim);
    cluster.wait_for_failover(victim, Duration::from_secs(60));
    // A like on every post the dead node served, retried while the edge answers 503 (it may
    // still be finding the new primary).
    let (token, _) = &fans[3];
    for post in &moved {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = edge.try_like(token, *post, true).await;
            if r.status() == 200 {
                break;
            }
            assert_eq!(r.status(), 503, "a like during a failover is 200 or 503");
            assert!(tokio::time::Instant::now() < deadline, "no 200 within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut conn = cluster.async_conn().await;
    let mut want = BTreeMap::new();
    for post in &moved {
        want.insert(post.to_string(), stored(&mut conn, *post).await);
    }
    let seen = until_counts(&mut client, &want).await;
    assert_eq!(seen, want, "the client converged on the failed-over posts");
    assert!(
        hub.metric("realtime_hub_redis_reconnects_total").await > reconnects_before,
        "the hub subscribed again after the failover"
    );
}

//! The same components on a real Redis Cluster (3 primaries, 3 replicas): the host learns the
//! address is a cluster node and routes by slot; scripts stay single-slot and a feed page is
//! one script call per node, merged.

use std::collections::{BTreeMap, BTreeSet};

use likes_core::api::FeedPage;
use likes_core::keys::{PostKeys, post_field};

use likes_core::PostId;
use redis::AsyncCommands;
use testkit::TestCluster;

use crate::support::{Runtime, TestEdge, get_json, like, seed_posts, sign_in};

/// Every page of one order, as (likes, id), at `limit` per page.
async fn every_page(edge: &TestEdge, sort: &str, limit: u32) -> Vec<(u64, PostId)> {
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/feed?sort={sort}&limit={limit}&cursor={c}"),
            None => format!("/api/feed?sort={sort}&limit={limit}"),
        };
        let page: FeedPage = get_json(edge, &path, None).await;
        listed.extend(page.posts.into_iter().map(|p| (p.likes, p.id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return listed,
        }
        assert!(listed.len() < 10_000, "the feed never ends");
    }
}

#[tokio::test]
async fn likes_are_exact_and_feeds_cover_every_shard_on_a_cluster() {
    let cluster = TestCluster::start(3, 1);
    let Some(edge) = TestEdge::app_at(Runtime::Host, cluster.edge_variables(), &[]).await else {
        return;
    };
    let author = sign_in(&edge, "author").await;
    // 20 posts: ids 1..=20 cover every one of the 16 shards, so every node.
    let posts = seed_posts(&edge, &author.token, 20).await;
    let mut fans = Vec::new();
    for i in 0..5 {
        fans.push(sign_in(&edge, &format!("fan{i}")).await);
    }
    let mut wanted = BTreeMap::new();
    for (i, post) in posts.iter().enumerate() {
        let n = (i * 7) % 6;
        for fan in fans.iter().take(n) {
            assert_eq!(
                like(&edge, &fan.token, &post.id.to_string(), true)
                    .await
                    .status(),
                200
            );
            // Twice: one like per user per post.
            assert_eq!(
                like(&edge, &fan.token, &post.id.to_string(), true)
                    .await
                    .status(),
                200
            );
        }
        wanted.insert(post.id, n as u64);
    }
    let nodes: BTreeSet<usize> = posts
        .iter()
        .map(|p| cluster.primary_for_key(&PostKeys::new(p.id).post))
        .collect();
    assert_eq!(nodes.len(), 3, "the posts live on every primary");

    let mut conn = cluster.async_conn().await;
    for (id, n) in &wanted {
        let stored: u64 = conn
            .hget(PostKeys::new(*id).post, post_field::LIKES)
            .await
            .expect("count");
        assert_eq!(stored, *n, "post {id}");
    }

    for limit in [3, 7] {
        let new = every_page(&edge, "new", limit).await;
        let ids: Vec<PostId> = new.iter().map(|(_, id)| *id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted, "newest first, limit {limit}");
        assert_eq!(
            ids.len(),
            posts.len(),
            "every post once, limit {limit}: {ids:?}"
        );

        let top = every_page(&edge, "top", limit).await;
        let counts: Vec<u64> = top.iter().map(|(l, _)| *l).collect();
        let mut sorted = counts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(counts, sorted, "most liked first, limit {limit}");
        let listed: BTreeMap<PostId, u64> = top.iter().map(|(l, id)| (*id, *l)).collect();
        assert_eq!(
            top.len(),
            posts.len(),
            "every post once, limit {limit}: {top:?}"
        );
        assert_eq!(listed, wanted, "top shows the exact counts, limit {limit}");
    }
}

#[tokio::test]
async fn a_replicated_like_waits_for_the_replica_of_its_own_shard_only() {
    let mut cluster = TestCluster::start(3, 1);
    let vars = [
        ("like_durability", "replicated"),
        ("replica_wait_ms", "300"),
    ];
    let Some(edge) = TestEdge::app_at(Runtime::Host, cluster.edge_variables(), &vars).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    let post = seed_posts(&edge, &ann.token, 1).await.remove(0);
    let owner = cluster.primary_for_key(&PostKeys::new(post.id).post);
    let other = cluster
        .primaries()
        .into_iter()
        .find(|&p| p != owner)
        .expect("another primary");
    // Another shard's replica is gone: this like's own replica still confirms it (a `WAIT` sent
    // to every primary would say 0 here).
    for r in cluster.replicas_of(other) {
        cluster.kill(r);
    }
    let fan = sign_in(&edge, "fan").await;
    let resp = like(&edge, &fan.token, &post.id.to_string(), true).await;
    assert_eq!(resp.status(), 200);
    // Its own replica gone: no false 200.
    for r in cluster.replicas_of(owner) {
        cluster.kill(r);
    }
    let late = sign_in(&edge, "late").await;
    let resp = like(&edge, &late.token, &post.id.to_string(), true).await;
    assert_eq!(resp.status(), 503);
}

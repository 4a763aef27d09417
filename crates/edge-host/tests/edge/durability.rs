//! `like_durability`: under `replicated` a like is answered 200 only once a replica has it, and
//! 503 (never a false 200) when no replica confirms in time; `memory` answers from the primary
//! alone. On one primary with a replica, as real Spin deployments run, on both runtimes.

use std::time::{Duration, Instant};

use likes_core::keys::{PostKeys, post_field};
use reqwest::StatusCode;
use rstest::rstest;

use crate::support::{Runtime, TestEdge, TestRedis, assert_problem, like, new_post, sign_in};

/// A replica of `primary`, synced before it returns.
fn replica_of(primary: &TestRedis) -> TestRedis {
    let port = primary.port().to_string();
    let replica = TestRedis::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--masteruser",
        "default",
        "--masterauth",
        testkit::OPERATOR_PASSWORD,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.conn())
            .expect("INFO replication");
        if info.contains("master_link_status:up") {
            return replica;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never synced: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn a_replicated_like_is_acknowledged_only_once_a_replica_has_it(#[case] rt: Runtime) {
    let primary = TestRedis::start();
    let mut replica = replica_of(&primary);
    let vars = [
        ("like_durability", "replicated"),
        ("replica_wait_ms", "300"),
    ];
    let Some(edge) = TestEdge::app_with(rt, &primary, &vars).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    let post = new_post(&edge, &ann.token, 1).await;
    let resp = like(&edge, &ann.token, &post.id.to_string(), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Acknowledged means the replica already holds it: read it there, with no waiting.
    let on_replica: Option<u64> = redis::cmd("HGET")
        .arg(PostKeys::new(post.id).post)
        .arg(post_field::LIKES)
        .query(&mut replica.conn())
        .expect("HGET on the replica");
    assert_eq!(on_replica, Some(1));

    replica.kill();
    let bob = sign_in(&edge, "bob").await;
    let resp = like(&edge, &bob.token, &post.id.to_string(), true).await;
    let retry = resp.headers().get("retry-after").cloned();
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(retry.is_some(), "a 503 says when to retry");
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn a_memory_like_is_acknowledged_by_the_primary_alone(#[case] rt: Runtime) {
    let primary = TestRedis::start();
    let mut replica = replica_of(&primary);
    let Some(edge) = TestEdge::app_with(rt, &primary, &[("like_durability", "memory")]).await
    else {
        return;
    };
    replica.kill();
    let ann = sign_in(&edge, "ann").await;
    let post = new_post(&edge, &ann.token, 1).await;
    let resp = like(&edge, &ann.token, &post.id.to_string(), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

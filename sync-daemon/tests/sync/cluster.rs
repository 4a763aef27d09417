//! The daemon on a Redis Cluster (3 primaries, a replica each): the streams live on every
//! node, several daemons share them, and one killed with SIGKILL while it holds a batch is
//! taken over by the others; PostgreSQL ends exact.

use std::collections::BTreeSet;

use likes_core::PostId;
use likes_core::keys::PostKeys;
use redis::aio::ConnectionLike;

use crate::support::{Env, InProcess, Lcg, Model, random_ops, spawn_binary};

/// Posts liked in these tests: enough that every shard, so every primary, has some.
const POSTS: u64 = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_a_cluster_one_killed_holding_a_batch_end_exact() {
    let env = Env::cluster();
    let mut conn = env.redis.async_conn().await;
    let primaries: BTreeSet<usize> = (1..=POSTS)
        .map(|p| {
            let k = PostKeys::new(PostId::new(p).expect("nonzero"));
            env.redis.primary_for_key(&k.stream)
        })
        .collect();
    assert_eq!(
        primaries.len(),
        3,
        "the posts' streams are on every primary"
    );

    let mut model = Model::default();
    let mut rng = Lcg(17);
    let mut survivor = env.config();
    survivor.consumer = "survivor".into();
    survivor.batch_max = 16;
    let group = survivor.group.clone();
    let daemon = InProcess::spawn(survivor);

    // A second daemon, the real binary, killed -9 at a moment it holds delivered but
    // unacknowledged entries; tried again (under another name) if a kill missed that moment.
    let mut orphaned = 0;
    for attempt in 0..10 {
        let name = format!("victim-{attempt}");
        let mut child = spawn_binary(
            &env,
            &[
                "--consumer",
                &name,
                "--batch-max",
                "16",
                "--claim-idle-ms",
                "300",
            ],
        );
        for _ in 0..40 {
            random_ops(&mut conn, &mut model, &mut rng, 40, POSTS, 60).await;
            if pending_at(&mut conn, &group, &name).await > 0 {
                break;
            }
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the daemon was running when killed"
        );
        child.kill().expect("kill -9");
        let _ = child.wait();
        orphaned = pending_at(&mut conn, &group, &name).await;
        if orphaned > 0 {
            break;
        }
    }
    assert!(orphaned > 0, "no kill landed while the victim held a batch");

    // The survivor takes the orphaned entries over while new likes keep coming.
    random_ops(&mut conn, &mut model, &mut rng, 300, POSTS, 60).await;
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

/// Entries of `group` delivered to `consumer` and not acknowledged, over every stream.
async fn pending_at(conn: &mut (impl ConnectionLike + Send), group: &str, consumer: &str) -> usize {
    let mut total = 0;
    for stream in likes_core::keys::all_streams() {
        let entries: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(1000)
            .arg(consumer)
            .query_async(conn)
            .await;
        // No group yet on a stream nobody wrote to: nothing pending there.
        total += entries.map(|e| e.len()).unwrap_or(0);
    }
    total
}

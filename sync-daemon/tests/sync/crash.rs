//! Crashes where they hurt: after COMMIT before XACK (fault hook, real process), and kill -9 at
//! random moments under load.

use std::time::Duration;

use crate::support::{Env, InProcess, Lcg, Model, random_ops, spawn_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_between_commit_and_ack_double_counts_nothing() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let mut rng = Lcg(42);
    random_ops(&mut conn, &mut model, &mut rng, 1500, 30, 50).await;

    // Three runs that each die right after their second COMMIT, before its XACK.
    for _ in 0..3 {
        let mut child = spawn_binary(&env, &["--fault-exit-after-commit", "2"]);
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert_eq!(
            status.code(),
            Some(sync_daemon::FAULT_EXIT_CODE),
            "{status:?}"
        );
        // Something was committed but left unacknowledged.
        let pending: i64 = pending_total(&mut conn).await;
        assert!(pending > 0, "the crash left entries pending");
        random_ops(&mut conn, &mut model, &mut rng, 200, 30, 50).await;
    }
    let committed = env
        .pg
        .psql("SELECT count(*) FROM stream_checkpoints WHERE last_ms >= 0");
    assert_ne!(committed, "0");

    let mut child = spawn_binary(&env, &[]);
    env.wait_drained(&mut conn, "sync-daemon").await;
    child.kill().expect("kill");
    let _ = child.wait();
    env.assert_matches(&mut conn, &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_under_load_loses_and_doubles_nothing() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let mut rng = Lcg(99);
    random_ops(&mut conn, &mut model, &mut rng, 500, 20, 40).await;
    for round in 0..6u64 {
        let mut child = spawn_binary(&env, &["--batch-max", "20"]);
        // Load while the daemon runs, then SIGKILL it wherever it is.
        let ops = 150 + 40 * round as usize;
        random_ops(&mut conn, &mut model, &mut rng, ops, 20, 40).await;
        tokio::time::sleep(Duration::from_millis(30 + 37 * round)).await;
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the daemon was running when killed"
        );
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
    // The killed daemons made progress (so the kills landed mid-stream, not before start).
    let applied = env.pg.psql("SELECT count(*) FROM likes");
    assert_ne!(applied, "0");
    env.drain_once(&mut conn).await;
    env.assert_matches(&mut conn, &model).await;
}

async fn pending_total(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let mut total = 0;
    for stream in likes_core::keys::all_streams() {
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("sync-daemon")
            .query_async(conn)
            .await
            .expect("XPENDING");
        if let redis::Value::Array(items) = reply
            && let Some(redis::Value::Int(n)) = items.first()
        {
            total += n;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_daemons_on_the_same_streams_apply_everything_once() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let mut rng = Lcg(2024);
    let mut a = env.config();
    a.consumer = "a".into();
    a.batch_max = 16;
    let mut b = a.clone();
    b.consumer = "b".into();
    let group = a.group.clone();
    let da = InProcess::spawn(a);
    let db = InProcess::spawn(b);
    // A third one, the real binary, killed -9 under load: its pending entries are orphaned
    // until a survivor claims them.
    let mut child = spawn_binary(
        &env,
        &[
            "--consumer",
            "c",
            "--batch-max",
            "16",
            "--claim-idle-ms",
            "300",
        ],
    );
    random_ops(&mut conn, &mut model, &mut rng, 1500, 30, 40).await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    random_ops(&mut conn, &mut model, &mut rng, 500, 30, 40).await;
    da.stop().await;
    random_ops(&mut conn, &mut model, &mut rng, 300, 30, 40).await;
    env.wait_drained(&mut conn, &group).await;
    db.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

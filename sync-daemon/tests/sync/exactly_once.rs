//! The steady state: N events → exactly the rows and counts Redis holds, and replays are no-ops.

use likes_core::keys;

use crate::support::{Env, InProcess, Lcg, Model, create_user, like_into, random_ops};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_events_give_exact_rows_and_counts_and_a_replay_changes_nothing() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let mut names = Vec::new();
    for i in 0..10 {
        let name = format!("user{i}");
        let id = create_user(&mut conn, &name).await;
        names.push(format!("{id}|{name}"));
    }
    let mut rng = Lcg(7);
    random_ops(&mut conn, &mut model, &mut rng, 2000, 40, 10).await;
    assert!(model.events > 500, "the workload changes state often");

    let config = env.config();
    let group = config.group.clone();
    let daemon = InProcess::spawn(config.clone());
    env.wait_drained(&mut conn, &group).await;
    env.assert_matches(&mut conn, &model).await;
    assert_eq!(
        env.pg
            .psql("SELECT id || '|' || name FROM users ORDER BY id"),
        names.join("\n")
    );
    // More events while running.
    random_ops(&mut conn, &mut model, &mut rng, 500, 40, 10).await;
    env.wait_drained(&mut conn, &group).await;
    env.assert_matches(&mut conn, &model).await;
    daemon.stop().await;

    // Forced checkpoint loss and a full replay of every stream from the start.
    env.forget_progress(&mut conn, &group).await;
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
    assert_eq!(env.pg.psql("SELECT count(*) FROM users"), "10");
    assert_eq!(env.pg.psql("SELECT count(*) FROM stream_dead_letters"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_unlike_like_sequences_end_right_across_batch_boundaries() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    for batch_max in [1usize, 2, 3, 7] {
        // Sequences of every length 1..=6 for several users on one post per batch size, so
        // the sequences straddle batch boundaries at every offset.
        let post = 1000 + batch_max as u64;
        for user in 1..=6u64 {
            for step in 0..user {
                like_into(&mut conn, &mut model, post, user, step % 2 == 0).await;
            }
        }
        // Interleaved users on a second post of the same shard.
        let post2 = post + 16;
        for step in 0..9u64 {
            for user in 1..=3u64 {
                like_into(&mut conn, &mut model, post2, user, (step + user) % 2 == 0).await;
            }
        }
        let mut config = env.config();
        config.batch_max = batch_max;
        let group = config.group.clone();
        let daemon = InProcess::spawn(config);
        env.wait_drained(&mut conn, &group).await;
        daemon.stop().await;
        env.assert_matches(&mut conn, &model).await;
    }
    // Odd-length sequences end liked, even-length ones unliked.
    assert!(model.likes.contains(&(1001, 5)) && !model.likes.contains(&(1001, 6)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entries_are_parked_not_lost_and_do_not_block() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let stream = keys::Shard(3).stream();
    like_into(&mut conn, &mut model, 3, 1, true).await;
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("v")
        .arg("99")
        .arg("kind")
        .arg("like")
        .query_async(&mut conn)
        .await
        .expect("XADD");
    like_into(&mut conn, &mut model, 3, 2, true).await;
    env.drain_once(&mut conn).await;
    env.assert_matches(&mut conn, &model).await;
    let parked = env.pg.psql("SELECT stream, error FROM stream_dead_letters");
    assert!(
        parked.starts_with(&stream) && parked.contains("version 99"),
        "{parked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_trimmed_only_below_what_every_group_has_committed() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    let stream = keys::Shard(1).stream();
    // Another group that has read nothing holds the whole stream.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("other")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    for user in 1..=20 {
        like_into(&mut conn, &mut model, 1, user, true).await;
    }
    let mut config = env.config();
    config.trim_keep = Some(std::time::Duration::ZERO);
    config.trim_every = std::time::Duration::from_millis(100);
    let group = config.group.clone();
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let len = |c: &mut redis::aio::MultiplexedConnection| {
        let stream = stream.clone();
        let mut c = c.clone();
        async move {
            let n: u64 = redis::cmd("XLEN")
                .arg(&stream)
                .query_async(&mut c)
                .await
                .expect("XLEN");
            n
        }
    };
    assert_eq!(
        len(&mut conn).await,
        20,
        "the other group still needs every entry"
    );
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg("other")
        .query_async(&mut conn)
        .await
        .expect("XGROUP DESTROY");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while len(&mut conn).await > 0 {
        assert!(std::time::Instant::now() < deadline, "never trimmed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_repairs_a_drifted_redis_count_from_postgres() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    for user in 1..=5 {
        like_into(&mut conn, &mut model, 5, user, true).await;
    }
    let mut config = env.config();
    config.reconcile_every = Some(std::time::Duration::from_millis(100));
    let group = config.group.clone();
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    // Drift: the counter is wrong; the next like makes the post "recently active".
    let key = likes_core::keys::PostKeys::new(likes_core::PostId::new(5).expect("nonzero")).post;
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("likes")
        .arg(999)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    like_into(&mut conn, &mut model, 5, 6, true).await;
    env.wait_drained(&mut conn, &group).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n: i64 = redis::cmd("HGET")
            .arg(&key)
            .arg("likes")
            .query_async(&mut conn)
            .await
            .expect("HGET");
        if n == 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "count never repaired (still {n})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

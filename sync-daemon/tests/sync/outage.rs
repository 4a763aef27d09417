//! PostgreSQL or Redis down under load: the daemon retries with backoff, keeps its place in
//! the stream and catches up.

use std::time::Duration;

use crate::support::{Env, Lcg, Model, random_ops};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_while_under_load_loses_nothing() {
    let mut env = Env::start();
    let mut conn = env.redis.async_conn().await;
    let mut model = Model::default();
    let mut rng = Lcg(5);
    let (daemon, group) = env.spawn_daemon();
    random_ops(&mut conn, &mut model, &mut rng, 400, 25, 30).await;

    env.pg.stop();
    random_ops(&mut conn, &mut model, &mut rng, 600, 25, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.pg.restart();
    random_ops(&mut conn, &mut model, &mut rng, 300, 25, 30).await;

    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_a_while_under_load_loses_and_doubles_nothing() {
    // Every write is on disk before it is acknowledged, so the restart keeps all of it.
    let mut env = Env::start_with_redis(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut conn = env.redis.async_conn().await;
    let mut model = Model::default();
    let mut rng = Lcg(77);
    let (daemon, group) = env.spawn_daemon();
    random_ops(&mut conn, &mut model, &mut rng, 800, 25, 30).await;

    // Killed while the daemon reads, applies and acknowledges: some batches are mid-flight.
    env.redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.redis.restart();
    let mut conn = env.redis.async_conn().await;
    random_ops(&mut conn, &mut model, &mut rng, 600, 25, 30).await;
    // A second, shorter outage right in the middle of catching up.
    env.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.redis.restart();
    let mut conn = env.redis.async_conn().await;
    random_ops(&mut conn, &mut model, &mut rng, 300, 25, 30).await;

    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    env.assert_matches(&mut conn, &model).await;
}

//! The generator against the real system: a throw-away Redis and PostgreSQL, the real sync
//! daemon, realtime hub and edge host (release binaries, real `spin.toml` and components).
//! A short run must end in PASS with every report file written; a count corrupted afterwards,
//! in Redis or in PostgreSQL, must turn the same verdict into FAIL.
//!
//! Needs `cargo build --release -p edge-host -p realtime-hub -p sync-daemon` and `cargo xtask
//! build` (the components).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use likes_core::keys::{PostKeys, post_field};
use likes_load::edge::{Edge, Outcome};
use likes_load::{Config, NoProgress, Popularity, Status, verdict};
use testkit::{TestPostgres, TestRedis, free_port, workspace_root};

const SECRET: &str = "likes-load-test-secret-not-for-production";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(name: &str) -> PathBuf {
    let path = workspace_root().join("target/release").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p {name}",
        path.display()
    );
    path
}

fn spawn(cmd: &mut Command) -> Proc {
    Proc(
        cmd.current_dir(workspace_root())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning a service"),
    )
}

/// Waits until `GET url` answers 200.
async fn ready(base: &str, path: &str) {
    let client = Edge::new(base, 1).expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (outcome, _) = client.send(Method::GET, path, None, None).await;
        if outcome == Outcome::Status(http::StatusCode::OK) {
            return;
        }
        assert!(Instant::now() < deadline, "{base}{path} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole system on free ports. Fields drop in order: the services stop before Redis
/// and PostgreSQL go away.
struct System {
    _procs: Vec<Proc>,
    redis: TestRedis,
    pg: TestPostgres,
    edge: String,
    hub: String,
    sync_metrics: String,
}

async fn system() -> System {
    let redis = TestRedis::start();
    let pg = TestPostgres::start();
    let (edge_port, hub_port, sync_port) = (free_port(), free_port(), free_port());
    let sync = spawn(
        Command::new(bin("sync-daemon"))
            .args([
                "--redis-url",
                &redis.url_as(testkit::Role::Daemon),
                "--database-url",
                &pg.url(),
            ])
            .args(["--admin-listen", &format!("127.0.0.1:{sync_port}")])
            // Reconciliation would repair the counts this test corrupts on purpose.
            .args(["--reconcile-secs", "0", "run"]),
    );
    let hub = spawn(Command::new(bin("realtime-hub")).args([
        "--listen",
        &format!("127.0.0.1:{hub_port}"),
        "--redis-url",
        &redis.url_as(testkit::Role::Hub),
        "--events-per-second",
        "0",
    ]));
    let edge = spawn(
        Command::new(bin("edge-host"))
            .args(["--manifest", "spin.toml"])
            .args(["--listen", &format!("127.0.0.1:{edge_port}")])
            .args(
                redis
                    .edge_variables()
                    .map(|(k, v)| format!("--variable={k}={v}")),
            )
            .args(["--variable", &format!("session_secret={SECRET}")])
            // A load test is thousands of users from one address, liking as fast as they can.
            .args(["--variable", "likes_per_minute=0"])
            .args(["--variable", "sessions_per_minute=0"]),
    );
    let s = System {
        edge: format!("http://127.0.0.1:{edge_port}"),
        hub: format!("http://127.0.0.1:{hub_port}"),
        sync_metrics: format!("http://127.0.0.1:{sync_port}/metrics"),
        _procs: vec![edge, hub, sync],
        redis,
        pg,
    };
    ready(&s.edge, "/api/health").await;
    ready(&s.hub, "/healthz").await;
    ready(&format!("http://127.0.0.1:{sync_port}"), "/healthz").await;
    s
}

fn config(s: &System) -> Config {
    Config {
        edge: s.edge.clone(),
        hub: Some(s.hub.clone()),
        redis: s.redis.url_as(testkit::Role::LoadGen),
        database_url: Some(s.pg.url()),
        sync_metrics: Some(s.sync_metrics.clone()),
        users: 300,
        sockets: 60,
        rate: 300.0,
        duration: Duration::from_secs(3),
        ramp: Duration::from_secs(1),
        posts: 12,
        popularity: Popularity::Zipf,
        unlike_ratio: 0.2,
        uploads_per_sec: 2.0,
        drain_timeout: Duration::from_secs(60),
        ..Config::default()
    }
}

async fn run(config: Config) -> likes_load::Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    likes_load::run(config, Arc::new(NoProgress), stop)
        .await
        .expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_passes_and_a_corrupted_count_fails_the_verdict() {
    let s = system().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(config(&s)).await;
    let charts = report.write(dir.path()).expect("report written");

    assert_eq!(
        report.verdict.status,
        Status::Pass,
        "{}",
        report.markdown(&[])
    );
    assert_eq!(report.setup.users_via, "api");
    assert_eq!(report.setup.posts_via, "api");
    assert_eq!(report.verdict.posts, 12);
    assert!(report.verdict.expected_total > 0);
    assert_eq!(report.verdict.redis_total, report.verdict.expected_total);
    assert_eq!(report.verdict.pg_total, report.verdict.expected_total);
    assert!(report.scheduled >= 900, "{}", report.scheduled);
    assert!(report.uploads > 0);
    assert_eq!(report.sockets.subscribed, 60);
    assert!(
        report.sockets.frames > 0,
        "no likes:updated reached a socket"
    );
    assert!(report.sockets.delivery.count > 0);
    assert!(!report.sync_lag.is_empty(), "sync lag was never sampled");
    for f in ["report.json", "report.md"]
        .into_iter()
        .chain(charts.iter().map(String::as_str))
    {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    assert!(charts.contains(&"throughput.png".to_owned()), "{charts:?}");
    let back = likes_load::read_report(&dir.path().join("report.json")).expect("report.json");
    assert_eq!(back.expected, report.expected);

    // One more like in Redis than the generator left: the same check must fail on that post.
    let (hot, hot_expected) = report
        .expected
        .iter()
        .copied()
        .max_by_key(|(_, n)| *n)
        .expect("posts");
    let mut conn = s.redis.async_conn().await;
    let _: i64 = redis::cmd("HINCRBY")
        .arg(PostKeys::new(hot).post)
        .arg(post_field::LIKES)
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("HINCRBY");
    let client = service_kit::redis::Redis::open(&s.redis.url()).expect("redis client");
    let v = verdict::check(
        &client,
        Some(&s.pg.url()),
        &report.expected,
        Duration::from_secs(2),
        &NoProgress,
    )
    .await
    .expect("verdict");
    assert_eq!(v.status, Status::Fail);
    assert_eq!(v.mismatch_count, 1);
    assert_eq!(v.mismatches[0].post, hot);
    assert_eq!(v.mismatches[0].redis, Some(hot_expected + 1));
    assert_eq!(v.mismatches[0].pg_count, Some(hot_expected));

    // Redis repaired, PostgreSQL one short on another post: fails again.
    let _: i64 = redis::cmd("HINCRBY")
        .arg(PostKeys::new(hot).post)
        .arg(post_field::LIKES)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("HINCRBY");
    let (other, _) = report
        .expected
        .iter()
        .copied()
        .find(|(p, n)| *p != hot && *n > 0)
        .expect("a second liked post");
    s.pg.psql(&format!(
        "UPDATE post_like_counts SET likes = likes - 1 WHERE post_id = {}",
        other.get()
    ));
    let v = verdict::check(
        &client,
        Some(&s.pg.url()),
        &report.expected,
        Duration::from_secs(1),
        &NoProgress,
    )
    .await
    .expect("verdict");
    assert_eq!((v.status, v.mismatch_count), (Status::Fail, 1));
    assert_eq!(v.mismatches[0].post, other);

    // Minted users (session.lua in Redis, tokens signed here) pass the same verdict.
    let minted = run(Config {
        users: 500,
        sockets: 0,
        hub: None,
        uploads_per_sec: 0.0,
        token_secret: Some(SECRET.into()),
        ..config(&s)
    })
    .await;
    assert_eq!(minted.setup.users_via, "minted");
    assert_eq!(
        minted.verdict.status,
        Status::Pass,
        "{}",
        minted.markdown(&[])
    );
    assert!(minted.errors.is_empty(), "{:?}", minted.errors);
}

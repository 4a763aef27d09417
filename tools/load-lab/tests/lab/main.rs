//! The lab against the real system: a throw-away Redis and the real edge host (release binary,
//! real `spin.toml` and components). A page's raw Socket.IO client starts a tiny run, watches
//! its ticks and verdict, and a late joiner gets the state; a lab started without
//! `--enable-lab` (the real binary, default flags) refuses to run anything.
//!
//! Who may drive it (`access.rs`, no edge needed): pages on foreign origins are refused before
//! any handshake (WebSocket and polling), connections without the lab key get no control, and
//! runs larger than the caps are refused.
//!
//! Needs `cargo build --release -p edge-host` and `cargo xtask build` (the components).

mod access;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab_protocol::{self as lab, Ack, Done, LabState, Outcome, Progress};
use load_lab::config::LabKey;
use serde_json::{Value, json};
use testkit::socketio::{Client, Options};
use testkit::{TestRedis, free_port, workspace_root};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn edge_host() -> PathBuf {
    let path = workspace_root().join("target/release/edge-host");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p edge-host",
        path.display()
    );
    path
}

/// Waits until `GET url` answers 200.
async fn ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis and the edge on free ports.
struct System {
    _edge: Proc,
    redis: TestRedis,
    edge: String,
}

async fn system() -> System {
    let redis = TestRedis::start();
    let port = free_port();
    let edge = Proc(
        Command::new(edge_host())
            .current_dir(workspace_root())
            .args(["--manifest", "spin.toml"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(
                redis
                    .edge_variables()
                    .map(|(k, v)| format!("--variable={k}={v}")),
            )
            .args([
                "--variable",
                "session_secret=lab-test-only-session-secret-of-32-bytes-or-more",
            ])
            // Every run signs its users in through the API: no sign-in rate limit here.
            .args(["--variable", "sessions_per_minute=0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning edge-host"),
    );
    let edge_url = format!("http://127.0.0.1:{port}");
    ready(&format!("{edge_url}/api/health")).await;
    System {
        _edge: edge,
        redis,
        edge: edge_url,
    }
}

/// An in-process lab, and the key its clients present.
struct Lab {
    addr: SocketAddr,
    key: LabKey,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Lab {
    /// A client that presents the lab's key, as the app's page does.
    async fn client(&self) -> Client {
        keyed(self.addr, self.key.expose()).await
    }
}

/// Connects with `key` in the auth payload.
async fn keyed(addr: SocketAddr, key: &str) -> Client {
    Client::connect_with(
        addr,
        &Options {
            auth: Some(json!({ "key": key })),
            ..Options::default()
        },
    )
    .await
    .expect("connected with the key")
}

/// A lab serving `config` (its key from [`LabKey::generate`], as the binary makes one).
async fn lab_with(config: load_lab::Config) -> Lab {
    let key = config.key.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(load_lab::run(listener, config, async move {
        let _ = rx.await;
    }));
    ready(&format!("http://{addr}/healthz")).await;
    Lab {
        addr,
        key,
        stop: Some(tx),
        task,
    }
}

fn new_config(target: likes_load::Config) -> load_lab::Config {
    load_lab::Config::new(target, LabKey::generate().expect("a lab key"))
}

/// A lab with the runs enabled, aimed at `s` (no hub, no PostgreSQL).
async fn enabled_lab(s: &System) -> Lab {
    let target = likes_load::Config {
        edge: s.edge.clone(),
        hub: None,
        redis: s.redis.url_as(testkit::Role::LoadGen),
        database_url: None,
        sync_metrics: None,
        ..likes_load::Config::default()
    };
    let mut config = new_config(target);
    config.enabled = true;
    config.limits.max_users = 1_000;
    lab_with(config).await
}

fn tiny_run(duration_secs: f64) -> Value {
    json!({"users": 20, "posts": 5, "rate": 20, "duration_secs": duration_secs, "ramp_secs": 0, "sockets": 0})
}

fn ack(v: Value) -> Ack {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not an ack ({e}): {v}"))
}

fn error_title(v: Value) -> String {
    let a = ack(v);
    assert!(!a.ok);
    let e = a.error.expect("an error ack");
    assert!(!e.detail.is_empty());
    e.title
}

async fn state(c: &mut Client) -> LabState {
    let v = c
        .next_event(lab::STATE, Duration::from_secs(5))
        .await
        .expect("lab:state on connect");
    serde_json::from_value(v).expect("a LabState")
}

async fn done(c: &mut Client, wait: Duration) -> Done {
    let v = c
        .next_event(lab::DONE, wait)
        .await
        .expect("lab:done within the wait");
    serde_json::from_value(v).expect("a Done")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_run_streams_ticks_and_ends_with_a_verdict() {
    let s = system().await;
    let mut lab = enabled_lab(&s).await;

    let mut a = lab.client().await;
    let first = state(&mut a).await;
    assert!(first.enabled && !first.running && first.last.is_none());
    assert_eq!(first.max_users, 1_000);

    let too_big = a.emit_ack(lab::START, json!({"preset": "10k"})).await;
    assert_eq!(error_title(too_big), "Too many users");
    assert_eq!(
        error_title(a.emit_ack(lab::STOP, json!({})).await),
        "Nothing to stop"
    );

    let started = ack(a.emit_ack(lab::START, tiny_run(3.0)).await);
    assert!(started.ok, "{started:?}");
    let run = started.run.expect("the run's settings");
    assert_eq!(
        (run.users, run.posts, run.rate, run.duration_secs),
        (20, 5, 20.0, 3.0)
    );
    assert_eq!(
        error_title(a.emit_ack(lab::START, tiny_run(3.0)).await),
        "Run in progress"
    );

    // A page that opens mid-run learns that a run is going, and with which settings.
    let first_tick = a
        .next_event(lab::PROGRESS, Duration::from_secs(30))
        .await
        .expect("progress");
    let mut progress = vec![first_tick];
    let mut b = lab.client().await;
    let late = state(&mut b).await;
    assert!(late.running, "{late:?}");
    assert_eq!(late.run.as_ref().map(|r| r.users), Some(20));

    let verdict = done(&mut a, Duration::from_secs(90)).await;
    progress.extend(a.take(lab::PROGRESS));
    let progress: Vec<Progress> = progress
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("a Progress"))
        .collect();
    let ticks: Vec<_> = progress
        .iter()
        .filter_map(|p| match p {
            Progress::Tick(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(!ticks.is_empty(), "no ticks: {progress:?}");
    assert!(ticks.iter().any(|t| t.requests > 0), "{ticks:?}");
    assert!(
        progress
            .iter()
            .any(|p| matches!(p, Progress::Phase { phase } if phase == "load")),
        "{progress:?}"
    );

    // Without PostgreSQL the verdict cannot pass; Redis must still match the generator.
    assert_eq!(verdict.outcome, Outcome::Fail, "{verdict:?}");
    let summary = verdict.summary.expect("a summary");
    assert!(summary.note.is_some_and(|n| n.contains("PostgreSQL")));
    assert_eq!(summary.posts, 5);
    assert!(summary.expected_total > 0, "{}", summary.markdown);
    assert_eq!(summary.redis_total, summary.expected_total);
    assert_eq!(summary.mismatch_count, 0);
    assert!(summary.scheduled > 0);
    assert!(summary.markdown.contains("**Verdict: FAIL**"));
    // Every page hears the verdict, and later pages find it in the state.
    assert_eq!(
        done(&mut b, Duration::from_secs(5)).await.outcome,
        Outcome::Fail
    );
    let mut c = lab.client().await;
    let after = state(&mut c).await;
    assert!(!after.running);
    assert_eq!(after.last.map(|d| d.outcome), Some(Outcome::Fail));
    assert!(!after.ticks.is_empty());

    // A second run may start now; shutting the lab down stops it early, with a verdict.
    let long = ack(a.emit_ack(lab::START, tiny_run(120.0)).await);
    assert!(long.ok, "{long:?}");
    loop {
        let v = a
            .next_event(lab::PROGRESS, Duration::from_secs(30))
            .await
            .expect("progress of the second run");
        if v["type"] == "tick" {
            break;
        }
    }
    let t = Instant::now();
    let _ = lab.stop.take().map(|tx| tx.send(()));
    let stopped = done(&mut a, Duration::from_secs(20)).await;
    assert_ne!(stopped.outcome, Outcome::Error, "{stopped:?}");
    assert!(a.closed_within(Duration::from_secs(10)).await);
    tokio::time::timeout(Duration::from_secs(10), &mut lab.task)
        .await
        .expect("run returns after shutdown")
        .expect("no panic")
        .expect("clean shutdown");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_started_without_enable_lab_refuses_to_run() {
    let key = LabKey::generate().expect("a key");
    let port = free_port();
    let _lab = Proc(
        Command::new(env!("CARGO_BIN_EXE_load-lab"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .env_remove("LAB_ENABLED")
            .env("LAB_KEY", key.expose())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning load-lab"),
    );
    ready(&format!("http://127.0.0.1:{port}/healthz")).await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = keyed(addr, key.expose()).await;
    let s = state(&mut c).await;
    assert!(!s.enabled && !s.running);
    for event in [lab::START, lab::STOP] {
        assert_eq!(
            error_title(c.emit_ack(event, tiny_run(1.0)).await),
            "Lab disabled"
        );
    }
    // Still connected and still refusing.
    assert_eq!(
        error_title(c.emit_ack(lab::START, json!({"preset": "10k"})).await),
        "Lab disabled"
    );
}

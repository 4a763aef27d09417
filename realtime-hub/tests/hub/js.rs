//! The official JS `socket.io-client` (pinned in `js/package.json`) against the hub, over
//! WebSocket and long-polling, fed by published events and by real likes through the edge
//! host. Runs only when `node` is installed.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use likes_core::keys::PostKeys;
use testkit::TestRedis;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use futures::future::join_all;

use crate::edge::{Edge, create_post, fresh_post};
use crate::support::{Hub, like_message, post, set_count};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// True when node is present and the client is installed (running `npm ci` once if needed).
/// The check and the install happen once per test binary: tests run in parallel, and one test
/// seeing a half-written `node_modules` while another installs it fails to import the client.
async fn node_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    tokio::task::spawn_blocking(|| *READY.get_or_init(install_client))
        .await
        .expect("the install thread panicked")
}

fn install_client() -> bool {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        eprintln!("node not installed: skipping the socket.io-client test");
        return false;
    }
    if js_dir().join("node_modules/.package-lock.json").exists() {
        return true;
    }
    let ci = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(js_dir())
        .status();
    assert!(
        ci.is_ok_and(|s| s.success()),
        "npm ci in realtime-hub/js failed"
    );
    true
}

/// Runs the node client with `transport` (`websocket`, `polling`, or `upgrade`: polling then
/// WebSocket) and checks it ends on `final_transport`.
async fn run_client(transport: &str, final_transport: &str) {
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    set_count(&mut conn, post(11), 4).await;
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;

    let (child, lines) = spawn_client(&hub, transport, "p_11", 4, 200).await;

    let mut pipe = redis::pipe();
    for n in 5..=200 {
        pipe.cmd("SPUBLISH")
            .arg(PostKeys::new(post(11)).like_channel)
            .arg(like_message(post(11), n))
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.expect("burst");

    let result = client_result(child, lines).await;
    assert_eq!(result["transport"], final_transport);
    let updates = result["updates"].as_array().expect("updates");
    assert!(
        !updates.is_empty() && updates.len() <= 4,
        "{} updates: {result}",
        updates.len()
    );
    assert_eq!(updates.last().map(|u| u["likes"].clone()), Some(200.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_over_websocket() {
    if node_ready().await {
        run_client("websocket", "websocket").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_over_long_polling() {
    if node_ready().await {
        run_client("polling", "polling").await;
    }
}

/// The browser's default: long-polling first, then the upgrade to WebSocket mid-session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_upgrading_from_polling_to_websocket() {
    if node_ready().await {
        run_client("upgrade", "websocket").await;
    }
}

/// The node client's result line (JSON), once it has exited successfully.
async fn client_result(
    mut child: tokio::process::Child,
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let result = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("node client result within 15 s")
        .expect("read stdout")
        .expect("a result line");
    let status = child.wait().await.expect("node exit");
    assert!(status.success(), "node client failed: {result}");
    serde_json::from_str(&result).expect("result json")
}

/// Starts the node client and waits for its READY line (it subscribed and checked the ack).
async fn spawn_client(
    hub: &Hub,
    transport: &str,
    post: &str,
    initial: u64,
    last: u64,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = Command::new("node")
        .arg("hub-client.test.mjs")
        .args([
            &format!("http://{}", hub.addr),
            transport,
            post,
            &initial.to_string(),
            &last.to_string(),
        ])
        .current_dir(js_dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("node client ready within 15 s")
        .expect("read stdout");
    assert_eq!(
        ready.as_deref(),
        Some("READY"),
        "node client ({transport}) failed before subscribing"
    );
    (child, lines)
}

/// The official client over both transports, fed by real likes through the edge host: the ack
/// carries the count of the like made before subscribing, and a burst of 40 likes arrives as a
/// few coalesced updates, strictly increasing, the last one carrying the final count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_gets_counts_of_real_likes_through_the_edge() {
    if !node_ready().await {
        return;
    }
    let window = Duration::from_millis(500);
    let redis = TestRedis::start();
    let mut conn = redis.async_conn().await;
    let edge = Edge::start(&redis).await;
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.coalesce_window = window
    })
    .await;
    let mut users = Vec::new();
    for i in 0..41 {
        users.push(edge.session(&format!("js{i}")).await);
    }
    let post = fresh_post(2);
    create_post(&mut conn, post, &users[0].1).await;
    assert_eq!(edge.like(&users[0].0, post, true).await.likes, 1);

    let wire = post.to_string();
    let mut clients = Vec::new();
    for transport in ["websocket", "polling"] {
        clients.push((transport, spawn_client(&hub, transport, &wire, 1, 41).await));
    }
    let started = std::time::Instant::now();
    let liked = join_all(users[1..].iter().map(|(t, _)| edge.like(t, post, true))).await;
    let burst = started.elapsed();
    assert_eq!(liked.iter().map(|r| r.likes).max(), Some(41));

    // First change at once, then at most one update per window while the burst lasts, plus the
    // held last count.
    let bound = 2 + (burst.as_millis() / window.as_millis()) as usize;
    for (transport, (child, lines)) in clients {
        let result = client_result(child, lines).await;
        assert_eq!(result["transport"], transport);
        let counts: Vec<u64> = result["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .map(|u| u["likes"].as_u64().expect("likes"))
            .collect();
        assert!(
            !counts.is_empty() && counts.len() <= bound,
            "{transport}: {} updates for 40 likes in {burst:?} (at most {bound}): {counts:?}",
            counts.len()
        );
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "{transport}: {counts:?}"
        );
        assert_eq!(counts.last(), Some(&41), "{transport}");
    }
    assert!(hub.metric("realtime_hub_coalesced_total").await >= 1.0);
}

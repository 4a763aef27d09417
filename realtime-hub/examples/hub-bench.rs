//! `cargo run --release -p realtime-hub --example hub-bench -- [--sockets N] [--posts P]
//! [--rate LIKES_PER_SEC] [--secs S]`: measures the hub binary (run as a child process against
//! a throw-away Redis):
//! 1. memory per idle connected socket (hub RSS delta / sockets),
//! 2. like → client delivery latency p50/p99 (publish time → `likes:updated` carrying that
//!    count, coalescing window included) under a steady like load,
//! 3. hub CPU per 1,000 room emits and per 1,000 delivered frames.
//!
//! Clients are raw Engine.IO v4 WebSockets spread over several 127.0.0.x source addresses
//! (loopback ephemeral ports run out near 28K per source address); the fd limit is raised.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use likes_core::keys::LIKE_CHANNEL;
use tokio::net::TcpSocket;
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::Message;

const SOCKETS_PER_SOURCE: usize = 20_000;

struct Args {
    sockets: usize,
    posts: u64,
    rate: u64,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        sockets: 10_000,
        posts: 1_000,
        rate: 2_000,
        secs: 10,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = || {
            pair.get(1)
                .and_then(|v| v.parse().ok())
                .expect("numeric value")
        };
        match pair[0].as_str() {
            "--sockets" => a.sockets = v() as usize,
            "--posts" => a.posts = v(),
            "--rate" => a.rate = v(),
            "--secs" => a.secs = v(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Raises the fd limit (soft and, as root, hard) so tens of thousands of sockets fit.
#[allow(unsafe_code)]
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let new = libc::rlimit {
            rlim_cur: want.max(lim.rlim_cur),
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
    }
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:") * 1024
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publish time of each (post, count), for latency.
type Sent = Arc<Mutex<HashMap<(u64, u64), Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    raise_fd_limit(a.sockets as u64 * 2 + 1_000);
    let redis = testkit::TestRedis::start();
    let port = testkit::free_port();
    let exe = testkit::workspace_root().join("target/release/realtime-hub");
    let hub = Command::new(&exe)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--redis-url",
            &redis.url(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} ({e}): cargo build --release -p realtime-hub",
                exe.display()
            )
        });
    let pid = hub.id();
    let _hub = Killed(hub);
    let health = format!("http://127.0.0.1:{port}/healthz");
    while !reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss(pid);
    eprintln!(
        "hub up (pid {pid}, RSS {rss0} B); connecting {} sockets",
        a.sockets
    );

    let sent: Sent = Arc::default();
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")?,
    ));
    let frames = Arc::new(AtomicU64::new(0));
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let connected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.sockets);
    for i in 0..a.sockets {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i / SOCKETS_PER_SOURCE) as u8);
        let post = 1 + (i as u64 % a.posts);
        let (sent, hist, frames, connected) = (
            sent.clone(),
            hist.clone(),
            frames.clone(),
            connected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sock = TcpSocket::new_v4()?;
            sock.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
                .with_context(|| format!("binding a source port on {source}"))?;
            let stream = sock
                .connect(server)
                .await
                .context("connect (fd limit? ports?)")?;
            let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
            let (mut ws, _) = client_async(url, stream)
                .await
                .context("websocket handshake")?;
            ws.send(Message::Text("40".into())).await?;
            // Like socket.io-client: emit only once the namespace connect is confirmed.
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(&msg, Message::Text(t) if t.as_str().starts_with("40")) {
                    break;
                }
            }
            let sub = format!(r#"421["subscribe",{{"posts":["p_{post}"]}}]"#);
            ws.send(Message::Text(sub.into())).await?;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let t = t.as_str();
                if t == "2" {
                    let _ = ws.send(Message::Text("3".into())).await;
                } else if t.starts_with("431") {
                    connected.fetch_add(1, Ordering::Relaxed);
                } else if let Some(body) = t.strip_prefix("42[\"likes:updated\",") {
                    let now = Instant::now();
                    let v: serde_json::Value = serde_json::from_str(body.trim_end_matches(']'))
                        .context("likes:updated payload")?;
                    let p: u64 = v["post_id"]
                        .as_str()
                        .and_then(|id| id.strip_prefix("p_"))
                        .and_then(|n| n.parse().ok())
                        .context("likes:updated without a post id")?;
                    let likes = v["likes"].as_u64().context("likes:updated without likes")?;
                    frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(at) = lock(&sent).get(&(p, likes)) {
                        let us = now.duration_since(*at).as_micros() as u64;
                        let _ = lock(&hist).record(us.max(1));
                    }
                }
            }
            anyhow::Ok(())
        }));
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    while connected.load(Ordering::Relaxed) < a.sockets as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "sockets did not all subscribe"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("all subscribed after {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss(pid);
    println!(
        "sockets: {} connected+subscribed in {:.1} s; hub RSS {:.1} → {:.1} MiB: {:.0} bytes per idle socket",
        a.sockets,
        started.elapsed().as_secs_f64(),
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        (rss1.saturating_sub(rss0)) as f64 / a.sockets as f64
    );

    // Steady load: `rate` likes a second, round-robin over the posts.
    let mut conn = redis.async_conn().await;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let emits = |text: String| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("realtime_hub_like_emits_out_total ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    eprintln!("load phase");
    let emits0 = emits(reqwest::get(&metrics).await?.text().await?);
    let cpu0 = cpu_ticks(pid);
    let frames0 = frames.load(Ordering::Relaxed);
    let mut counts = vec![0u64; a.posts as usize + 1];
    let tick = Duration::from_millis(10);
    let per_tick = (a.rate / 100).max(1);
    let mut next = tokio::time::Instant::now();
    let load_start = Instant::now();
    let mut published = 0u64;
    while load_start.elapsed() < Duration::from_secs(a.secs) {
        let mut pipe = redis::pipe();
        let now = Instant::now();
        {
            let mut s = lock(&sent);
            for _ in 0..per_tick {
                let p = 1 + published % a.posts;
                published += 1;
                counts[p as usize] += 1;
                let likes = counts[p as usize];
                s.insert((p, likes), now);
                let msg =
                    format!(r#"{{"post_id":"p_{p}","likes":{likes},"ts":"2026-01-01T00:00:00Z"}}"#);
                pipe.cmd("PUBLISH").arg(LIKE_CHANNEL).arg(msg).ignore();
            }
        }
        let _: () = pipe.query_async(&mut conn).await.context("publishing")?;
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = cpu_ticks(pid) - cpu0;
    let emits1 = emits(reqwest::get(&metrics).await?.text().await?);
    let delivered = frames.load(Ordering::Relaxed) - frames0;
    let room_emits = emits1 - emits0;
    let tick_hz = 100.0; // USER_HZ on Linux
    let cpu_ms = cpu as f64 / tick_hz * 1000.0;
    let h = lock(&hist);
    println!(
        "load: {published} likes in {} s over {} posts; {room_emits} room emits, {delivered} frames delivered",
        a.secs, a.posts
    );
    println!(
        "latency publish→client (incl. coalescing): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    );
    println!(
        "hub CPU: {cpu_ms:.0} ms total; {:.1} ms per 1,000 room emits; {:.2} ms per 1,000 delivered frames",
        cpu_ms / (room_emits.max(1) as f64 / 1000.0),
        cpu_ms / (delivered.max(1) as f64 / 1000.0)
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Locks a mutex shared with the socket tasks; a task that panicked leaves data that is still
/// good enough for a benchmark report.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

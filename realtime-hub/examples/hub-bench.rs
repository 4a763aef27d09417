//! The client side of `cargo xtask bench realtime` and `bench sockets`, run as its own process
//! so that its memory and CPU never count as the server's.
//!
//! `hub-bench --addr HOST:PORT[,HOST:PORT…] --mode socketio|ws --sockets N [--posts P]
//! [--post-base B] [--first I]` opens N WebSockets from several 127.x.y.1 source addresses
//! (loopback ephemeral ports run out near 28K per source address), prints one JSON line once all
//! are up, then reads commands on stdin:
//! - `load REDIS_URL LIKES_PER_SEC SECS HOT [hist]`: likes posts `p_{B+1}`…`p_{B+HOT}`
//!   round-robin through the real like script at a steady rate and prints the like →
//!   `likes:updated` latency seen by every subscribed socket (coalescing window included) as one
//!   JSON line; with `hist`, the histogram's recorded values too (`[µs, count]` pairs, to merge
//!   with other processes'), and the sockets closed since they came up;
//! - end of input: exit.
//!
//! `socketio` sockets speak raw Engine.IO v4 (`sio_wire`'s frames) and each subscribes to one
//! post (`p_{B+1}`…`p_{B+P}`, round-robin); with several addresses, the k-th socket of each post
//! goes to the k-th server (mod their number), so every room spans every server. `ws` sockets
//! (for the bare tokio-tungstenite reference server) send one text frame and wait for its echo.
//! Either way they then sit idle, answering Engine.IO pings.

#![allow(clippy::print_stdout)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use likes_core::api::realtime::{LIKES_UPDATED, LikesUpdated};
use likes_core::scripts::{LIKE, LikeCall};
use likes_core::{PostId, UserId};
use sio_wire::{Frame, PONG, Packet, PacketType};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// Connections per loopback source address: well below the ~28K ephemeral ports of each, since
/// the previous run's closed connections may still hold ports in TIME_WAIT.
const SOCKETS_PER_SOURCE: usize = 10_000;
/// Handshakes in flight at once: more only overflows the server's accept backlog.
const CONNECTING_AT_ONCE: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    SocketIo,
    Ws,
}

struct Args {
    /// The servers; sockets are spread over them (see the module doc).
    addrs: Vec<SocketAddr>,
    mode: Mode,
    sockets: usize,
    /// Index of this process's first socket, when several processes share one run (the fd
    /// limit of one process is too small): it picks the source address and the posts.
    first: usize,
    posts: u64,
    /// Posts of this process are `p_{post_base+1}`…: processes sharing a run each like and
    /// watch their own posts, so each sees the send time of every like its sockets receive.
    post_base: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut addrs = Vec::new();
    let mut post_base = 0;
    let mut mode = Mode::SocketIo;
    let mut sockets = 1_000;
    let mut first = 0;
    let mut posts = 1_000;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let [flag, value] = pair else {
            bail!("flags come in pairs: --flag value")
        };
        match flag.as_str() {
            "--addr" => {
                for a in value.split(',') {
                    addrs.push(a.parse().context("--addr HOST:PORT[,HOST:PORT…]")?);
                }
            }
            "--post-base" => post_base = value.parse().context("--post-base N")?,
            "--mode" => {
                mode = match value.as_str() {
                    "socketio" => Mode::SocketIo,
                    "ws" => Mode::Ws,
                    other => bail!("unknown mode {other}"),
                }
            }
            "--sockets" => sockets = value.parse().context("--sockets N")?,
            "--first" => first = value.parse().context("--first N")?,
            "--posts" => posts = value.parse().context("--posts N")?,
            other => bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(!addrs.is_empty(), "--addr is required");
    Ok(Args {
        addrs,
        mode,
        sockets,
        first,
        posts: posts.max(1),
        post_base,
    })
}

/// What the sockets share while a like load runs.
struct Shared {
    /// Send time of each like, per post, indexed by the count it produced minus one.
    sent: Mutex<Vec<Vec<Instant>>>,
    hist: Mutex<Histogram<u64>>,
    frames: AtomicU64,
    /// Sockets that closed after coming up (the server dropped them, or an error).
    closed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Records, for every like of `post` that `likes` covers and this socket had not seen yet,
    /// the time from sending the like to now.
    fn delivered(&self, post: u64, likes: u64, seen: &mut u64, now: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if likes <= *seen {
            return;
        }
        let sent = lock(&self.sent);
        let mut hist = lock(&self.hist);
        if let Some(times) = sent.get(post as usize) {
            let from = usize::try_from(*seen).unwrap_or(usize::MAX);
            let to = usize::try_from(likes)
                .unwrap_or(usize::MAX)
                .min(times.len());
            for at in times.get(from..to).unwrap_or_default() {
                let us = now.saturating_duration_since(*at).as_micros();
                let _ = hist.record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
            }
        }
        *seen = likes;
    }
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

async fn open(addr: SocketAddr, i: usize, path: &str) -> anyhow::Result<Ws> {
    // A subnet of 127/8 per process: the ports of an earlier run's connections, still in
    // TIME_WAIT for a minute, are then never in the way.
    let net = u8::try_from(1 + std::process::id() % 250)?;
    let source = Ipv4Addr::new(127, net, u8::try_from(i / SOCKETS_PER_SOURCE)?, 1);
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .with_context(|| format!("binding a source port on {source}"))?;
    let stream = sock
        .connect(addr)
        .await
        .context("connect (fd limit? ports?)")?;
    // tungstenite preallocates its 128 KiB default read buffer: 6 GiB for 50K clients.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = client_async_with_config(format!("ws://{addr}{path}"), stream, Some(config))
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

/// Reads text frames until one satisfies `done`, answering Engine.IO pings.
async fn until(ws: &mut Ws, done: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            if matches!(Frame::decode(t.as_str()), Ok(Frame::Ping(_))) {
                ws.send(Message::Text(PONG.into())).await?;
            } else if done(t.as_str()) {
                return Ok(());
            }
        }
    }
    bail!("closed during the handshake")
}

/// Whether a text frame is the Socket.IO packet `kind` with ack id `id`.
fn is_packet(t: &str, kind: PacketType, id: Option<u64>) -> bool {
    Frame::decode(t)
        .ok()
        .and_then(Frame::packet)
        .is_some_and(|p| p.kind == kind && p.id == id)
}

/// One client: connect (and subscribe), report, then idle and record deliveries.
async fn client(
    addr: SocketAddr,
    mode: Mode,
    i: usize,
    post: u64,
    permits: Arc<Semaphore>,
    connected: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
    shared: Arc<Shared>,
) {
    let setup = async {
        let _permit = permits.acquire().await?;
        match mode {
            Mode::Ws => {
                let mut ws = open(addr, i, "/").await?;
                ws.send(Message::Text("hello".into())).await?;
                until(&mut ws, |t| t == "hello").await?;
                Ok(ws)
            }
            Mode::SocketIo => {
                let mut ws = open(addr, i, "/socket.io/?EIO=4&transport=websocket").await?;
                until(&mut ws, |t| matches!(Frame::decode(t), Ok(Frame::Open(_)))).await?;
                ws.send(Message::Text(Packet::connect(None).to_frame().into()))
                    .await?;
                until(&mut ws, |t| is_packet(t, PacketType::Connect, None)).await?;
                let sub = format!(r#"["subscribe",{{"posts":["p_{post}"]}}]"#);
                ws.send(Message::Text(
                    Packet::event(Some(1), &sub).to_frame().into(),
                ))
                .await?;
                until(&mut ws, |t| is_packet(t, PacketType::Ack, Some(1))).await?;
                Ok(ws)
            }
        }
    };
    let mut ws = match setup.await {
        Ok(ws) => {
            let _ = connected.send(Ok(())).await;
            ws
        }
        Err(e) => {
            let _ = connected.send(Err(e)).await;
            return;
        }
    };
    drop(connected);
    let mut seen = 0;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        match Frame::decode(t.as_str()) {
            Ok(Frame::Ping(_)) => {
                let _ = ws.send(Message::Text(PONG.into())).await;
            }
            Ok(Frame::Message(p)) if p.event_name().is_ok_and(|n| n == LIKES_UPDATED) => {
                let now = Instant::now();
                if let Ok((_, Some(update))) = p.read_event::<LikesUpdated>() {
                    shared.delivered(update.post_id.get(), update.likes, &mut seen, now);
                }
            }
            _ => {}
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let shared = Arc::new(Shared {
        sent: Mutex::new(vec![
            Vec::new();
            usize::try_from(a.post_base + a.posts)? + 1
        ]),
        hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        frames: AtomicU64::new(0),
        closed: AtomicU64::new(0),
    });
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let posts = usize::try_from(a.posts)?;
    for i in a.first..a.first + a.sockets {
        let post = a.post_base + 1 + (i % posts) as u64;
        let addr = a.addrs[(i / posts) % a.addrs.len()];
        tokio::spawn(client(
            addr,
            a.mode,
            i,
            post,
            Arc::clone(&permits),
            tx.clone(),
            Arc::clone(&shared),
        ));
    }
    drop(tx);
    let mut up = 0usize;
    while let Some(r) = rx.recv().await {
        r.with_context(|| format!("socket {} of {}", up + 1, a.sockets))?;
        up += 1;
    }
    anyhow::ensure!(
        up == a.sockets,
        "only {up} of {} sockets came up",
        a.sockets
    );
    println!(
        "{}",
        serde_json::json!({"phase": "connected", "sockets": up, "secs": started.elapsed().as_secs_f64()})
    );

    // tokio's stdin needs a feature the workspace does not enable; a thread does the same.
    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["load", url, rate, secs, hot, rest @ ..] => {
                let mut result =
                    load(&a, &shared, url, rate.parse()?, secs.parse()?, hot.parse()?).await?;
                if rest == ["hist"] {
                    let h = lock(&shared.hist);
                    let values: Vec<[u64; 2]> = h
                        .iter_recorded()
                        .map(|v| {
                            [
                                h.highest_equivalent(v.value_iterated_to()),
                                v.count_at_value(),
                            ]
                        })
                        .collect();
                    result["hist"] = serde_json::json!(values);
                    result["closed"] = serde_json::json!(shared.closed.load(Ordering::Relaxed));
                }
                println!("{result}");
            }
            [] => {}
            other => bail!("unknown command {other:?}"),
        }
    }
    Ok(())
}

/// Likes this process's posts `p_{base+1}`…`p_{base+hot}` round-robin at `rate` per second (a
/// fraction is carried from tick to tick) for `secs` through the real like script (each like by
/// a new user, so each raises the count by one), then reports the latency histogram.
async fn load(
    a: &Args,
    shared: &Shared,
    url: &str,
    rate: f64,
    secs: u64,
    hot: u64,
) -> anyhow::Result<serde_json::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(LIKE.source)
        .query_async(&mut conn)
        .await
        .context("SCRIPT LOAD like")?;
    lock(&shared.hist).reset();
    let frames0 = shared.frames.load(Ordering::Relaxed);
    let tick = Duration::from_millis(10);
    let mut ticks = 0u64;
    let mut next = tokio::time::Instant::now();
    let started = Instant::now();
    // Users continue from earlier loads, so every like is a new (post, user) pair.
    let base: u64 = lock(&shared.sent).iter().map(|t| t.len() as u64).sum();
    let hot = hot.clamp(1, a.posts);
    let mut likes = 0u64;
    let mut late_ticks = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let mut pipe = redis::pipe();
        let before = likes;
        {
            let now = Instant::now();
            let mut sent = lock(&shared.sent);
            ticks += 1;
            // Whole likes due by the end of this tick, so any rate is kept on average.
            let due = (ticks as f64 * rate / 100.0) as u64;
            while likes < due {
                let p = a.post_base + 1 + likes % hot;
                likes += 1;
                if let Some(times) = sent.get_mut(usize::try_from(p)?) {
                    times.push(now);
                }
                let call = LikeCall {
                    post: PostId::new(p).context("post id")?,
                    user: UserId::new(base + likes).context("user id")?,
                    on: true,
                    ts: "2026-11-28T00:00:00Z".to_owned(),
                    require_post: false,
                };
                pipe.cmd("EVALSHA")
                    .arg(LIKE.sha1)
                    .arg(5)
                    .arg(&call.keys())
                    .arg(&call.args())
                    .ignore();
            }
        }
        if likes > before {
            let _: () = pipe.query_async(&mut conn).await.context("liking")?;
        }
        next += tick;
        if tokio::time::Instant::now() > next {
            late_ticks += 1;
        }
        tokio::time::sleep_until(next).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last coalescing windows drain.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let h = lock(&shared.hist);
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(serde_json::json!({
        "phase": "load",
        "likes": likes,
        "hot_posts": hot,
        "secs": elapsed,
        "likes_per_sec": likes as f64 / elapsed,
        "late_ticks": late_ticks,
        "frames": shared.frames.load(Ordering::Relaxed) - frames0,
        "samples": h.len(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": h.max() as f64 / 1000.0,
    }))
}

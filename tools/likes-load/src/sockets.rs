//! Socket.IO v4 clients, as light as they can be (thousands per process): raw Engine.IO
//! WebSocket frames ([`sio_wire`]'s, decoded without copying) over tungstenite with small
//! buffers, one task each. Each socket subscribes to some posts and reports every
//! `likes:updated` to [`Delivery`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use likes_core::PostId;
use likes_core::api::realtime::{LIKES_UPDATED, LikesUpdated, PostsRequest, SUBSCRIBE};
use sio_wire::{Frame, PONG, Packet, PacketType};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::stats::{histogram, lock};

/// Loopback source ports (28K per source address, fewer with TIME_WAIT leftovers) run out:
/// spread over 127.0.0.x.
const SOCKETS_PER_SOURCE: u64 = 10_000;
/// Handshakes in flight at once while connecting.
const CONNECT_CONCURRENCY: usize = 256;

/// Like → `likes:updated` delivery latency, measured at the sockets.
///
/// Every answered like/unlike records "post P reached count C by a request meant for T"; a
/// socket that receives `likes:updated {P, C}` at R is matched with the latest such request
/// meant at or before R, and `R - T` is recorded: from when the change was meant to be sent to
/// when a viewer saw it, coalescing window included. Counts repeat under unlikes, and a frame
/// can beat the HTTP answer that reports its count, so frames are matched only once they are
/// [`SETTLE`] old (every answer of that time is in by then) and at the end.
pub struct Delivery {
    start: Instant,
    index: HashMap<PostId, usize>,
    posts: Vec<Mutex<PostLog>>,
    hist: Mutex<Histogram<u64>>,
    frames: AtomicU64,
    unmatched: AtomicU64,
}

/// How old a frame must be before it is matched.
pub const SETTLE: Duration = Duration::from_secs(3);

#[derive(Default)]
struct PostLog {
    /// count → intended send times (ns since start) of the requests that produced it.
    sends: HashMap<u64, Vec<u64>>,
    /// (count, received at ns since start), not matched yet.
    frames: Vec<(u64, u64)>,
}

impl Delivery {
    /// A tracker for `posts`, in the generator's post order.
    pub fn new(posts: &[PostId]) -> Self {
        Self {
            start: Instant::now(),
            index: posts.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            posts: posts.iter().map(|_| Mutex::default()).collect(),
            hist: Mutex::new(histogram()),
            frames: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Post `post` (generator index) reached `likes` through a request meant for `intended`.
    pub fn sent(&self, post: usize, likes: u64, intended: Instant) {
        let t = self.ns(intended);
        if let Some(m) = self.posts.get(post) {
            lock(m).sends.entry(likes).or_default().push(t);
        }
    }

    /// A socket received `likes:updated` at `at`.
    pub fn received(&self, update: &LikesUpdated, at: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let Some(&post) = self.index.get(&update.post_id) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let t = self.ns(at);
        lock(&self.posts[post]).frames.push((update.likes, t));
    }

    /// Matches frames received before `upto` (all of them when `None`).
    pub fn settle(&self, upto: Option<Instant>) {
        let limit = upto.map_or(u64::MAX, |u| self.ns(u));
        let mut samples = Vec::new();
        let mut unmatched = 0;
        for m in &self.posts {
            let mut log = lock(m);
            if upto.is_some() {
                prune(&mut log.sends, limit);
            }
            if log.frames.is_empty() {
                continue;
            }
            let frames = std::mem::take(&mut log.frames);
            let (ready, later): (Vec<_>, Vec<_>) =
                frames.into_iter().partition(|(_, r)| *r <= limit);
            log.frames = later;
            for (count, recv) in ready {
                let sent = log.sends.get_mut(&count).and_then(|times| {
                    // Appended in answer order, which is nearly intended order.
                    if !times.is_sorted() {
                        times.sort_unstable();
                    }
                    let i = times.partition_point(|t| *t <= recv);
                    i.checked_sub(1).map(|i| times[i])
                });
                match sent {
                    Some(t) => samples.push(((recv - t) / 1_000).max(1)),
                    None => unmatched += 1,
                }
            }
        }
        self.unmatched.fetch_add(unmatched, Ordering::Relaxed);
        let mut h = lock(&self.hist);
        for us in samples {
            let _ = h.record(us);
        }
    }

    /// Matches every remaining frame; returns the histogram, frames seen and frames that
    /// matched no request of this run.
    pub fn finish(&self) -> (Histogram<u64>, u64, u64) {
        self.settle(None);
        (
            lock(&self.hist).clone(),
            self.frames.load(Ordering::Relaxed),
            self.unmatched.load(Ordering::Relaxed),
        )
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Delivery p99 of the frames matched so far, in ms.
    pub fn p99_ms(&self) -> f64 {
        lock(&self.hist).value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Drops the sends no frame can match any more: every frame not matched yet was received after
/// `limit`, and matches the latest send of its count at or before it, so of the sends at or
/// before `limit` only the latest of each count can still be chosen. Keeps a long run's memory
/// flat.
fn prune(sends: &mut HashMap<u64, Vec<u64>>, limit: u64) {
    for times in sends.values_mut() {
        if times.len() > 1 {
            times.sort_unstable();
            let i = times.partition_point(|t| *t <= limit);
            if i > 1 {
                times.drain(..i - 1);
            }
        }
    }
}

/// Counters of the socket fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Sockets connected and subscribed (acked) right now.
    pub subscribed: AtomicU64,
    /// Sockets that subscribed at least once.
    pub ever: AtomicU64,
    pub failed: AtomicU64,
    /// Times a subscribed socket lost its connection (each then reconnects).
    pub dropped: AtomicU64,
    /// Times a socket that had lost its connection was subscribed again.
    pub reconnected: AtomicU64,
}

/// What one socket knows: its posts and the last count it saw for each (from a subscribe ack
/// or a `likes:updated`), which must end equal to Redis's.
#[derive(Debug)]
pub struct SocketState {
    pub posts: Vec<PostId>,
    known: Mutex<HashMap<PostId, u64>>,
    ever: std::sync::atomic::AtomicBool,
}

impl SocketState {
    fn new(posts: Vec<PostId>) -> Self {
        Self {
            posts,
            known: Mutex::default(),
            ever: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn set(&self, post: PostId, likes: u64) {
        lock(&self.known).insert(post, likes);
    }

    /// The last count seen for `post`.
    pub fn known(&self, post: PostId) -> Option<u64> {
        lock(&self.known).get(&post).copied()
    }
}

/// A socket whose last known count differs from the truth at the end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stale {
    pub socket: u64,
    pub post: PostId,
    pub known: Option<u64>,
    pub want: u64,
}

/// The open sockets; dropping it closes them.
pub struct Sockets {
    pub fleet: Arc<Fleet>,
    tasks: JoinSet<()>,
    states: Vec<Arc<SocketState>>,
    /// First connection errors, for the report.
    pub errors: Arc<Mutex<Vec<String>>>,
}

/// First and longest wait before a dropped socket reconnects.
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

impl Sockets {
    /// Opens `count` sockets to `hub` (`http://host:port`); socket `i` subscribes to
    /// `subs(i)`. Returns once every socket subscribed or failed, or after `deadline`. A
    /// subscribed socket that loses its connection (a hub restart) reconnects with backoff and
    /// subscribes again, taking the current counts from the ack.
    pub async fn open(
        hub: &str,
        count: u64,
        subs: impl Fn(u64) -> Vec<PostId>,
        delivery: Arc<Delivery>,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        let addr = resolve(hub).await?;
        let fleet = Arc::new(Fleet::default());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = JoinSet::new();
        let mut states = Vec::with_capacity(count as usize);
        let started = Instant::now();
        for i in 0..count {
            // The first block connects unbound (the kernel may then reuse ports still in
            // TIME_WAIT towards other peers); later blocks bind 127.0.0.2, .3, …
            let source = match addr.ip() {
                IpAddr::V4(ip) if ip.is_loopback() && i >= SOCKETS_PER_SOURCE => {
                    let n = u8::try_from(1 + i / SOCKETS_PER_SOURCE).unwrap_or(u8::MAX);
                    Some(SocketAddr::from((Ipv4Addr::new(127, 0, 0, n), 0)))
                }
                _ => None,
            };
            let posts = subs(i);
            let frame = subscribe_frame(&posts);
            let state = Arc::new(SocketState::new(posts));
            states.push(state.clone());
            let (fleet, delivery, gate, errors) = (
                fleet.clone(),
                delivery.clone(),
                gate.clone(),
                errors.clone(),
            );
            tasks.spawn(async move {
                let note = |why: String| {
                    let mut errs = lock(&errors);
                    if errs.len() < 5 {
                        errs.push(why);
                    }
                };
                let permit = gate.acquire_owned().await;
                let link = Link {
                    addr,
                    source,
                    subscribe: &frame,
                    fleet: &fleet,
                    delivery: &delivery,
                    state: &state,
                };
                match link.session(permit.ok(), false).await {
                    Ok(reason) => note(format!("dropped after subscribing: {reason}")),
                    Err(e) => {
                        fleet.failed.fetch_add(1, Ordering::Relaxed);
                        note(format!("{e:#}"));
                        return;
                    }
                }
                // Subscribed once: keep coming back until the run closes the fleet.
                let jitter = Duration::from_millis(i % 250);
                let mut backoff = RECONNECT_MIN;
                loop {
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = match link.session(None, true).await {
                        Ok(_) => RECONNECT_MIN,
                        Err(_) => (backoff * 2).min(RECONNECT_MAX),
                    };
                }
            });
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
        }
        while fleet.ever.load(Ordering::Relaxed) + fleet.failed.load(Ordering::Relaxed) < count
            && started.elapsed() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            fleet,
            tasks,
            states,
            errors,
        })
    }

    /// Sockets currently subscribed.
    pub fn subscribed(&self) -> u64 {
        self.fleet.subscribed.load(Ordering::Relaxed)
    }

    /// Of the sockets that ever subscribed, how many know `truth`'s count for every post they
    /// follow, how many there are, and the first few that do not.
    pub fn converged(&self, truth: &HashMap<PostId, u64>) -> (u64, u64, Vec<Stale>) {
        let (mut ok, mut total, mut stale) = (0, 0, Vec::new());
        for (i, s) in self.states.iter().enumerate() {
            if !s.ever.load(Ordering::Relaxed) {
                continue;
            }
            total += 1;
            let mut good = true;
            for p in &s.posts {
                let want = truth.get(p).copied().unwrap_or(0);
                let known = s.known(*p);
                if known != Some(want) {
                    good = false;
                    if stale.len() < 10 {
                        stale.push(Stale {
                            socket: i as u64,
                            post: *p,
                            known,
                            want,
                        });
                    }
                }
            }
            ok += u64::from(good);
        }
        (ok, total, stale)
    }

    /// Closes every socket.
    pub async fn close(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn resolve(hub: &str) -> anyhow::Result<SocketAddr> {
    let hostport = hub
        .trim_end_matches('/')
        .strip_prefix("http://")
        .with_context(|| format!("hub URL `{hub}` must be http://host:port"))?;
    tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("resolving {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} resolves to nothing"))
}

fn subscribe_frame(posts: &[PostId]) -> String {
    let request = PostsRequest {
        posts: posts.to_vec(),
    };
    let body = serde_json::json!([SUBSCRIBE, request]);
    format!("421{body}")
}

/// The counts in a subscribe ack `431[{"counts":{"p_1":3,…}}]`.
fn ack_counts(frame: &str) -> Vec<(PostId, u64)> {
    let Some(ack) = Frame::decode(frame)
        .ok()
        .and_then(Frame::packet)
        .filter(|p| p.kind == PacketType::Ack && p.id == Some(1))
    else {
        return Vec::new();
    };
    let Ok(first) = ack.read_ack::<serde_json::Value>() else {
        return Vec::new();
    };
    first
        .as_ref()
        .and_then(|v| v.get("counts"))
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// What one socket connects with, each time it (re)connects.
struct Link<'a> {
    addr: SocketAddr,
    source: Option<SocketAddr>,
    subscribe: &'a str,
    fleet: &'a Fleet,
    delivery: &'a Delivery,
    state: &'a SocketState,
}

impl Link<'_> {
    /// One connection: connect, join `/`, subscribe, then read until the connection ends (or
    /// the task is aborted). `Ok(why it ended)` once it had subscribed, `Err` before.
    async fn session(
        &self,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        again: bool,
    ) -> anyhow::Result<String> {
        let (addr, fleet) = (self.addr, self.fleet);
        let sock = TcpSocket::new_v4()?;
        if let Some(src) = self.source {
            // Lets an ephemeral port whose last connection is in TIME_WAIT be bound again.
            sock.set_reuseaddr(true)?;
            sock.bind(src)
                .with_context(|| format!("binding a source port on {src}"))?;
        }
        let stream = tokio::time::timeout(Duration::from_secs(30), sock.connect(addr))
            .await
            .context("connect timed out")?
            .context("connect (fd limit? ports?)")?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0);
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(30),
            client_async_with_config(url, stream, Some(config)),
        )
        .await
        .context("websocket handshake timed out")?
        .context("websocket handshake")?;
        ws.send(Message::Text(Packet::connect(None).to_frame().into()))
            .await?;
        // Like socket.io-client: emit only once the namespace connect is confirmed.
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match Frame::decode(t.as_str()) {
                    Ok(Frame::Message(p)) if p.kind == PacketType::Connect => break,
                    // The server's first ping can come before the connect ack; unanswered, it
                    // closes the socket 20 s (the ping timeout) later.
                    Ok(Frame::Ping(_)) => ws.send(Message::Text(PONG.into())).await?,
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("before the namespace connect"),
                None => anyhow::bail!("closed before the namespace connect"),
            }
        }
        ws.send(Message::Text(self.subscribe.to_owned().into()))
            .await?;
        let mut subscribed = false;
        let mut since = Instant::now();
        let mut permit = permit;
        let mut ended = "closed by the hub".to_owned();
        while let Some(msg) = ws.next().await {
            let t = match msg {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(frame)) => {
                    ended = format!("close frame {frame:?}");
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    ended = e.to_string();
                    break;
                }
            };
            let t = t.as_str();
            let packet = match Frame::decode(t) {
                Ok(Frame::Message(packet)) => packet,
                Ok(Frame::Ping(_)) => {
                    ws.send(Message::Text(PONG.into())).await?;
                    continue;
                }
                _ => continue,
            };
            // The name is read on its own first, so other events cost no JSON parse.
            if packet.event_name().is_ok_and(|name| name == LIKES_UPDATED) {
                let at = Instant::now();
                if let Ok((_, Some(update))) = packet.read_event::<LikesUpdated>() {
                    self.delivery.received(&update, at);
                    self.state.set(update.post_id, update.likes);
                }
            } else if packet.kind == PacketType::Ack && packet.id == Some(1) && !subscribed {
                anyhow::ensure!(!t.contains("\"error\""), "subscribe refused: {t}");
                for (post, likes) in ack_counts(t) {
                    self.state.set(post, likes);
                }
                subscribed = true;
                since = Instant::now();
                fleet.subscribed.fetch_add(1, Ordering::Relaxed);
                if again {
                    fleet.reconnected.fetch_add(1, Ordering::Relaxed);
                }
                if !self.state.ever.swap(true, Ordering::Relaxed) {
                    fleet.ever.fetch_add(1, Ordering::Relaxed);
                }
                permit.take();
            }
        }
        if subscribed {
            fleet.subscribed.fetch_sub(1, Ordering::Relaxed);
            fleet.dropped.fetch_add(1, Ordering::Relaxed);
            Ok(format!(
                "{ended}, {:.1} s after subscribing",
                since.elapsed().as_secs_f64()
            ))
        } else {
            anyhow::bail!("closed before the subscribe ack: {ended}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(n: u64) -> PostId {
        PostId::new(n).expect("nonzero")
    }

    #[test]
    fn deliveries_match_the_latest_request_that_produced_their_count() {
        let d = Delivery::new(&[post(5), post(9)]);
        let t0 = d.start;
        let ms = |n| t0 + Duration::from_millis(n);
        let update = |p, likes| LikesUpdated {
            post_id: post(p),
            likes,
        };
        // p_5 goes 0 → 1 (like at 10 ms), 1 → 0 (unlike at 20 ms), 0 → 1 (like at 1,000 ms).
        d.sent(0, 1, ms(10));
        d.sent(0, 0, ms(20));
        d.received(&update(5, 1), ms(15));
        // The frame of the second like beats its HTTP answer...
        d.received(&update(5, 1), ms(1_004));
        // ...which is recorded afterwards; the frame must not match the like at 10 ms.
        d.sent(0, 1, ms(1_000));
        // A count no request of this run produced, and a post that is not ours.
        d.received(&update(9, 7), ms(30));
        d.received(&update(8, 1), ms(30));
        let (h, frames, unmatched) = d.finish();
        assert_eq!((h.len(), frames, unmatched), (2, 4, 2));
        assert!((4_990..=5_010).contains(&h.max()), "{}", h.max());
        assert!((3_990..=4_010).contains(&h.min()), "{}", h.min());
        assert!(
            subscribe_frame(&[post(1), post(2)])
                .starts_with(r#"421["subscribe",{"posts":["p_1","p_2"]}]"#)
        );
    }

    #[test]
    fn sends_no_frame_can_match_are_pruned() {
        let mut sends = HashMap::from([(1, vec![30, 10, 20, 50]), (2, vec![5])]);
        prune(&mut sends, 25);
        assert_eq!(sends[&1], vec![20, 30, 50]);
        assert_eq!(sends[&2], vec![5]);
    }

    #[test]
    fn subscribe_acks_carry_the_counts_a_socket_resyncs_from() {
        let mut got = ack_counts(r#"431[{"counts":{"p_22":0,"p_1":3}}]"#);
        got.sort_unstable();
        assert_eq!(got, vec![(post(1), 3), (post(22), 0)]);
        assert!(ack_counts(r#"431[{"error":{"title":"x"}}]"#).is_empty());
        assert!(ack_counts("42[]").is_empty());
    }
}

//! Memory per idle socket, measured in-process: a counting global allocator tracks the live
//! heap bytes of this process while hundreds of idle Socket.IO clients connect to a hub started
//! here, and the growth per socket must stay under a bound the patched engineioxide clears with
//! margin and the crates.io release does not (see `vendor/README.md`). A lost or undone patch
//! fails here rather than only in `cargo xtask bench realtime`.
//!
//! This is its own test binary (not a module of `tests/hub/`) because the allocator is the whole
//! process's: it counts every thread, so any test running alongside, as the tests in
//! `tests/hub/` do, would count into the figure. The clients are blocking `std` TCP streams with
//! a hand-written WebSocket handshake, which own no heap, so the growth is the server's alone.

// A `GlobalAlloc` is an unsafe trait, and raising the fd limit is a libc call.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use testkit::TestRedis;

// The hub tests' own harness (a hub on port 0, in this process); this binary uses part of it.
#[allow(dead_code)]
#[path = "hub/support.rs"]
mod support;

use support::Hub;

/// Idle sockets measured, after [`WARM_UP`] that absorb one-time costs (Redis connections,
/// the first rooms, the runtime's blocking thread).
const SOCKETS: usize = 500;
const WARM_UP: usize = 20;
/// Each socket subscribes to one of this many posts, as `cargo xtask bench realtime` does.
const POSTS: usize = 50;
/// Live heap growth allowed per idle socket. Measured here (2026-12-02, deterministic to the
/// byte): 6,424 B with the patched engineioxide (7.1 KB of RSS in the benchmark, which adds
/// malloc's overhead), 16,848 B with the crates.io release. Losing even the first change alone
/// (unboxed packet channel slots, ~3.8 KB) crosses this bound.
const MAX_BYTES_PER_SOCKET: usize = 10 * 1024;

/// Live heap bytes of the process: what was allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call forwards to `System` with the caller's arguments; the counter only reads
// the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_costs_under_the_bound() {
    raise_fd_limit();
    let redis = TestRedis::start();
    let hub = Hub::start(&redis.url_as(testkit::Role::Hub), |config| {
        // No ping falls due while the test runs, however slow the machine: the clients answer
        // the first one (sent at open) and then stay silent, as idle clients between pings are.
        config.ping_interval = Duration::from_secs(300);
        config.ping_timeout = Duration::from_secs(300);
    })
    .await;
    let addr = hub.addr;

    let warm_up = connect_many(addr, 0..WARM_UP, Vec::with_capacity(WARM_UP)).await;
    let before = settled_live_bytes().await;
    let clients = connect_many(
        addr,
        WARM_UP..WARM_UP + SOCKETS,
        Vec::with_capacity(SOCKETS),
    )
    .await;
    let after = settled_live_bytes().await;
    let per_socket = after.saturating_sub(before) / SOCKETS;
    println!(
        "live heap: {before} B with {WARM_UP} sockets, {after} B with {} ({per_socket} B per \
         idle socket; bound {MAX_BYTES_PER_SOCKET} B)",
        WARM_UP + SOCKETS
    );

    // Every client is a live socket of the hub, so the figure is of idle sockets, not of
    // closed ones.
    let sockets = hub.metric("realtime_hub_sockets").await;
    assert_eq!(sockets, (WARM_UP + SOCKETS) as f64, "sockets the hub holds");
    assert!(
        per_socket < MAX_BYTES_PER_SOCKET,
        "an idle socket costs {per_socket} B of live heap, over the {MAX_BYTES_PER_SOCKET} B \
         bound: is vendor/engineioxide still patched in (cargo xtask vendor-check)?"
    );

    drop((warm_up, clients));
    drop(hub);
}

/// Fd limits of 1,024 are common and the test holds over 1,000 (both ends of each socket).
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Live bytes once the process is quiet: the smallest of several samples, so that a transient
/// allocation elsewhere (a Redis ping, a timer) does not count.
async fn settled_live_bytes() -> usize {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut least = usize::MAX;
    for _ in 0..10 {
        least = least.min(LIVE.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    least
}

/// Connects clients `ids` on a blocking thread (the hub keeps the runtime's workers) into
/// `into`, allocated by the caller so that no client-side allocation outlives this call.
async fn connect_many(
    addr: SocketAddr,
    ids: std::ops::Range<usize>,
    mut into: Vec<TcpStream>,
) -> Vec<TcpStream> {
    tokio::task::spawn_blocking(move || {
        for id in ids {
            into.push(connect(addr, id));
        }
        into
    })
    .await
    .expect("the clients connected")
}

/// One idle Socket.IO client on a raw Engine.IO v4 WebSocket: handshake, namespace connect,
/// the first ping answered, subscribed to one post (acknowledged), then silent.
fn connect(addr: SocketAddr, id: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        s,
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("send the upgrade request");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    let open = read_text(&mut s);
    assert!(open.starts_with('0'), "expected an open packet, got {open}");

    send_text(&mut s, "40");
    let mut pinged = false;
    let mut connected = false;
    while !(pinged && connected) {
        match read_text(&mut s).as_str() {
            "2" => {
                send_text(&mut s, "3");
                pinged = true;
            }
            f if f.starts_with("40") => connected = true,
            f => panic!("unexpected frame while connecting: {f}"),
        }
    }
    let post = 1 + id % POSTS;
    send_text(
        &mut s,
        &format!(r#"421["subscribe",{{"posts":["p_{post}"]}}]"#),
    );
    let ack = read_text(&mut s);
    assert!(
        ack.starts_with("431[{\"counts\""),
        "subscribe answer: {ack}"
    );
    s
}

/// The HTTP response head, read byte by byte so no frame after it is consumed.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("read the response head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The next text frame from the server (unmasked, unfragmented: what tungstenite sends).
fn read_text(s: &mut TcpStream) -> String {
    let mut header = [0u8; 2];
    s.read_exact(&mut header).expect("read a frame header");
    let len = match header[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            s.read_exact(&mut ext).expect("read a frame length");
            usize::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            s.read_exact(&mut ext).expect("read a frame length");
            usize::try_from(u64::from_be_bytes(ext)).expect("a frame length")
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("read a frame payload");
    assert_eq!(header[0], 0x81, "expected a final text frame");
    String::from_utf8(payload).expect("a UTF-8 text frame")
}

/// Sends a text frame, masked as a client must.
fn send_text(s: &mut TcpStream, text: &str) {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let len = text.len();
    let mut frame = vec![0x81u8];
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&u16::try_from(len).expect("a short frame").to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).expect("send a frame");
}

//! `cargo xtask bench realtime`: the realtime hub, measured as a separate process against a
//! throw-away Redis, with a bare tokio-tungstenite echo server as the reference in the same run:
//! 1. memory per idle connected socket (server RSS delta / sockets) at 10K and 50K sockets,
//!    hub (each socket subscribed to one post) next to the reference; when one process may not
//!    hold that many fds, the sockets are shared by several server processes, all up at once;
//! 2. like → client latency p50/p99 with 10K subscribed sockets under a steady like load through
//!    the real like script (coalescing window included), spread over every post and on a few
//!    hot posts where coalescing holds counts back;
//! 3. hub CPU per 1,000 room emits and per 1,000 frames delivered.
//!
//! The clients (`realtime-hub`'s `hub-bench` example) run in their own process, spread over
//! several 127.0.0.x source addresses; the fd limit is raised for every child.
//! Results: target/bench/realtime.json and a Markdown table on stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde_json::{Value, json};

use super::bench::free_port;
use crate::proc::{self, Service};
use crate::tools::{self, root};
use service_kit::procfs::{cpu_time, rss_bytes};

/// Socket counts of the memory measurement.
const MEMORY_SOCKETS: [usize; 2] = [10_000, 50_000];
/// Sockets subscribed during the latency measurement.
const LATENCY_SOCKETS: usize = 10_000;
/// Posts the sockets subscribe to, round-robin (10 sockets per post at 10K).
const POSTS: u64 = 1_000;
/// Steady like rate of the load phases.
const LIKES_PER_SEC: u64 = 2_000;
/// Posts liked in the "hot" phase: 20 likes per second each, above the 10 emits per second
/// per post that a 100 ms coalescing window allows.
const HOT_POSTS: u64 = 100;
/// Time for a server's memory to settle once every socket is up.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs the whole benchmark; `seconds` is the length of each load phase.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    tools::build_native()?;
    let fds = raise_fd_limit(MEMORY_SOCKETS[1] as u64 + 1_000)?;
    // A server holds one fd per socket; beyond its limit, measure the most that fits and say so.
    let server_max = usize::try_from(fds.saturating_sub(1_000)).unwrap_or(usize::MAX);
    let per_process = server_max.max(1);
    let (_redis, redis_url, _) = super::bench::start_redis()?;

    let mut memory = Vec::new();
    let mut loads = Vec::new();
    for sockets in MEMORY_SOCKETS {
        // One server process holds one fd per socket; beyond its limit the sockets are shared
        // by as many processes as needed (as horizontally scaled hubs would), all up at once.
        let processes = sockets.div_ceil(per_process);
        if processes > 1 {
            eprintln!(
                "[bench] the fd limit ({fds}, hard) fits {server_max} sockets per process: {sockets} sockets over {processes} server processes"
            );
        }
        // The reference first: bare tokio-tungstenite echo servers.
        let echo = fleet_memory(
            processes,
            || {
                let (server, addr) = start_server("ws-echo", |addr| {
                    let mut c = Command::new(example("ws-echo"));
                    c.args(["--listen", addr]);
                    c
                })?;
                proc::wait_for_port(&addr, Duration::from_secs(10))?;
                Ok((server, addr))
            },
            "ws",
            sockets,
            per_process,
        )?;
        memory.push(echo.row("tokio-tungstenite echo (reference)"));
        echo.finish()?;
        // The hubs, each with its admin listener (metrics) beside its Socket.IO port.
        let admins = std::cell::RefCell::new(Vec::new());
        let mut hubs = fleet_memory(
            processes,
            || {
                let (hub, addr, admin) = start_hub(&redis_url)?;
                admins.borrow_mut().push(admin);
                Ok((hub, addr))
            },
            "socketio",
            sockets,
            per_process,
        )?;
        memory.push(hubs.row("realtime-hub"));
        if sockets == LATENCY_SOCKETS && processes == 1 {
            let (hub, _, clients) = &mut hubs.servers[0];
            let addr = &admins.borrow()[0];
            for (phase, hot) in [("spread", POSTS), ("hot", HOT_POSTS)] {
                let emits0 = metric(addr, "realtime_hub_like_emits_out_total")?;
                let cpu0 = cpu_time(hub.pid()).context("the hub is gone")?;
                let mut r = clients
                    .command(&format!("load {redis_url} {LIKES_PER_SEC} {seconds} {hot}"))?;
                let cpu = cpu_time(hub.pid()).context("the hub is gone")? - cpu0;
                let emits = metric(addr, "realtime_hub_like_emits_out_total")? - emits0;
                let cpu_ms = cpu.as_secs_f64() * 1000.0;
                let frames = r["frames"].as_f64().unwrap_or(0.0);
                r["phase"] = json!(phase);
                r["sockets"] = json!(sockets);
                r["room_emits"] = json!(emits);
                r["hub_cpu_ms"] = json!(cpu_ms);
                r["cpu_ms_per_1000_room_emits"] = json!(cpu_ms / (emits.max(1.0) / 1000.0));
                r["cpu_ms_per_1000_frames"] = json!(cpu_ms / (frames.max(1.0) / 1000.0));
                eprintln!("{r}");
                loads.push(r);
            }
        }
        hubs.finish()?;
    }

    let report = json!({
        "memory": memory,
        "latency": loads,
        "settings": {
            "posts": POSTS,
            "likes_per_sec": LIKES_PER_SEC,
            "hot_posts": HOT_POSTS,
            "load_secs": seconds,
            "coalesce_window_ms": 100,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
    });
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("realtime.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    print_table(&report);
    Ok(())
}

fn print_table(report: &Value) {
    let empty = Vec::new();
    let rows = report["memory"].as_array().unwrap_or(&empty);
    println!(
        "| server | idle sockets | server processes | RSS before → after (MiB, summed) | bytes per socket | vs reference |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let reference = rows
            .iter()
            .find(|x| x["sockets"] == r["sockets"] && x["server"] != "realtime-hub")
            .and_then(|x| x["bytes_per_socket"].as_f64())
            .unwrap_or(f64::NAN);
        let per = r["bytes_per_socket"].as_f64().unwrap_or(f64::NAN);
        let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / 1_048_576.0;
        println!(
            "| {} | {} | {} | {:.1} → {:.1} | {per:.0} | {:.2}× |",
            r["server"].as_str().unwrap_or("?"),
            r["sockets"],
            r["processes"],
            mib(&r["rss_before"]),
            mib(&r["rss_after"]),
            per / reference
        );
    }
    println!();
    println!(
        "| load ({} sockets) | likes/s | posts liked | room emits | frames delivered | p50 ms | p99 ms | max ms | hub CPU ms / 1,000 room emits | / 1,000 frames |",
        LATENCY_SOCKETS
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in report["latency"].as_array().unwrap_or(&empty) {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {:.0} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            r["phase"].as_str().unwrap_or("?"),
            f("likes_per_sec"),
            r["hot_posts"],
            f("room_emits"),
            f("frames"),
            f("p50_ms"),
            f("p99_ms"),
            f("max_ms"),
            f("cpu_ms_per_1000_room_emits"),
            f("cpu_ms_per_1000_frames"),
        );
    }
}

/// Starts one hub against `redis_url` and waits until it is healthy. Returns it, its Socket.IO
/// address and its admin (`/metrics`) address.
pub(super) fn start_hub(redis_url: &str) -> anyhow::Result<(Service, String, String)> {
    let admin = format!("127.0.0.1:{}", free_port()?);
    let (hub, addr) = start_server("realtime-hub", {
        let (admin, redis_url) = (admin.clone(), redis_url.to_owned());
        move |addr| {
            let mut c = Command::new(tools::release_bin("realtime-hub"));
            c.args(["--listen", addr, "--admin-listen", &admin])
                .args(["--redis-url", &redis_url])
                .env("RUST_LOG", "warn");
            c
        }
    })?;
    wait_healthy(&addr)?;
    Ok((hub, addr, admin))
}

/// Starts one server on a free loopback port; `command` builds its command line for that
/// address.
fn start_server(
    name: &str,
    command: impl Fn(&str) -> Command + 'static,
) -> anyhow::Result<(Service, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let server = Service::start(name, {
        let addr = addr.clone();
        move || command(&addr)
    })?;
    Ok((server, addr))
}

pub(super) fn example(name: &str) -> std::path::PathBuf {
    root().join("target/release/examples").join(name)
}

/// Raises this process's fd limit towards `want` (the hard limit too, where the process may:
/// root with CAP_SYS_RESOURCE); children inherit it. Returns the limit in force.
pub(super) fn raise_fd_limit(want: u64) -> anyhow::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= want {
        return Ok(soft);
    }
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok() {
        return Ok(want);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Waits until `/healthz` answers 200 (the hub is subscribed to Redis).
fn wait_healthy(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(addr, "/healthz").is_ok_and(|b| b.starts_with("HTTP/1.1 200")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the hub on {addr} never became healthy")
}

/// A whole HTTP/1.1 response (status line, headers, body) as text.
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// One metric of the hub's `/metrics`.
pub(super) fn metric(addr: &str, name: &str) -> anyhow::Result<f64> {
    let text = http_get(addr, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

/// The next JSON line a client prints.
pub(super) fn next_json(out: &mut BufReader<ChildStdout>) -> anyhow::Result<Value> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("the bench client exited (see its error above)");
        }
        if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
            return Ok(v);
        }
    }
}

/// One `hub-bench` client process.
pub(super) struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    /// Starts `hub-bench` with `args` (its flags); its sockets connect while the caller goes on
    /// (see [`Client::next`]).
    pub(super) fn spawn(args: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(example("hub-bench"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the hub-bench client")?;
        let stdin = child.stdin.take().context("client stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("client stdout")?);
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line without waiting for its answer.
    pub(super) fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("client stdin")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The next JSON line the client prints (its sockets being up, a command's answer).
    pub(super) fn next(&mut self) -> anyhow::Result<Value> {
        next_json(&mut self.stdout)
    }

    /// Closes the client's input and waits for it to exit cleanly (its sockets close).
    pub(super) fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            bail!("a bench client failed ({status})");
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running bench client processes, with their sockets up, and what the server's memory did.
struct Clients {
    procs: Vec<Client>,
    before: u64,
    after: u64,
    secs: f64,
}

impl Clients {
    /// Sends one command to the first client process and returns its JSON answer.
    fn command(&mut self, line: &str) -> anyhow::Result<Value> {
        let c = self.procs.first_mut().context("no client process")?;
        c.send(line)?;
        c.next()
    }

    /// Closes the clients' input, so they exit and their sockets close.
    fn finish(self) -> anyhow::Result<()> {
        finish_all(self.procs)
    }
}

/// Closes every client's input first (so they all disconnect at once), then waits for each.
pub(super) fn finish_all(mut procs: Vec<Client>) -> anyhow::Result<()> {
    for c in &mut procs {
        drop(c.stdin.take());
    }
    for c in procs {
        c.finish()?;
    }
    Ok(())
}

/// Connects clients `first..first + sockets` (the index picks each one's source address and
/// post) to `server`, in as many client processes as the fd limit requires, and measures the
/// server's RSS growth, leaving the clients connected.
fn idle_memory_keep(
    server: &Service,
    addr: &str,
    mode: &str,
    first: usize,
    sockets: usize,
    per_process: usize,
) -> anyhow::Result<Clients> {
    std::thread::sleep(SETTLE);
    let before = rss_bytes(server.pid()).context("the server is gone")?;
    let started = Instant::now();
    let mut procs = Vec::new();
    let (mut first, end) = (first, first + sockets);
    while first < end {
        let n = per_process.min(end - first);
        let args = [
            "--addr",
            addr,
            "--mode",
            mode,
            "--sockets",
            &n.to_string(),
            "--first",
            &first.to_string(),
            "--posts",
            &POSTS.to_string(),
        ];
        procs.push(Client::spawn(&args.map(str::to_owned))?);
        first += n;
    }
    for c in &mut procs {
        c.next()?;
    }
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let after = rss_bytes(server.pid()).context("the server is gone")?;
    let per_socket = after.saturating_sub(before) as f64 / sockets as f64;
    eprintln!(
        "[bench] {mode} server pid {}: {sockets} sockets up in {secs:.1} s ({} client processes); RSS {before} → {after}: {per_socket:.0} B/socket",
        server.pid(),
        procs.len()
    );
    Ok(Clients {
        procs,
        before,
        after,
        secs,
    })
}

/// Server processes sharing one memory measurement, each with its clients still connected.
struct Fleet {
    servers: Vec<(Service, String, Clients)>,
    sockets: usize,
}

impl Fleet {
    fn before(&self) -> u64 {
        self.servers.iter().map(|(_, _, c)| c.before).sum()
    }
    fn after(&self) -> u64 {
        self.servers.iter().map(|(_, _, c)| c.after).sum()
    }
    /// Server RSS growth (summed over the processes) per socket.
    fn per_socket(&self) -> f64 {
        self.after().saturating_sub(self.before()) as f64 / self.sockets as f64
    }
    fn row(&self, server: &str) -> Value {
        let secs = self
            .servers
            .iter()
            .map(|(_, _, c)| c.secs)
            .fold(0.0, f64::max);
        json!({"server": server, "sockets": self.sockets, "processes": self.servers.len(), "bytes_per_socket": self.per_socket(), "rss_before": self.before(), "rss_after": self.after(), "connect_secs": secs})
    }
    /// Disconnects every client; the servers stop when dropped.
    fn finish(self) -> anyhow::Result<()> {
        for (_, _, clients) in self.servers {
            clients.finish()?;
        }
        Ok(())
    }
}

/// Starts `processes` servers with `start` and connects `sockets` idle clients spread evenly
/// over them, keeping every socket up until the fleet is finished.
fn fleet_memory(
    processes: usize,
    start: impl Fn() -> anyhow::Result<(Service, String)>,
    mode: &str,
    sockets: usize,
    per_process: usize,
) -> anyhow::Result<Fleet> {
    let mut servers = Vec::new();
    let mut first = 0;
    for i in 0..processes {
        let share = sockets / processes + usize::from(i < sockets % processes);
        let (server, addr) = start()?;
        let clients = idle_memory_keep(&server, &addr, mode, first, share, per_process)?;
        servers.push((server, addr, clients));
        first += share;
    }
    Ok(Fleet { servers, sockets })
}

//! `cargo xtask bench sockets`: 100,000 live Socket.IO sockets at once (issue 17), spread over
//! several hub processes against one throw-away Redis (AOF off), all subscribed, under a steady
//! like load through the real like script:
//! 1. sockets connected (all of them, or the run fails) and the time to connect them;
//! 2. hub RSS before and after, summed and per hub process, and bytes per socket;
//! 3. like → socket delivery p50/p99/max over every socket, frames delivered, hub CPU per 1,000
//!    frames, and sockets lost (must be none).
//!
//! One process may hold 20,000 fds here, so the sockets are shared by [`HUBS`] hubs and opened by
//! [`CLIENTS`] `hub-bench` processes. Each client process owns its own posts (it likes them and
//! times their delivery) and spreads each post's sockets over every hub, so every like reaches
//! every hub. Results: target/bench/sockets.json and a Markdown table on stdout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::bench::start_redis;
use super::bench_realtime::{Client, finish_all, metric, raise_fd_limit, start_hub};
use crate::proc::Service;
use crate::tools::{self, root};
use service_kit::procfs::{cpu_time, rss_bytes};

/// Sockets held at once.
const SOCKETS: usize = 100_000;
/// Hub processes sharing them (~16,700 sockets, i.e. fds, each).
const HUBS: usize = 6;
/// `hub-bench` processes opening them (~16,700 fds each).
const CLIENTS: usize = 6;
/// Posts each client process subscribes its sockets to and likes (~17 sockets per post).
const POSTS_PER_CLIENT: u64 = 1_000;
/// Steady like rate over all client processes: every post liked every 5 s, ~20,000 frames/s.
const LIKES_PER_SEC: u64 = 1_200;
/// The fd limit one process may have here (hard limit, no `CAP_SYS_RESOURCE`).
const FD_LIMIT: u64 = 20_000;
/// Fds a process needs besides its sockets (Redis, listeners, stdio, the runtime).
const FD_SPARE: usize = 500;
/// Time for memory to settle once every socket is up.
const SETTLE: Duration = Duration::from_secs(3);

/// One hub process and its readings.
struct Hub {
    service: Service,
    addr: String,
    admin: String,
    rss: Vec<u64>,
}

impl Hub {
    fn rss(&mut self) -> anyhow::Result<u64> {
        let rss = rss_bytes(self.service.pid()).context("a hub is gone")?;
        self.rss.push(rss);
        Ok(rss)
    }
    fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_time(self.service.pid()).context("a hub is gone")
    }
    fn metric(&self, name: &str) -> anyhow::Result<f64> {
        metric(&self.admin, name)
    }
}

/// Runs the benchmark; `seconds` is the length of the like load.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    tools::build_native()?;
    let fds = raise_fd_limit(FD_LIMIT)?;
    let most = SOCKETS.div_ceil(HUBS).max(SOCKETS.div_ceil(CLIENTS)) + FD_SPARE;
    if usize::try_from(fds).unwrap_or(usize::MAX) < most {
        bail!("the fd limit ({fds}) is below the {most} a hub or client process needs here");
    }
    let (_redis, redis_url, _) = start_redis()?;
    let mut hubs = Vec::new();
    for _ in 0..HUBS {
        let (service, addr, admin) = start_hub(&redis_url)?;
        hubs.push(Hub {
            service,
            addr,
            admin,
            rss: Vec::new(),
        });
    }
    std::thread::sleep(SETTLE);
    for h in &mut hubs {
        h.rss()?;
    }
    let cpu_idle: Vec<Duration> = hubs.iter().map(Hub::cpu).collect::<Result<_, _>>()?;

    // Every client process connects to every hub, all at once.
    let addrs = hubs
        .iter()
        .map(|h| h.addr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let started = Instant::now();
    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        let (first, end) = (k * SOCKETS / CLIENTS, (k + 1) * SOCKETS / CLIENTS);
        let args = [
            "--addr".to_owned(),
            addrs.clone(),
            "--mode".to_owned(),
            "socketio".to_owned(),
            "--sockets".to_owned(),
            (end - first).to_string(),
            "--first".to_owned(),
            first.to_string(),
            "--posts".to_owned(),
            POSTS_PER_CLIENT.to_string(),
            "--post-base".to_owned(),
            (k as u64 * POSTS_PER_CLIENT).to_string(),
        ];
        clients.push(Client::spawn(&args)?);
    }
    let mut connected = 0;
    for c in &mut clients {
        connected += c.next()?["sockets"].as_u64().unwrap_or(0);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "[bench] {connected} sockets up in {connect_secs:.1} s ({HUBS} hubs, {CLIENTS} client processes)"
    );
    std::thread::sleep(SETTLE);
    let mut up = Vec::new();
    let mut cpu0 = Vec::new();
    let mut emits0 = Vec::new();
    for h in &mut hubs {
        h.rss()?;
        up.push(h.metric("realtime_hub_sockets")?);
        cpu0.push(h.cpu()?);
        emits0.push(h.metric("realtime_hub_like_emits_out_total")?);
    }
    let client_rss: u64 = clients.iter().filter_map(|c| rss_bytes(c.pid())).sum();
    eprintln!("[bench] hub sockets {up:?}; loading {LIKES_PER_SEC} likes/s for {seconds} s");

    // The load: each client process likes its own posts, all at the same time.
    let rate = LIKES_PER_SEC as f64 / CLIENTS as f64;
    for c in &mut clients {
        c.send(&format!(
            "load {redis_url} {rate} {seconds} {POSTS_PER_CLIENT} hist"
        ))?;
    }
    let mut loads = Vec::new();
    for c in &mut clients {
        loads.push(c.next()?);
    }
    let mut per_hub = Vec::new();
    for (i, h) in hubs.iter_mut().enumerate() {
        let cpu = h.cpu()? - cpu0[i];
        let emits = h.metric("realtime_hub_like_emits_out_total")? - emits0[i];
        let sockets_after = h.metric("realtime_hub_sockets")?;
        h.rss()?;
        let grown = h.rss[1].saturating_sub(h.rss[0]);
        per_hub.push(json!({
            "hub": i + 1,
            "sockets": up[i],
            "sockets_after_load": sockets_after,
            "rss_before": h.rss[0],
            "rss_connected": h.rss[1],
            "rss_after_load": h.rss[2],
            "bytes_per_socket": grown as f64 / up[i].max(1.0),
            "connect_cpu_ms": (cpu0[i] - cpu_idle[i]).as_secs_f64() * 1000.0,
            "load_cpu_ms": cpu.as_secs_f64() * 1000.0,
            "room_emits": emits,
        }));
    }

    let sum = |k: &str| {
        loads
            .iter()
            .map(|r| r[k].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    let hub_sum = |k: &str| {
        per_hub
            .iter()
            .map(|r| r[k].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    let latency = merge(&loads);
    let frames = sum("frames");
    let load_secs = loads
        .iter()
        .filter_map(|r| r["secs"].as_f64())
        .fold(0.0, f64::max);
    let hub_sockets_after = hub_sum("sockets_after_load");
    let lost = sum("closed") + (hub_sum("sockets") - hub_sockets_after).max(0.0);
    let cpu_ms = hub_sum("load_cpu_ms");
    let rss = |i: usize| hubs.iter().map(|h| h.rss[i]).sum::<u64>();
    let summary = json!({
        "sockets_connected": connected,
        "hub_sockets": hub_sum("sockets"),
        "hub_sockets_after_load": hub_sockets_after,
        "hub_processes": HUBS,
        "client_processes": CLIENTS,
        "connect_secs": connect_secs,
        "hub_rss_before": rss(0),
        "hub_rss_connected": rss(1),
        "hub_rss_after_load": rss(2),
        "bytes_per_socket": rss(1).saturating_sub(rss(0)) as f64 / SOCKETS as f64,
        "client_rss_connected": client_rss,
        "hub_connect_cpu_ms": hub_sum("connect_cpu_ms"),
        "likes": sum("likes"),
        "likes_per_sec": sum("likes") / load_secs.max(f64::MIN_POSITIVE),
        "late_ticks": sum("late_ticks"),
        "room_emits": hub_sum("room_emits"),
        "frames": frames,
        "samples": latency["samples"],
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "max_ms": latency["max_ms"],
        "hub_load_cpu_ms": cpu_ms,
        "hub_cpu_ms_per_1000_frames": cpu_ms / (frames.max(1.0) / 1000.0),
        "sockets_lost": lost,
    });
    let report = json!({
        "summary": summary,
        "hubs": per_hub,
        "clients": loads.iter().map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("hist");
            }
            r
        }).collect::<Vec<_>>(),
        "settings": {
            "sockets": SOCKETS,
            "posts": POSTS_PER_CLIENT * CLIENTS as u64,
            "likes_per_sec": LIKES_PER_SEC,
            "load_secs": seconds,
            "coalesce_window_ms": 100,
            "redis": "single, AOF off",
            "fd_limit": fds,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
    });
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("sockets.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    print_table(&report);
    finish_all(clients)?;
    if connected != SOCKETS as u64 || hub_sum("sockets") != SOCKETS as f64 {
        bail!("only {connected} of {SOCKETS} sockets connected");
    }
    if lost > 0.0 {
        bail!("{lost} sockets were lost during the run");
    }
    Ok(())
}

/// Merges the clients' latency histograms (`[µs, count]` pairs of their recorded values) and
/// reads p50/p99/max off the merged counts.
fn merge(loads: &[Value]) -> Value {
    let mut counts = BTreeMap::<u64, u64>::new();
    for r in loads {
        for pair in r["hist"].as_array().into_iter().flatten() {
            if let (Some(us), Some(n)) = (pair[0].as_u64(), pair[1].as_u64()) {
                *counts.entry(us).or_default() += n;
            }
        }
    }
    let total: u64 = counts.values().sum();
    let quantile = |q: f64| {
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (us, n) in &counts {
            seen += n;
            if seen >= rank {
                return *us as f64 / 1000.0;
            }
        }
        f64::NAN
    };
    let max = counts
        .keys()
        .next_back()
        .map_or(f64::NAN, |us| *us as f64 / 1000.0);
    json!({"samples": total, "p50_ms": quantile(0.5), "p99_ms": quantile(0.99), "max_ms": max})
}

fn print_table(report: &Value) {
    let s = &report["summary"];
    let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let mib = |k: &str| f(k) / 1_048_576.0;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| sockets connected (at the hubs) | {} ({}) |",
        s["sockets_connected"], s["hub_sockets"]
    );
    println!(
        "| hub / client processes | {} / {} |",
        s["hub_processes"], s["client_processes"]
    );
    println!(
        "| time to connect (hub CPU) | {:.1} s ({:.1} s) |",
        f("connect_secs"),
        f("hub_connect_cpu_ms") / 1000.0
    );
    println!(
        "| hub RSS before → connected → after load (MiB, summed) | {:.1} → {:.1} → {:.1} |",
        mib("hub_rss_before"),
        mib("hub_rss_connected"),
        mib("hub_rss_after_load")
    );
    println!("| hub bytes per socket | {:.0} |", f("bytes_per_socket"));
    println!(
        "| client RSS, connected (MiB, summed) | {:.1} |",
        mib("client_rss_connected")
    );
    println!(
        "| likes (likes/s, posts) | {:.0} ({:.0}/s over {}) |",
        f("likes"),
        f("likes_per_sec"),
        report["settings"]["posts"]
    );
    println!("| room emits (all hubs) | {:.0} |", f("room_emits"));
    println!(
        "| frames delivered (latency samples) | {:.0} ({}) |",
        f("frames"),
        s["samples"]
    );
    println!(
        "| delivery p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms")
    );
    println!(
        "| hub CPU during load (per 1,000 frames) | {:.1} s ({:.1} ms) |",
        f("hub_load_cpu_ms") / 1000.0,
        f("hub_cpu_ms_per_1000_frames")
    );
    println!("| sockets lost | {} |", s["sockets_lost"]);
    println!();
    println!(
        "| hub | sockets | RSS before → connected → after load (MiB) | bytes per socket | connect CPU s | room emits | load CPU s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let empty = Vec::new();
    for h in report["hubs"].as_array().unwrap_or(&empty) {
        let g = |k: &str| h[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {:.0} | {:.1} → {:.1} → {:.1} | {:.0} | {:.1} | {:.0} | {:.1} |",
            h["hub"],
            g("sockets"),
            g("rss_before") / 1_048_576.0,
            g("rss_connected") / 1_048_576.0,
            g("rss_after_load") / 1_048_576.0,
            g("bytes_per_socket"),
            g("connect_cpu_ms") / 1000.0,
            g("room_emits"),
            g("load_cpu_ms") / 1000.0,
        );
    }
}

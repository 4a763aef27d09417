//! `cargo xtask bench spin`: our edge host against the real Spin, serving the same `spin.toml`
//! and `.wasm` files against the same Redis, under the same load, in alternating rounds of one
//! run (so both see the same machine). Three loads: the `bench likes` like/unlike mix, signed-in
//! feed pages, and a 12 MP JPEG upload.
//!
//! Results: target/bench/spin.json and a Markdown table on stdout.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench::{
    LIMITS_OFF, SECRET, bench_bin, free_port, measure, median, start_edge, start_redis,
};
use crate::proc::{self, Service};
use crate::tools::{self, root};

/// The two runtimes, in the order each round measures them.
const RUNTIMES: [&str; 2] = ["edge-host", "spin"];

pub fn run(seconds: u64, rounds: u64, connections: &[usize]) -> anyhow::Result<()> {
    let spin_bin = tools::require_spin()?;
    tools::build_components(false)?;
    crate::cmd::app::build()?;
    tools::build_native()?;
    let (_redis, redis_url, redis_port) = start_redis()?;
    measure(bench_bin().args(["seed", "--redis", &redis_url]))?;
    let (host, host_addr) = start_edge(redis_port, &[])?;
    let (spin, spin_addr) = start_spin(&spin_bin, redis_port)?;
    // `spin up` supervises; its `spin trigger http` child serves, and is the one measured.
    let spin_server = trigger_child(spin.pid())?;
    let targets = [(&host_addr, host.pid()), (&spin_addr, spin_server)];

    let drive = |workload: &str, runtime: usize, conns: usize, offset: u64, secs: u64| {
        let (addr, pid) = targets[runtime];
        measure(
            bench_bin()
                .args(["drive", "--addr", addr, "--secret", SECRET])
                .args(["--target", RUNTIMES[runtime], "--workload", workload])
                .args(["--connections", &conns.to_string()])
                .args(["--seconds", &secs.to_string(), "--threads", "1"])
                .args(["--user-offset", &offset.to_string()])
                .args(["--server-pid", &pid.to_string()]),
        )
    };
    // Untimed: compiled code, pooled instances (ours) and caches warm on both.
    for (runtime, offset) in [(0, 90_000_000), (1, 90_100_000)] {
        drive("likes", runtime, 16, offset, 2)?;
    }

    let mut rows = Vec::new();
    for round in 0..rounds.max(1) {
        for (i, &conns) in connections.iter().enumerate() {
            for workload in ["likes", "feed"] {
                for (runtime, name) in RUNTIMES.iter().enumerate() {
                    // Fresh users per measurement, so every like changes state.
                    let offset = 100_000_000
                        + round * 10_000_000
                        + i as u64 * 1_000_000
                        + runtime as u64 * 100_000;
                    let mut row = drive(workload, runtime, conns, offset, seconds)?;
                    row["round"] = round.into();
                    row["workload"] = workload.into();
                    row["runtime"] = (*name).into();
                    rows.push(row);
                }
            }
        }
    }
    let mut uploads = Vec::new();
    for (runtime, (addr, _)) in targets.iter().enumerate() {
        let mut row = measure(
            bench_bin().args(["upload", "--addr", addr, "--secret", SECRET, "--runs", "7"]),
        )?;
        row["runtime"] = RUNTIMES[runtime].into();
        uploads.push(row);
    }
    drop((host, spin));

    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("spin.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "http": rows, "upload": uploads }))?,
    )?;
    print_tables(&rows, &uploads, connections);
    Ok(())
}

/// `spin up` with the real manifest against the Redis on `redis_port`; its logs and state go
/// to a directory of its own under target/bench.
fn start_spin(spin: &Path, redis_port: u16) -> anyhow::Result<(Service, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let state = root().join(format!("target/bench/spin-{redis_port}"));
    let svc = Service::start("spin", {
        let (spin, addr) = (spin.to_owned(), addr.clone());
        move || {
            let mut c = Command::new(&spin);
            c.arg("up")
                .arg("--from")
                .arg(root().join("spin.toml"))
                .args(["--listen", &addr])
                .arg("--state-dir")
                .arg(&state)
                .env("SPIN_VARIABLE_SESSION_SECRET", SECRET)
                .env(
                    "SPIN_VARIABLE_REDIS_HOST",
                    format!("127.0.0.1:{redis_port}"),
                )
                .envs(LIMITS_OFF);
            c
        }
    })?;
    proc::wait_for_port(&addr, Duration::from_secs(120))?;
    Ok((svc, addr))
}

/// The one child process of `pid` (Linux: `/proc/<pid>/task/*/children`).
fn trigger_child(pid: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).context("reading /proc")?;
        let children: Vec<u32> = tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        match children.as_slice() {
            [child] => return Ok(*child),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => bail!("spin up ({pid}) has children {other:?}, expected one"),
        }
    }
}

fn print_tables(rows: &[serde_json::Value], uploads: &[serde_json::Value], conns: &[usize]) {
    let of = |workload: &str, runtime: &str, c: usize| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| {
                r["workload"] == workload && r["runtime"] == runtime && r["connections"] == c
            })
            .collect()
    };
    let med = |rs: &[&serde_json::Value], key: &str| {
        median(rs.iter().filter_map(|r| r[key].as_f64()).collect())
    };
    println!(
        "| load | conns | runtime | rounds | req/s | p50 µs | p99 µs | server CPU µs/req | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for workload in ["likes", "feed"] {
        for &c in conns {
            for runtime in RUNTIMES {
                let rs = of(workload, runtime, c);
                if rs.is_empty() {
                    continue;
                }
                println!(
                    "| {workload} | {c} | {runtime} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    rs.len(),
                    med(&rs, "rps"),
                    med(&rs, "p50_us"),
                    med(&rs, "p99_us"),
                    med(&rs, "server_cpu_us_per_req"),
                    rs.iter().filter_map(|r| r["errors"].as_f64()).sum::<f64>(),
                );
            }
            // Each round's own ratio (both runtimes measured back to back), then the median.
            let per_round = |key: &str| {
                let (ours, theirs) = (of(workload, RUNTIMES[0], c), of(workload, RUNTIMES[1], c));
                median(
                    ours.iter()
                        .filter_map(|a| {
                            let b = theirs.iter().find(|b| b["round"] == a["round"])?;
                            Some(a[key].as_f64()? / b[key].as_f64()?)
                        })
                        .collect(),
                )
            };
            ratios.push((
                workload,
                c,
                per_round("rps"),
                1.0 / per_round("server_cpu_us_per_req"),
                1.0 / per_round("p99_us"),
            ));
        }
    }
    println!();
    println!("| load | conns | host / Spin req/s | Spin / host CPU per req | Spin / host p99 |");
    println!("|---|---|---|---|---|");
    for (workload, c, rps, cpu, p99) in ratios {
        println!("| {workload} | {c} | {rps:.2}× | {cpu:.2}× | {p99:.2}× |");
    }
    println!();
    println!("| 12 MP JPEG upload | p50 ms | p90 ms |");
    println!("|---|---|---|");
    for u in uploads {
        println!(
            "| {} | {:.0} | {:.0} |",
            u["runtime"].as_str().unwrap_or("?"),
            u["edge_p50_ms"].as_f64().unwrap_or(f64::NAN),
            u["edge_p90_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

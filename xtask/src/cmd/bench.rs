//! `cargo xtask bench likes`: the like path through the wasm edge host, next to the same logic
//! as a native axum handler and the raw Redis ceiling of the same script, in one run so the
//! ratios hold on a noisy shared machine. Also the dedupe structure's bytes per like.
//!
//! Results: target/bench/likes.json (every run) and a Markdown table on stdout.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::proc::{self, Service};
use crate::tools::{self, root};

const SECRET: &str = "bench-secret";

#[derive(clap::Args)]
pub struct Args {
    /// What to measure: `likes` (throughput and latency) or `memory` (bytes per like).
    what: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connection counts to measure at.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    connections: Vec<usize>,
    /// Likes for the memory benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    likes: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    match args.what.as_str() {
        "likes" => likes(&args),
        "memory" => memory(&args),
        "upload" => upload(),
        "realtime" => super::bench_realtime::run(args.seconds),
        "sync" => super::bench_sync::run(args.likes),
        other => bail!(
            "unknown benchmark `{other}` (try `likes`, `memory`, `upload`, `sync` or `realtime`)"
        ),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn bench_bin() -> Command {
    Command::new(tools::release_bin("likes-bench"))
}

/// Runs a likes-bench subcommand and parses its JSON line.
fn measure(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd.output().context("running likes-bench")?;
    if !out.status.success() {
        bail!(
            "likes-bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("likes-bench printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line).context("parsing likes-bench output")?;
    eprintln!("{line}");
    Ok(v)
}

fn start_redis() -> anyhow::Result<(Service, String, u16)> {
    let port = free_port()?;
    let dir = root().join(format!("target/bench/redis-{port}"));
    let svc = proc::redis(port, &dir, false)?;
    Ok((svc, format!("redis://127.0.0.1:{port}"), port))
}

/// The edge host with the real manifest against the Redis on `redis_port`; `variables` are
/// extra `SPIN_VARIABLE_*` overrides. Returns the service and its `host:port`.
fn start_edge(redis_port: u16, variables: &[(&str, &str)]) -> anyhow::Result<(Service, String)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port()?);
    let redis_host = format!("127.0.0.1:{redis_port}");
    let variables: Vec<(String, String)> = variables
        .iter()
        .map(|(k, v)| {
            (
                format!("SPIN_VARIABLE_{}", k.to_uppercase()),
                (*v).to_owned(),
            )
        })
        .collect();
    let edge = Service::start("edge-host", {
        let addr = addr.clone();
        move || {
            let mut c = Command::new(tools::release_bin("edge-host"));
            c.arg("--manifest").arg(root().join("spin.toml")).args([
                "--listen",
                &addr,
                "--admin-listen",
                &admin,
            ]);
            c.env("SPIN_VARIABLE_SESSION_SECRET", SECRET)
                .env("SPIN_VARIABLE_REDIS_HOST", &redis_host)
                .envs(variables.iter().map(|(k, v)| (k, v)))
                .env("RUST_LOG", "warn");
            c
        }
    })?;
    proc::wait_for_port(&addr, Duration::from_secs(120))?;
    Ok((edge, addr))
}

/// `cargo xtask bench upload`: a 12 MP JPEG through the wasm upload component, end to end, next
/// to the same pipeline natively.
fn upload() -> anyhow::Result<()> {
    tools::build_components(false)?;
    tools::build_native(&["edge-host", "likes-bench"])?;
    let (_redis, _, redis_port) = start_redis()?;
    let (_edge, addr) = start_edge(redis_port, &[("uploads_per_minute", "100000")])?;
    let row = measure(bench_bin().args([
        "upload", "--addr", &addr, "--secret", SECRET, "--runs", "15",
    ]))?;
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("upload.json"), serde_json::to_string_pretty(&row)?)?;
    let f = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
    println!("| 12 MP JPEG upload | p50 ms | p90 ms |");
    println!("|---|---|---|");
    println!(
        "| edge (wasm component, end to end) | {:.0} | {:.0} |",
        f("edge_p50_ms"),
        f("edge_p90_ms")
    );
    println!(
        "| native pipeline (`likes_images::process`) | {:.0} | {:.0} |",
        f("native_p50_ms"),
        f("native_p90_ms")
    );
    println!(
        "| ratio edge / native (p50) | {:.2} | |",
        f("edge_over_native_p50")
    );
    Ok(())
}

fn likes(args: &Args) -> anyhow::Result<()> {
    tools::build_components(false)?;
    tools::build_native(&["edge-host", "likes-bench"])?;
    let (redis, redis_url, redis_port) = start_redis()?;
    measure(bench_bin().args(["seed", "--redis", &redis_url]))?;
    let mut rows = Vec::new();

    let drive = |target: &str, addr: &str, pid: u32, conns: usize, offset: u64| {
        measure(
            bench_bin()
                .args([
                    "drive", "--addr", addr, "--secret", SECRET, "--target", target,
                ])
                .args([
                    "--connections",
                    &conns.to_string(),
                    "--seconds",
                    &args.seconds.to_string(),
                    "--user-offset",
                    &offset.to_string(),
                    "--server-pid",
                    &pid.to_string(),
                ]),
        )
    };

    // 1. The wasm edge host with the real manifest and components.
    {
        let (edge, addr) = start_edge(redis_port, &[])?;
        for (i, &c) in args.connections.iter().enumerate() {
            rows.push(drive(
                "edge (wasm)",
                &addr,
                edge.pid(),
                c,
                1_000_000 + i as u64 * 100_000,
            )?);
        }
    }
    // 2. The same logic as a native axum handler.
    {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let native = Service::start("native", {
            let (addr, redis_url) = (addr.clone(), redis_url.clone());
            move || {
                let mut c = bench_bin();
                c.args([
                    "native", "--listen", &addr, "--redis", &redis_url, "--secret", SECRET,
                ]);
                c
            }
        })?;
        proc::wait_for_port(&addr, Duration::from_secs(10))?;
        for (i, &c) in args.connections.iter().enumerate() {
            rows.push(drive(
                "native axum",
                &addr,
                native.pid(),
                c,
                2_000_000 + i as u64 * 100_000,
            )?);
        }
    }
    // 3. The Redis ceiling of the same script.
    for (i, &c) in args.connections.iter().enumerate() {
        rows.push(measure(
            bench_bin().args(["redis", "--redis", &redis_url]).args([
                "--connections",
                &c.to_string(),
                "--seconds",
                &args.seconds.to_string(),
                "--user-offset",
                &(3_000_000 + i as u64 * 100_000).to_string(),
                "--server-pid",
                &redis.pid().to_string(),
            ]),
        )?);
    }
    // 4. The looser ceiling: the same script through `redis-benchmark`, no pipelining.
    for &c in &args.connections {
        rows.push(measure(
            bench_bin()
                .args(["redis-benchmark", "--redis", &redis_url])
                .args(["--connections", &c.to_string()])
                .args(["--server-pid", &redis.pid().to_string()]),
        )?);
    }
    drop(redis);

    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("likes.json"), serde_json::to_string_pretty(&rows)?)?;
    print_table(&rows, &args.connections);
    Ok(())
}

fn print_table(rows: &[serde_json::Value], conns: &[usize]) {
    let find = |target: &str, c: usize| {
        rows.iter()
            .find(|r| r["target"] == target && r["connections"] == c)
    };
    let rps_of = |target: &str, c: usize| {
        find(target, c)
            .and_then(|r| r["rps"].as_f64())
            .unwrap_or(f64::NAN)
    };
    println!(
        "| target | conns | req/s | p50 µs | p99 µs | server CPU µs/req | client CPU µs/req | vs Redis ceiling (pipelined) | vs redis-benchmark |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &c in conns {
        let (ceiling, loose) = (rps_of("redis", c), rps_of("redis-benchmark", c));
        for target in ["edge (wasm)", "native axum", "redis", "redis-benchmark"] {
            if let Some(r) = find(target, c) {
                let rps = r["rps"].as_f64().unwrap_or(0.0);
                let micros = |key: &str| {
                    r[key]
                        .as_f64()
                        .map_or("–".to_owned(), |v| format!("{v:.0}"))
                };
                let (cpu, client) = (
                    micros("server_cpu_us_per_req"),
                    micros("client_cpu_us_per_req"),
                );
                println!(
                    "| {target} | {c} | {rps:.0} | {} | {} | {cpu} | {client} | {:.0}% | {:.0}% |",
                    r["p50_us"],
                    r["p99_us"],
                    100.0 * rps / ceiling,
                    100.0 * rps / loose
                );
            }
        }
    }
}

fn memory(args: &Args) -> anyhow::Result<()> {
    tools::build_native(&["likes-bench"])?;
    let (_redis, redis_url, _) = start_redis()?;
    for stride in [1u64, 97] {
        measure(bench_bin().args([
            "memory",
            "--redis",
            &redis_url,
            "--likes",
            &args.likes.to_string(),
            "--stride",
            &stride.to_string(),
        ]))?;
    }
    Ok(())
}

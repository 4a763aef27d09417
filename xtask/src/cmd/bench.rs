//! `cargo xtask bench likes`: the like path through the wasm edge host, next to the same logic
//! as a native axum handler and the raw Redis ceiling of the same script, in one run so the
//! ratios hold on a noisy shared machine. Also the dedupe structure's bytes per like.
//!
//! Each point is measured in several rounds, the four targets back to back within a round, and
//! the table reports medians: a single pass swings by ±15% here, and a ratio taken from two
//! measurements minutes apart carries both swings.
//!
//! Results: target/bench/likes.json (every measurement) and a Markdown table on stdout.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::proc::{self, Service};
use crate::tools::{self, root};

pub(super) const SECRET: &str = "bench-only-session-secret-not-for-production";
/// The edge's abuse limits, off: a benchmark is a few clients on one address doing as much as
/// the system allows, which is exactly what the limits exist to stop.
pub(super) const LIMITS_OFF: [(&str, &str); 4] = [
    ("SPIN_VARIABLE_LIKES_PER_MINUTE", "0"),
    ("SPIN_VARIABLE_SESSIONS_PER_MINUTE", "0"),
    ("SPIN_VARIABLE_UPLOADS_PER_MINUTE", "0"),
    ("SPIN_VARIABLE_ADDRESS_UPLOADS_PER_MINUTE", "0"),
];

#[derive(clap::Args)]
pub struct Args {
    /// What to measure: `likes` (throughput and latency), `memory` (bytes per like), `upload`,
    /// `sync`, `realtime`, `sockets` (100,000 live hub sockets under a like load), `edge-ab`
    /// (this edge host against `--base`, side by side), `spin`
    /// (this edge host against the real Spin, same components and load), `heavy` (a light
    /// request's latency while heavy uploads decode), or `durability` (each
    /// `like_durability` mode on a single Redis and on a cluster, with each part's CPU per like).
    what: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connection counts to measure at (default 16,64,256; `spin`: 16,64).
    #[arg(long, value_delimiter = ',')]
    connections: Vec<usize>,
    /// Rounds of the like benchmark; the table reports each figure's median over the rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Likes for the memory benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    likes: u64,
    /// `edge-ab`: the edge-host binary to compare the current build against (copy it aside
    /// before rebuilding).
    #[arg(long)]
    base: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    match args.what.as_str() {
        "likes" => likes(&args),
        "memory" => memory(&args),
        "upload" => upload(),
        "realtime" => super::bench_realtime::run(args.seconds),
        "sockets" => super::bench_sockets::run(args.seconds),
        "sync" => super::bench_sync::run(args.likes),
        "edge-ab" => edge_ab(&args),
        "spin" => super::bench_spin::run(args.seconds, args.rounds, &spin_connections(&args)),
        "heavy" => super::bench_heavy::run(args.seconds, args.rounds),
        "durability" => super::bench_durability::run(args.seconds, args.rounds),
        other => bail!(
            "unknown benchmark `{other}` (try `likes`, `memory`, `upload`, `sync`, `realtime`, `sockets`, `edge-ab`, `spin`, `heavy` or `durability`)"
        ),
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(super) fn bench_bin() -> Command {
    Command::new(tools::release_bin("likes-bench"))
}

/// Runs a likes-bench subcommand and parses its JSON line.
pub(super) fn measure(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    report(cmd.output().context("running likes-bench")?)
}

/// The JSON line a finished likes-bench printed last (echoed to stderr).
fn report(out: std::process::Output) -> anyhow::Result<serde_json::Value> {
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

pub(super) fn start_redis() -> anyhow::Result<(Service, String, u16)> {
    let port = free_port()?;
    let dir = root().join(format!("target/bench/redis-{port}"));
    let svc = proc::redis(port, &dir, false)?;
    Ok((svc, format!("redis://127.0.0.1:{port}"), port))
}

/// The edge host with the real manifest against the Redis on `redis_port`; `variables` are
/// extra `SPIN_VARIABLE_*` overrides. Returns the service and its `host:port`.
pub(super) fn start_edge(
    redis_port: u16,
    variables: &[(&str, &str)],
) -> anyhow::Result<(Service, String)> {
    start_edge_binary(tools::release_bin("edge-host"), redis_port, variables)
}

/// [`start_edge`] with the edge-host binary at `binary`.
fn start_edge_binary(
    binary: std::path::PathBuf,
    redis_port: u16,
    variables: &[(&str, &str)],
) -> anyhow::Result<(Service, String)> {
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
            let mut c = Command::new(&binary);
            c.arg("--manifest").arg(root().join("spin.toml")).args([
                "--listen",
                &addr,
                "--admin-listen",
                &admin,
            ]);
            c.env("SPIN_VARIABLE_SESSION_SECRET", SECRET)
                .env("SPIN_VARIABLE_REDIS_HOST", &redis_host)
                .envs(LIMITS_OFF)
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
    tools::build_native()?;
    let (_redis, _, redis_port) = start_redis()?;
    let (_edge, addr) = start_edge(redis_port, &[])?;
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

/// The targets of `bench likes`, in the order each round measures them.
const TARGETS: [&str; 4] = ["edge (wasm)", "native axum", "redis", "redis-benchmark"];

/// The connection counts of `bench spin`: Spin opens a Redis connection per request, so 256
/// would measure the kernel's connection churn more than either runtime.
fn spin_connections(args: &Args) -> Vec<usize> {
    if args.connections.is_empty() {
        vec![16, 64]
    } else {
        args.connections.clone()
    }
}

fn likes(args: &Args) -> anyhow::Result<()> {
    let default_connections = [16, 64, 256];
    let connections: &[usize] = if args.connections.is_empty() {
        &default_connections
    } else {
        &args.connections
    };
    tools::build_components(false)?;
    tools::build_native()?;
    let (redis, redis_url, redis_port) = start_redis()?;
    measure(bench_bin().args(["seed", "--redis", &redis_url]))?;

    // 1. The wasm edge host with the real manifest and components.
    let (edge, edge_addr) = start_edge(redis_port, &[])?;
    // 2. The same logic as a native axum handler.
    let native_addr = format!("127.0.0.1:{}", free_port()?);
    let native = Service::start("native", {
        let (addr, redis_url) = (native_addr.clone(), redis_url.clone());
        move || {
            let mut c = bench_bin();
            c.args([
                "native", "--listen", &addr, "--redis", &redis_url, "--secret", SECRET,
            ]);
            c
        }
    })?;
    proc::wait_for_port(&native_addr, Duration::from_secs(10))?;

    let seconds = args.seconds.to_string();
    let drive = |target: &str, addr: &str, pid: u32, conns: &str, offset: &str| {
        measure(
            bench_bin()
                .args([
                    "drive", "--addr", addr, "--secret", SECRET, "--target", target,
                ])
                .args(["--connections", conns, "--seconds", &seconds])
                // One generator thread is enough for any target here (it uses a third of a
                // core at most) and takes the least CPU from the server on these shared cores.
                .args(["--threads", "1"])
                .args(["--user-offset", offset, "--server-pid", &pid.to_string()]),
        )
    };
    let mut rows = Vec::new();
    for round in 0..args.rounds.max(1) {
        for (i, &c) in connections.iter().enumerate() {
            // Every measurement likes as users no other measurement used, so each request
            // changes state and runs the whole script.
            let offset = |target: u64| {
                (target * 1_000_000 + round * 10_000_000 + i as u64 * 100_000).to_string()
            };
            let conns = c.to_string();
            let mut point = vec![
                drive(TARGETS[0], &edge_addr, edge.pid(), &conns, &offset(1))?,
                drive(TARGETS[1], &native_addr, native.pid(), &conns, &offset(2))?,
                // 3. The Redis ceiling of the same script, pipelined.
                measure(bench_bin().args(["redis", "--redis", &redis_url]).args([
                    "--connections",
                    &conns,
                    "--seconds",
                    &seconds,
                    "--user-offset",
                    &offset(3),
                    "--server-pid",
                    &redis.pid().to_string(),
                ]))?,
                // 4. The looser ceiling: the script through `redis-benchmark`, no pipelining.
                measure(
                    bench_bin()
                        .args(["redis-benchmark", "--redis", &redis_url])
                        .args(["--connections", &conns])
                        .args(["--server-pid", &redis.pid().to_string()]),
                )?,
            ];
            for row in &mut point {
                row["round"] = round.into();
            }
            rows.extend(point);
        }
    }
    drop((edge, native, redis));

    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("likes.json"), serde_json::to_string_pretty(&rows)?)?;
    print_table(&rows, connections);
    Ok(())
}

/// The median of `values` (NaN when empty).
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One Markdown row per target and connection count: each figure is the median over the
/// rounds, and each ratio the median of the rounds' own ratios (with their range for
/// `redis-benchmark`, the ceiling the edge's goal is stated against).
fn print_table(rows: &[serde_json::Value], conns: &[usize]) {
    let of = |target: &str, c: usize| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["target"] == target && r["connections"] == c)
            .collect()
    };
    let rps_in_round = |target: &str, c: usize, round: &serde_json::Value| {
        of(target, c)
            .into_iter()
            .find(|r| &r["round"] == round)
            .and_then(|r| r["rps"].as_f64())
    };
    println!(
        "| target | conns | rounds | req/s | p50 µs | p99 µs | server CPU µs/req | client CPU µs/req | vs Redis ceiling (pipelined) | vs redis-benchmark (range) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &c in conns {
        for target in TARGETS {
            let measured = of(target, c);
            if measured.is_empty() {
                continue;
            }
            let med = |key: &str| {
                let v = median(measured.iter().filter_map(|r| r[key].as_f64()).collect());
                if v.is_nan() {
                    "–".to_owned()
                } else {
                    format!("{v:.0}")
                }
            };
            let ratios = |reference: &str| -> Vec<f64> {
                measured
                    .iter()
                    .filter_map(|r| {
                        let rps = r["rps"].as_f64()?;
                        Some(100.0 * rps / rps_in_round(reference, c, &r["round"])?)
                    })
                    .collect()
            };
            let loose = ratios("redis-benchmark");
            let (lo, hi) = loose
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(*v), hi.max(*v))
                });
            println!(
                "| {target} | {c} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.0}% ({lo:.0}–{hi:.0}%) |",
                measured.len(),
                med("rps"),
                med("p50_us"),
                med("p99_us"),
                med("server_cpu_us_per_req"),
                med("client_cpu_us_per_req"),
                median(ratios("redis")),
                median(loose),
            );
        }
    }
}

/// Connections per edge host in `edge-ab`: together, the 64 at which the edge peaks.
const AB_CONNECTIONS: usize = 32;

/// `cargo xtask bench edge-ab --base <edge-host>`: the current edge host and `base` under the
/// same like load at the same time, each driven by its own single-threaded generator over
/// [`AB_CONNECTIONS`] connections, for `--rounds` rounds of `--seconds`.
///
/// Run one after the other, two builds differ by this machine's noise (±15% between runs);
/// run together, both see the same noise, so their CPU per like is a fair ratio. Running one
/// binary against itself shows what the method cannot resolve (about ±4% here).
fn edge_ab(args: &Args) -> anyhow::Result<()> {
    let base = args
        .base
        .clone()
        .context("edge-ab needs --base <path to the edge-host binary to compare against>")?;
    if !base.is_file() {
        bail!("--base {} is not a file", base.display());
    }
    tools::build_components(false)?;
    tools::build_native()?;
    let (_redis, redis_url, redis_port) = start_redis()?;
    measure(bench_bin().args(["seed", "--redis", &redis_url]))?;
    let (base_edge, base_addr) = start_edge_binary(base, redis_port, &[])?;
    let (new_edge, new_addr) = start_edge(redis_port, &[])?;

    let conns = AB_CONNECTIONS;
    let drive =
        |target: &str, addr: &str, pid: u32, offset: u64, seconds: u64| -> anyhow::Result<_> {
            bench_bin()
                .args([
                    "drive", "--addr", addr, "--secret", SECRET, "--target", target,
                ])
                .args(["--connections", &conns.to_string()])
                .args(["--seconds", &seconds.to_string(), "--threads", "1"])
                .args(["--user-offset", &offset.to_string()])
                .args(["--server-pid", &pid.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("starting likes-bench drive")
        };
    let parse = |child: std::process::Child| {
        report(
            child
                .wait_with_output()
                .context("waiting for likes-bench")?,
        )
    };

    // A first run pays for warming up (pool slots, scripts, caches); it is not counted.
    let warm_base = drive("base", &base_addr, base_edge.pid(), 40_000_000, 3)?;
    let warm_new = drive("new", &new_addr, new_edge.pid(), 40_100_000, 3)?;
    parse(warm_base)?;
    parse(warm_new)?;

    println!(
        "| round | base likes/s | base CPU µs/like | new likes/s | new CPU µs/like | new / base CPU |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..args.rounds.max(1) {
        let offset = 50_000_000 + round * 100_000;
        let base_run = drive("base", &base_addr, base_edge.pid(), offset, args.seconds)?;
        let new_run = drive(
            "new",
            &new_addr,
            new_edge.pid(),
            offset + 50_000,
            args.seconds,
        )?;
        let (b, n) = (parse(base_run)?, parse(new_run)?);
        let cpu = |v: &serde_json::Value| v["server_cpu_us_per_req"].as_f64().unwrap_or(f64::NAN);
        let rps = |v: &serde_json::Value| v["rps"].as_f64().unwrap_or(f64::NAN);
        let ratio = cpu(&n) / cpu(&b);
        println!(
            "| {round} | {:.0} | {:.1} | {:.0} | {:.1} | {ratio:.3} |",
            rps(&b),
            cpu(&b),
            rps(&n),
            cpu(&n)
        );
        ratios.push(ratio);
        rows.extend([b, n]);
    }
    println!(
        "\nmedian new / base CPU per like: {:.3} over {} rounds ({conns} connections each)",
        median(ratios),
        args.rounds.max(1)
    );
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("edge-ab.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    Ok(())
}

fn memory(args: &Args) -> anyhow::Result<()> {
    tools::build_native()?;
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

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}

//! `cargo xtask bench durability` (issue 17): what each way of keeping a like costs, measured
//! side by side on one machine through the real edge host and components. Five configurations
//! (single Redis with AOF everysec, the same with `appendfsync always`, a primary + replica with
//! `like_durability=replicated`, a 3+3 Redis Cluster in `memory` and in `replicated` mode) are
//! interleaved in every round, since the machine is shared; medians of throughput, latency,
//! failures and CPU µs per acknowledged like of every process are written to
//! target/bench/durability.json and printed as a Markdown table.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use dev_servers::Persistence;
use service_kit::procfs;

use super::bench::{SECRET, bench_bin, free_port, measure, median, start_edge};
use crate::acl::RedisUsers;
use crate::cluster::{self, RedisCluster};
use crate::proc::{self, Service};
use crate::tools::root;

/// Connections of every measurement: enough to keep the edge busy on two cores.
const CONNECTIONS: &str = "64";
/// The configurations, in the order of the first round (later rounds rotate it).
const CONFIGS: [&str; 5] = [
    "single, memory (AOF everysec)",
    "single, appendfsync always",
    "primary + replica, replicated",
    "cluster 3+3, memory",
    "cluster 3+3, replicated",
];

/// One configuration, running: its edge and the Redis processes it uses.
struct Setup {
    edge: Service,
    addr: String,
    primaries: Vec<u32>,
    replicas: Vec<u32>,
}

pub fn run(seconds: u64, rounds: u64) -> anyhow::Result<()> {
    // No build here: it takes the release binaries and components `cargo xtask build` made,
    // so a run on the shared machine does not rebuild what other work is changing.
    let base = root().join("target/bench/durability");
    // Nodes keep their cluster membership on disk: start from empty directories every run.
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;

    // 1 and 2: one Redis each, AOF on; the second fsyncs every write.
    let (single, single_port) = redis(&base, "single")?;
    let (always, always_port) = redis(&base, "always")?;
    cli(always_port, &["CONFIG", "SET", "appendfsync", "always"])?;
    // 3: a primary and its replica.
    let (primary, primary_port) = redis(&base, "primary")?;
    let (replica, replica_port) = redis(&base, "replica")?;
    cli(
        replica_port,
        &["REPLICAOF", "127.0.0.1", &primary_port.to_string()],
    )?;
    wait_replica(primary_port)?;
    for port in [single_port, always_port, primary_port] {
        measure(bench_bin().args(["seed", "--redis", &format!("redis://127.0.0.1:{port}")]))?;
    }
    // 4 and 5: a 3+3 cluster whose clients are the ACL roles, as in `up --cluster`.
    let users = RedisUsers::load_or_create(&base)?;
    let ports = cluster::free_ports(6)?;
    let cluster = RedisCluster::start(
        &ports,
        1,
        &base.join("cluster"),
        &users.acl_file(),
        users.operator_password(),
        Persistence::AofEverySec,
        &|| false,
    )?;
    let seed = cluster.seed();
    measure(bench_bin().args([
        "seed",
        "--cluster",
        "--redis",
        &format!("redis://default:{}@{seed}", users.operator_password()),
    ]))?;
    let cluster_port = cluster.ports[0];
    let (cluster_primaries, cluster_replicas) = cluster_pids(&cluster)?;

    let [(_, edge_user), (_, edge_password)] = users.edge_env();
    let cluster_creds = [
        ("redis_user", edge_user.as_str()),
        ("redis_password", edge_password.as_str()),
    ];
    let mut setups = Vec::new();
    let setup = |port: u16, vars: &[(&str, &str)], primaries: Vec<u32>, replicas: Vec<u32>| {
        let (edge, addr) = start_edge(port, vars)?;
        proc::wait_for_http(&addr, "/api/health", Duration::from_secs(300))?;
        anyhow::Ok(Setup {
            edge,
            addr,
            primaries,
            replicas,
        })
    };
    let memory = ("like_durability", "memory");
    let replicated = ("like_durability", "replicated");
    setups.push(setup(single_port, &[memory], vec![single.pid()], vec![])?);
    setups.push(setup(always_port, &[memory], vec![always.pid()], vec![])?);
    setups.push(setup(
        primary_port,
        &[replicated],
        vec![primary.pid()],
        vec![replica.pid()],
    )?);
    let mut vars = cluster_creds.to_vec();
    vars.push(memory);
    setups.push(setup(
        cluster_port,
        &vars,
        cluster_primaries.clone(),
        cluster_replicas.clone(),
    )?);
    vars.pop();
    vars.push(replicated);
    setups.push(setup(
        cluster_port,
        &vars,
        cluster_primaries,
        cluster_replicas,
    )?);

    let mut rows = Vec::new();
    for round in 0..rounds.max(1) {
        for k in 0..CONFIGS.len() {
            let i = (k + round as usize) % CONFIGS.len();
            let s = &setups[i];
            // Users no other measurement used, so every like changes state.
            let offset = 1_000_000 + round * 10_000_000 + i as u64 * 1_000_000;
            let pids: Vec<u32> = std::iter::once(s.edge.pid())
                .chain(s.primaries.iter().copied())
                .chain(s.replicas.iter().copied())
                .collect();
            let before = pids
                .iter()
                .map(|&p| procfs::cpu_time(p).unwrap_or_default())
                .collect::<Vec<_>>();
            let mut row = measure(
                bench_bin()
                    .args(["drive", "--addr", &s.addr, "--secret", SECRET])
                    .args(["--target", CONFIGS[i], "--connections", CONNECTIONS])
                    .args(["--seconds", &seconds.to_string(), "--threads", "1"])
                    .args(["--user-offset", &offset.to_string()])
                    .args(["--server-pid", &s.edge.pid().to_string()]),
            )?;
            let used: Vec<f64> = pids
                .iter()
                .zip(&before)
                .map(|(&p, b)| {
                    procfs::cpu_time(p)
                        .unwrap_or_default()
                        .saturating_sub(*b)
                        .as_secs_f64()
                })
                .collect();
            let likes = row["requests"].as_f64().unwrap_or(0.0).max(1.0);
            // CPU over the whole drive (its warm-up included) per acknowledged like.
            let per_like = |seconds: f64| seconds * 1e6 / likes;
            let np = s.primaries.len();
            row["edge_cpu_us_per_like"] = per_like(used[0]).into();
            row["primaries_cpu_us_per_like"] = per_like(used[1..=np].iter().sum()).into();
            // `+ 0.0`: an empty f64 sum is -0.0.
            row["replicas_cpu_us_per_like"] = (per_like(used[1 + np..].iter().sum()) + 0.0).into();
            row["round"] = round.into();
            row["config"] = CONFIGS[i].into();
            rows.push(row);
        }
    }
    drop(setups);
    drop((cluster, single, always, replica, primary));

    let summary = summarize(&rows);
    let out = root().join("target/bench");
    std::fs::write(
        out.join("durability.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "seconds": seconds,
            "rounds": rounds,
            "connections": CONNECTIONS,
            "median": summary,
            "measurements": rows,
        }))?,
    )?;
    print_table(&summary);
    Ok(())
}

/// A Redis with AOF everysec and no ACL under `base/name`, on a free port.
fn redis(base: &std::path::Path, name: &str) -> anyhow::Result<(Service, u16)> {
    let port = free_port()?;
    Ok((proc::redis(port, &base.join(name), true)?, port))
}

/// One `redis-cli` command against the ACL-free Redis on `port`.
fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .context("running redis-cli")?;
    anyhow::ensure!(out.status.success(), "redis-cli {args:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the primary on `port` has an online replica.
fn wait_replica(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        let info = cli(port, &["INFO", "replication"])?;
        if info.contains("state=online") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the replica of 127.0.0.1:{port} never came online")
}

/// The pids of the cluster's primaries and of its replicas, from each node's `ROLE`.
fn cluster_pids(cluster: &RedisCluster) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let (mut primaries, mut replicas) = (Vec::new(), Vec::new());
    for (svc, &port) in cluster.services.iter().zip(&cluster.ports) {
        let role = cluster.cli(port, &["ROLE"])?;
        if role.trim_start().starts_with("master") {
            primaries.push(svc.pid());
        } else {
            replicas.push(svc.pid());
        }
    }
    Ok((primaries, replicas))
}

/// The median of every figure per configuration, with the throughput ratio to the first.
fn summarize(rows: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let keys = [
        "rps",
        "p50_us",
        "p99_us",
        "errors",
        "edge_cpu_us_per_like",
        "primaries_cpu_us_per_like",
        "replicas_cpu_us_per_like",
        "client_cpu_us_per_req",
    ];
    let mut out: Vec<serde_json::Value> = CONFIGS
        .iter()
        .map(|c| {
            let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["config"] == *c).collect();
            let mut v = serde_json::json!({ "config": c });
            for k in keys {
                v[k] = median(mine.iter().filter_map(|r| r[k].as_f64()).collect()).into();
            }
            v
        })
        .collect();
    let reference = out[0]["rps"].as_f64().unwrap_or(f64::NAN);
    for v in &mut out {
        v["rps_ratio"] = (v["rps"].as_f64().unwrap_or(f64::NAN) / reference).into();
    }
    out
}

fn print_table(summary: &[serde_json::Value]) {
    println!(
        "| configuration | likes/s | × ref | p50 ms | p99 ms | non-2xx | edge µs/like | Redis primaries µs/like | replicas µs/like |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for v in summary {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            v["config"].as_str().unwrap_or(""),
            f("rps"),
            f("rps_ratio"),
            f("p50_us") / 1000.0,
            f("p99_us") / 1000.0,
            f("errors"),
            f("edge_cpu_us_per_like"),
            f("primaries_cpu_us_per_like"),
            f("replicas_cpu_us_per_like"),
        );
    }
}

//! The Redis ceiling as `redis-benchmark` measures it: the like script by `EVALSHA` from N
//! clients, one call in flight per client (no pipelining), a random new user per call on a seeded
//! post. This is how `shared/facts.md` measured its ceiling; the `redis` target, whose callers
//! share multiplexed connections and so pipeline, is the stricter one.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use likes_core::scripts::{self, LikeCall};
use likes_core::{PostId, UserId};

use service_kit::procfs::{children_cpu_time, cpu_time};

use crate::workload::{Report, Window, spent};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::workload::RedisTarget,
    /// Calls in the run.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
}

/// `redis-benchmark` replaces this in every call with a random number below `-r`.
const RANDOM: &str = "__rand_int__";
/// Users are drawn from this many ids, so nearly every call is a new like.
const USER_SPACE: u64 = 100_000_000;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = redis::Client::open(args.target.redis.as_str()).context("redis url")?;
    let info = client.get_connection_info();
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        other => bail!("redis-benchmark needs a TCP address, not {other:?}"),
    };
    let mut conn = client.get_multiplexed_async_connection().await?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::LIKE.source)
        .query_async(&mut conn)
        .await
        .context("SCRIPT LOAD")?;

    let call = LikeCall {
        post: PostId::new(1).context("post id")?,
        user: UserId::new(1).context("user id")?,
        on: true,
        ts: "2026-01-01T00:00:00.000Z".into(),
        require_post: true,
    };
    let keys = call.keys();
    let mut argv = call.args();
    argv[2] = RANDOM.to_owned();

    let (cpu0, client0) = (
        args.target.server_pid.and_then(cpu_time),
        children_cpu_time(std::process::id()),
    );
    let started = Instant::now();
    let out = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-c", &args.target.connections.to_string()])
        .args(["-n", &args.requests.to_string()])
        .args(["-r", &USER_SPACE.to_string(), "--csv"])
        .args(["EVALSHA", &sha, &keys.len().to_string()])
        .args(keys.iter())
        .args(argv.iter())
        .output()
        .context("running redis-benchmark (Debian package redis-tools)")?;
    let elapsed = started.elapsed();
    let (cpu1, client1) = (
        args.target.server_pid.and_then(cpu_time),
        children_cpu_time(std::process::id()),
    );
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let csv = String::from_utf8_lossy(&out.stdout);
    let row =
        parse_csv(&csv).with_context(|| format!("unexpected redis-benchmark output: {csv}"))?;

    let mut report = Report::from_rate(
        "redis-benchmark",
        args.target.connections,
        args.requests,
        row.rps,
        Window {
            elapsed,
            cpu: spent(cpu0, cpu1),
            // The client here is the redis-benchmark child, not this process.
            client_cpu: spent(client0, client1),
        },
    );
    report.p50_us = (row.p50_ms * 1000.0).round() as u64;
    report.p99_us = (row.p99_ms * 1000.0).round() as u64;
    report.p999_us = report.p99_us.max((row.max_ms * 1000.0).round() as u64);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The numbers of `redis-benchmark --csv`'s result line.
#[derive(Debug, PartialEq)]
struct Row {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Reads the header and the result line of `redis-benchmark --csv` by column name.
fn parse_csv(text: &str) -> Option<Row> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let cells = |l: &str| -> Vec<String> {
        l.split("\",\"")
            .map(|c| c.trim_matches('"').to_owned())
            .collect()
    };
    let header = cells(lines.next()?);
    let values = cells(lines.next()?);
    let get = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| h == name)?;
        values.get(i)?.parse().ok()
    };
    Some(Row {
        rps: get("rps")?,
        p50_ms: get("p50_latency_ms")?,
        p99_ms: get("p99_latency_ms")?,
        max_ms: get("max_latency_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_result_line_by_column_name() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVALSHA abc 5 k1 k2\",\"29850.75\",\"2.1\",\"0.2\",\"2.0\",\"3.1\",\"4.5\",\"9.9\"\n";
        assert_eq!(
            parse_csv(csv),
            Some(Row {
                rps: 29850.75,
                p50_ms: 2.0,
                p99_ms: 4.5,
                max_ms: 9.9
            })
        );
        assert_eq!(parse_csv("nothing useful"), None);
    }
}

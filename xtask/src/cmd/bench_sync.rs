//! `cargo xtask bench sync`: how fast the sync daemon drains a backlog of likes from Redis into
//! PostgreSQL, at several batch sizes, next to two references measured in the same run on the
//! same throw-away servers (PostgreSQL's raw bulk insert of the same rows, and reading the same
//! stream entries back from Redis), so the figures come as ratios.
//!
//! The measuring is `sync-daemon`'s `sync-bench` example; this starts the servers, runs it and
//! prints the table. Results: target/bench/sync.json and a Markdown table on stdout.

use std::process::Command;

use anyhow::{Context, bail};

use super::bench::free_port;
use crate::proc;
use crate::tools::{self, root};

/// Runs the benchmark with a backlog of `likes` likes.
pub fn run(likes: u64) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    let pg_bin = tools::ensure_postgres()?;
    tools::build_native()?;
    let (_redis, _, redis_port) = super::bench::start_redis()?;
    // Picked once Redis listens, so the two cannot be handed the same free port.
    let pg_port = free_port()?;
    let pg_dir = root().join(format!("target/bench/postgres-{pg_port}"));
    let postgres = proc::postgres(&pg_bin, pg_port, &pg_dir)?;
    let out = Command::new(root().join("target/release/examples/sync-bench"))
        .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .args([
            "--postgres",
            &format!("postgres://postgres@127.0.0.1:{pg_port}/likes"),
        ])
        .args(["--likes", &likes.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running sync-bench")?;
    drop(postgres);
    let _ = std::fs::remove_dir_all(&pg_dir);
    if !out.status.success() {
        bail!("sync-bench failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("sync-bench printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line).context("parsing sync-bench output")?;
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("sync.json"), serde_json::to_string_pretty(&v)?)?;
    print_table(&v);
    Ok(())
}

fn print_table(v: &serde_json::Value) {
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
    println!(
        "{} likes over {} posts (backlog written by like.lua at {:.0}/s)\n",
        v["likes"],
        v["posts"],
        f(&v["fill_likes_per_sec"])
    );
    println!("| what | batch | events/s | vs PostgreSQL bulk insert | vs Redis stream read |");
    println!("|---|---|---|---|---|");
    for r in v["runs"].as_array().into_iter().flatten() {
        println!(
            "| sync daemon | {} | {:.0} | {:.2}× | {:.2}× |",
            r["batch_max"],
            f(&r["events_per_sec"]),
            f(&r["vs_pg_insert"]),
            f(&r["vs_redis_read"])
        );
    }
    println!(
        "| reference: UNNEST insert of the same rows, 8000/statement | – | {:.0} | 1× | |",
        f(&v["pg_insert_rows_per_sec"])
    );
    println!(
        "| reference: XRANGE + decode of the same entries | – | {:.0} | | 1× |",
        f(&v["redis_read_per_sec"])
    );
    let s = &v["sustained"];
    println!(
        "\nsteady load: {:.0} likes/s (target {}) for {:.0} s, default batching: sync lag p50 {} ms, \
         p99 {} ms, max {} ms ({} samples); backlog gone {:.2} s after the load stopped",
        f(&s["achieved_rate"]),
        s["target_rate"],
        f(&s["seconds"]),
        s["lag_p50_ms"],
        s["lag_p99_ms"],
        s["lag_max_ms"],
        s["lag_samples"],
        f(&s["catch_up_after_stop_secs"])
    );
    println!(
        "rehydrate (FLUSHALL, then Redis rebuilt from PostgreSQL): {:.1} s for {} likes",
        f(&v["rehydrate_secs"]),
        v["likes"]
    );
}

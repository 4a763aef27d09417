//! `cargo xtask bench heavy`: does a CPU-heavy upload stall a light request on the same edge
//! (issue 19)? `GET /api/health` at a fixed rate (open loop), alone and while four clients
//! upload back to back a JPEG of a few hundred bytes that declares 7000×7000 pixels, in
//! alternating rounds of one run so both modes see the same shared machine.
//!
//! Results: target/bench/heavy.json and a Markdown table on stdout.

use anyhow::bail;

use super::bench::{bench_bin, measure, median, start_edge, start_redis};
use crate::tools::{self, root};

/// Concurrent heavy uploaders in the loaded mode, as in the report.
const UPLOADERS: usize = 4;
/// Health requests per second: light enough to change nothing, dense enough for a p99.
const HEALTH_RATE: u32 = 40;
/// A heavy upload that costs the edge less than this is not the workload of the report.
const HEAVY_MS: f64 = 500.0;

pub fn run(seconds: u64, rounds: u64) -> anyhow::Result<()> {
    tools::build_components(false)?;
    tools::build_native()?;
    let (_redis, _, redis_port) = start_redis()?;
    let (edge, addr) = start_edge(redis_port, &[])?;

    let heavy = |uploaders: usize, secs: u64, native: bool| {
        let mut cmd = bench_bin();
        cmd.args(["heavy", "--addr", &addr])
            .args(["--seconds", &secs.max(1).to_string()])
            .args(["--rate", &HEALTH_RATE.to_string()])
            .args(["--uploaders", &uploaders.to_string()]);
        if native {
            cmd.arg("--native");
        }
        measure(&mut cmd)
    };
    // Untimed: compiles nothing (the cache is warm) but fills the instance pool, and checks that
    // the JPEG really is heavy for this edge.
    let warmup = heavy(1, 3, true)?;
    let upload_ms = warmup["upload_p50_ms"].as_f64().unwrap_or(0.0);
    if upload_ms < HEAVY_MS {
        bail!(
            "the heavy JPEG took {upload_ms:.0} ms per upload (statuses {}), not the ≥ {HEAVY_MS} ms this benchmark is about",
            warmup["upload_statuses"]
        );
    }

    let mut rows = Vec::new();
    for round in 0..rounds.max(1) {
        for uploaders in [0, UPLOADERS] {
            let mut row = heavy(uploaders, seconds, false)?;
            row["round"] = round.into();
            rows.push(row);
        }
    }
    drop(edge);

    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("heavy.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "warmup": warmup, "rounds": rows }))?,
    )?;
    print_table(&warmup, &rows);
    Ok(())
}

fn print_table(warmup: &serde_json::Value, rows: &[serde_json::Value]) {
    let of = |uploaders: usize| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["uploaders"] == uploaders)
            .collect()
    };
    let med = |rs: &[&serde_json::Value], key: &str| {
        median(rs.iter().filter_map(|r| r[key].as_f64()).collect())
    };
    let sum = |rs: &[&serde_json::Value], key: &str| {
        rs.iter().filter_map(|r| r[key].as_u64()).sum::<u64>()
    };
    // Status counts over the rounds, `201×12 400×1`.
    let statuses = |rs: &[&serde_json::Value], key: &str| {
        let mut total = std::collections::BTreeMap::<String, u64>::new();
        for r in rs {
            if let Some(map) = r[key].as_object() {
                for (status, n) in map {
                    *total.entry(status.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
        let parts: Vec<String> = total.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        if parts.is_empty() {
            "–".to_owned()
        } else {
            parts.join(" ")
        }
    };
    println!(
        "heavy JPEG: {} bytes declaring {side}×{side}; natively {:.0} ms; through the edge alone {:.0} ms",
        warmup["jpeg_bytes"],
        warmup["native_ms"].as_f64().unwrap_or(f64::NAN),
        warmup["upload_p50_ms"].as_f64().unwrap_or(f64::NAN),
        side = warmup["jpeg_side"],
    );
    println!();
    println!(
        "| `/api/health` ({HEALTH_RATE}/s, open loop) | rounds | p50 ms | p99 ms | max ms | health statuses | health errors | uploads | upload p50 ms | upload max ms | upload statuses |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for uploaders in [0, UPLOADERS] {
        let rs = of(uploaders);
        let label = if uploaders == 0 {
            "alone".to_owned()
        } else {
            format!("with {uploaders} heavy uploaders")
        };
        let uploads = if uploaders == 0 {
            "– | – | – | –".to_owned()
        } else {
            format!(
                "{} | {:.0} | {:.0} | {}{}",
                sum(&rs, "uploads"),
                med(&rs, "upload_p50_ms"),
                med(&rs, "upload_max_ms"),
                statuses(&rs, "upload_statuses"),
                match sum(&rs, "upload_errors") {
                    0 => String::new(),
                    n => format!(", {n} unanswered"),
                }
            )
        };
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {uploads} |",
            rs.len(),
            med(&rs, "health_p50_ms"),
            med(&rs, "health_p99_ms"),
            med(&rs, "health_max_ms"),
            statuses(&rs, "health_statuses"),
            sum(&rs, "health_errors"),
        );
    }
    let (alone, loaded) = (of(0), of(UPLOADERS));
    // Each round's own ratio (the two modes measured back to back), then the median.
    let per_round = |key: &str| {
        median(
            loaded
                .iter()
                .filter_map(|b| {
                    let a = alone.iter().find(|a| a["round"] == b["round"])?;
                    Some(b[key].as_f64()? / a[key].as_f64()?)
                })
                .collect(),
        )
    };
    println!();
    println!(
        "health with / without heavy uploads (median of the rounds' ratios): p50 {:.1}×, p99 {:.1}×, max {:.1}×",
        per_round("health_p50_ms"),
        per_round("health_p99_ms"),
        per_round("health_max_ms"),
    );
}

//! `cargo xtask soak --minutes N`: a steady mixed load (likes, unlikes, uploads, sockets)
//! through a fresh copy of the whole system for N minutes, sampling every process's resident
//! memory once a minute (following a service's pid if it changes). PASS needs the load's
//! verdict to pass with no errors, no restart and no dropped socket; the memory slope of each
//! process after the warm-up is reported in MB per 10 minutes and flagged at 1 MB/10 min or
//! more (a leak shows as a slope, a cache as a step). Results: `target/soak/<stamp>/soak.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::tools::{self, root};

/// A slope at or above this (MB per 10 minutes, after the warm-up) is flagged as growth.
const FLAT_MB_PER_10_MIN: f64 = 1.0;
/// The generator's name in the samples.
const GENERATOR: &str = "likes-load";

#[derive(clap::Args)]
pub struct Args {
    /// Use the release binaries and components already built.
    #[arg(long)]
    no_build: bool,
    /// Steady load time in minutes.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Minutes excluded from the slopes (default: a third of the run, at most 5).
    #[arg(long)]
    warmup_minutes: Option<f64>,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
    /// Like/unlike arrivals per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    #[arg(long, default_value_t = 300)]
    sockets: u64,
    #[arg(long, default_value_t = 2_000)]
    users: u64,
    /// Posts uploaded before the load; with the uploads of the first minute they stay under
    /// the edge's 60 uploads a minute per address (a 429 would be an error here).
    #[arg(long, default_value_t = 40)]
    posts: u32,
    #[arg(long, default_value_t = 0.25)]
    uploads_per_sec: f64,
}

/// Resident memory of `pid` in MB (10^6 bytes), `None` when it is gone.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next())?
        .parse()
        .ok()?;
    Some(kib * 1024.0 / 1e6)
}

/// The least-squares slope of `y` over `x`, `None` with fewer than two distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in points {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// One process's memory over the run and its slope after the warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub name: String,
    /// (minutes since the load started, MB).
    pub samples: Vec<(f64, f64)>,
    pub first_mb: f64,
    pub last_mb: f64,
    pub peak_mb: f64,
    /// MB per 10 minutes over the samples at or after the warm-up.
    pub slope_mb_per_10_min: Option<f64>,
}

impl Trend {
    /// The trend of `samples`, its slope over those at or after `warmup_min`.
    pub fn of(name: &str, samples: Vec<(f64, f64)>, warmup_min: f64) -> Self {
        let after: Vec<(f64, f64)> = samples
            .iter()
            .copied()
            .filter(|(t, _)| *t >= warmup_min)
            .collect();
        Self {
            name: name.to_owned(),
            first_mb: samples.first().map_or(0.0, |s| s.1),
            last_mb: samples.last().map_or(0.0, |s| s.1),
            peak_mb: samples.iter().map(|s| s.1).fold(0.0, f64::max),
            slope_mb_per_10_min: slope(&after).map(|s| s * 10.0),
            samples,
        }
    }

    /// Grows by a megabyte or more per 10 minutes after the warm-up.
    pub fn grows(&self) -> bool {
        self.slope_mb_per_10_min
            .is_some_and(|s| s >= FLAT_MB_PER_10_MIN)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    if !args.no_build {
        tools::build_components(false)?;
        tools::build_native()?;
    }
    anyhow::ensure!(args.minutes > 0, "--minutes must be at least 1");
    let warmup = args
        .warmup_minutes
        .unwrap_or_else(|| (args.minutes as f64 / 3.0).min(5.0));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root().join("target/soak").join(stamp.to_string());
    let mut stack = Stack::start(&dir)?;
    let _ = ctrlc::set_handler(|| {});
    let report = dir.join("report");
    let mut cmd = stack.likes_load();
    cmd.args(["--users", &args.users.to_string()])
        .args(["--posts", &args.posts.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--duration", &format!("{}m", args.minutes)])
        .args(["--ramp", "5s"])
        .args(["--sockets", &args.sockets.to_string()])
        .args(["--subs-per-socket", "4"])
        .args(["--uploads-per-sec", &args.uploads_per_sec.to_string()])
        .args(["--unlike-ratio", "0.3"])
        .args(["--max-in-flight", "256"])
        .arg("--report")
        .arg(&report);
    eprintln!(
        "[soak] {} min at {}/s with {} sockets and {}/s uploads; RSS every {} s; data in {}",
        args.minutes,
        args.rate,
        args.sockets,
        args.uploads_per_sec,
        args.sample_secs,
        dir.display()
    );
    let mut child = cmd.spawn().context("starting likes-load")?;
    let sampled = sample(
        &mut stack,
        &mut child,
        Duration::from_secs(args.sample_secs.max(1)),
    );
    let status = child.wait().context("waiting for likes-load")?;
    let (samples, restarts) = sampled?;
    drop(stack);

    let trends: Vec<Trend> = samples
        .into_iter()
        .map(|(name, s)| Trend::of(&name, s, warmup))
        .collect();
    let r: Value = std::fs::read(report.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let errors: BTreeMap<String, u64> = r["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let dropped = r["sockets"]["dropped"].as_u64().unwrap_or(0);
    let verdict = r["verdict"]["status"]
        .as_str()
        .unwrap_or("missing")
        .to_owned();
    let passed = status.success()
        && verdict == "PASS"
        && errors.is_empty()
        && dropped == 0
        && restarts.is_empty();

    let mut text = String::new();
    let _ = writeln!(
        text,
        "\n## Soak: {} min, {}/s likes+unlikes, {} sockets, {}/s uploads (warm-up {warmup:.1} min)\n",
        args.minutes, args.rate, args.sockets, args.uploads_per_sec
    );
    let _ = writeln!(
        text,
        "| process | RSS at start MB | after warm-up MB | at end MB | peak MB | slope after warm-up MB/10 min | |\n|---|---|---|---|---|---|---|"
    );
    for t in &trends {
        let after = t
            .samples
            .iter()
            .find(|(m, _)| *m >= warmup)
            .map_or(t.first_mb, |s| s.1);
        let _ = writeln!(
            text,
            "| {} | {:.1} | {after:.1} | {:.1} | {:.1} | {} | {} |",
            t.name,
            t.first_mb,
            t.last_mb,
            t.peak_mb,
            t.slope_mb_per_10_min
                .map_or("—".into(), |s| format!("{s:+.2}")),
            if t.grows() { "**grows**" } else { "flat" }
        );
    }
    let _ = writeln!(
        text,
        "\nlikes-load: verdict {verdict}, {} requests scheduled, achieved {:.0}/s, errors {}, sockets {} subscribed / {dropped} dropped, {} uploads; restarts {restarts:?}",
        r["scheduled"].as_u64().unwrap_or(0),
        r["achieved_rate"].as_f64().unwrap_or(0.0),
        if errors.is_empty() {
            "none".to_owned()
        } else {
            format!("{errors:?}")
        },
        r["sockets"]["subscribed"].as_u64().unwrap_or(0),
        r["uploads"].as_u64().unwrap_or(0),
    );
    let _ = writeln!(text, "\nSOAK {}", if passed { "PASS" } else { "FAIL" });
    println!("{text}");
    let json = json!({
        "minutes": args.minutes, "rate": args.rate, "sockets": args.sockets,
        "uploads_per_sec": args.uploads_per_sec, "warmup_minutes": warmup,
        "sample_secs": args.sample_secs, "verdict": verdict, "errors": errors,
        "sockets_dropped": dropped, "restarts": restarts, "passed": passed,
        "processes": trends.iter().map(|t| json!({
            "name": t.name, "samples_min_mb": t.samples, "first_mb": t.first_mb,
            "last_mb": t.last_mb, "peak_mb": t.peak_mb,
            "slope_mb_per_10_min": t.slope_mb_per_10_min, "grows": t.grows(),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("soak.json"), serde_json::to_vec_pretty(&json)?)
        .context("writing soak.json")?;
    std::fs::write(dir.join("soak.md"), &text).context("writing soak.md")?;
    println!("soak results in {}", dir.display());
    anyhow::ensure!(
        passed,
        "the soak failed (verdict {verdict}, errors {errors:?}, dropped sockets {dropped}, restarts {restarts:?})"
    );
    Ok(())
}

/// Per process: (minutes since the start, MB) samples; and the services that restarted.
type Samples = (BTreeMap<String, Vec<(f64, f64)>>, Vec<String>);

/// Samples every service's and the generator's RSS every `every` until likes-load exits,
/// supervising the services (a restart is recorded: a soak must have none).
fn sample(stack: &mut Stack, child: &mut Child, every: Duration) -> anyhow::Result<Samples> {
    let start = Instant::now();
    let mut samples: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut pids: BTreeMap<String, u32> = stack
        .services
        .iter()
        .map(|s| (s.name.clone(), s.pid()))
        .collect();
    let mut restarts = Vec::new();
    let mut next = start;
    while child.try_wait()?.is_none() {
        for svc in &mut stack.services {
            svc.supervise()?;
            let was = pids.insert(svc.name.clone(), svc.pid());
            if was.is_some_and(|p| p != svc.pid()) {
                eprintln!("[soak] {} restarted (pid {})", svc.name, svc.pid());
                restarts.push(svc.name.clone());
            }
        }
        if Instant::now() >= next {
            let t = start.elapsed().as_secs_f64() / 60.0;
            let mut line = format!("[soak] t+{t:.1} min RSS MB:");
            let procs = pids
                .iter()
                .map(|(n, p)| (n.clone(), *p))
                .chain(std::iter::once((GENERATOR.to_owned(), child.id())));
            for (name, pid) in procs {
                if let Some(mb) = rss_mb(pid) {
                    samples.entry(name.clone()).or_default().push((t, mb));
                    let _ = write!(line, " {name} {mb:.1}");
                }
            }
            eprintln!("{line}");
            next += every;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((samples, restarts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_least_squares_in_mb_per_ten_minutes() {
        assert_eq!(slope(&[]), None);
        assert_eq!(slope(&[(1.0, 5.0)]), None);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 6.0)]), None);
        let line: Vec<(f64, f64)> = (0..10)
            .map(|m| (f64::from(m), 100.0 + 0.2 * f64::from(m)))
            .collect();
        let s = slope(&line).expect("a slope");
        assert!((s - 0.2).abs() < 1e-9, "{s}");
        // Noise around a flat line stays flat; the warm-up's climb is left out.
        let mut samples: Vec<(f64, f64)> = (0..5)
            .map(|m| (f64::from(m), 50.0 + 10.0 * f64::from(m)))
            .collect();
        samples
            .extend((5..30).map(|m| (f64::from(m), 100.0 + if m % 2 == 0 { 0.3 } else { -0.3 })));
        let t = Trend::of("edge-host", samples, 5.0);
        assert!(
            t.slope_mb_per_10_min.is_some_and(|s| s.abs() < 0.1),
            "{t:?}"
        );
        assert!(!t.grows());
        assert_eq!((t.first_mb, t.peak_mb), (50.0, 100.3));
        // 0.2 MB a minute is 2 MB per 10 minutes: growth.
        let t = Trend::of("hub", line, 0.0);
        assert!(t.grows());
        assert!((t.slope_mb_per_10_min.unwrap_or(0.0) - 2.0).abs() < 1e-9);
    }
}

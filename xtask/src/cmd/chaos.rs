//! `cargo xtask chaos`: a steady like/unlike/upload load with sockets through a fresh copy of
//! the whole system, while every service in turn is killed with SIGKILL — edge host, realtime
//! hub, sync daemon, Redis (AOF on), PostgreSQL — and restarted by the supervisor. `likes-load`
//! keeps a ledger of every request and answer; after the drain it audits the ledger against
//! Redis and PostgreSQL (per post: sent, acked, expected, Redis, PostgreSQL; acknowledged likes
//! lost, counted twice) and checks that every socket converged. Any of those failing, or a
//! service that does not come back, fails the command. Data and reports: `target/chaos/<stamp>/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::tools::{self, root};

/// The services a run kills, in order, by default.
const ALL_FAULTS: &str = "edge-host,realtime-hub,sync-daemon,redis,postgres";
/// The ramp before the steady part of the load.
const RAMP_SECS: u64 = 5;
/// No fault starts later than this before the load ends, so the last one has recovered.
const QUIET_END_SECS: u64 = 12;
/// Longest a killed service may take to serve again.
const BACK_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Use the release binaries and components already built.
    #[arg(long)]
    pub no_build: bool,
    /// Steady load time in seconds (after a 5 s ramp).
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// Seconds from one fault to the next (the next waits until the last one is back).
    #[arg(long, default_value_t = 20)]
    pub every: u64,
    /// Seconds of load before the first fault.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Services to kill, in turn (round robin while time remains).
    #[arg(long, value_delimiter = ',', default_value = ALL_FAULTS)]
    pub faults: Vec<String>,
    /// Like/unlike arrivals per second.
    #[arg(long, default_value_t = 300.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 300)]
    pub sockets: u64,
    #[arg(long, default_value_t = 2_000)]
    pub users: u64,
    /// Posts uploaded before the load (the edge allows 60 uploads a minute per address, so
    /// these and the uploads during the first minute stay under it).
    #[arg(long, default_value_t = 40)]
    pub posts: u32,
    #[arg(long, default_value_t = 0.3)]
    pub uploads_per_sec: f64,
}

impl Args {
    /// The short run `cargo xtask test` does: every fault once in about 90 s of load, on what
    /// the test has just built.
    pub fn short() -> Self {
        Self {
            no_build: true,
            seconds: 85,
            every: 14,
            warmup: 8,
            faults: ALL_FAULTS.split(',').map(str::to_owned).collect(),
            rate: 250.0,
            sockets: 200,
            users: 1_000,
            posts: 40,
            uploads_per_sec: 0.3,
        }
    }
}

/// One kill and its recovery, in Unix ms.
#[derive(Debug, Clone)]
struct Fault {
    service: String,
    pid_before: u32,
    killed_ms: u64,
    back_ms: Option<u64>,
    pid_after: u32,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How to tell that a service serves again.
struct Probe {
    addr: String,
    kind: ProbeKind,
}

enum ProbeKind {
    Tcp,
    /// `redis-cli -u URL ping` answers PONG (not LOADING while the AOF replays); the URL
    /// carries the stack's credentials.
    Redis(String),
    /// `pg_isready` (not "the database system is starting up" during recovery).
    Postgres(PathBuf, u16),
}

impl Probe {
    fn ready(&self) -> bool {
        if std::net::TcpStream::connect(&self.addr).is_err() {
            return false;
        }
        let quiet = |c: &mut Command| {
            c.stdout(Stdio::piped()).stderr(Stdio::null());
        };
        match &self.kind {
            ProbeKind::Tcp => true,
            ProbeKind::Redis(url) => {
                let mut c = Command::new("redis-cli");
                c.args(["-u", url, "--no-auth-warning", "ping"]);
                quiet(&mut c);
                c.output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
            }
            ProbeKind::Postgres(bin, port) => {
                let mut c = Command::new(bin.join("pg_isready"));
                c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]);
                quiet(&mut c);
                c.status().is_ok_and(|s| s.success())
            }
        }
    }
}

/// `host:port` at the end of a URL's authority (`redis://h:p`, `postgres://u@h:p/db`).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn probe_for(stack: &Stack, name: &str, pg_bin: &Path) -> anyhow::Result<Probe> {
    let addr = match name {
        "redis" => authority(&stack.redis_url),
        "postgres" => authority(&stack.database_url),
        "sync-daemon" => stack.sync_admin.clone(),
        "realtime-hub" => stack.hub.clone(),
        "edge-host" => stack.edge.clone(),
        other => bail!("unknown service `{other}` (known: {ALL_FAULTS})"),
    };
    let kind = match name {
        "redis" => ProbeKind::Redis(stack.redis_url.clone()),
        "postgres" => ProbeKind::Postgres(pg_bin.to_path_buf(), port_of(&addr)),
        _ => ProbeKind::Tcp,
    };
    Ok(Probe { addr, kind })
}

/// Restarts whatever died (the supervisor's backoff decides when).
fn supervise(stack: &mut Stack) -> anyhow::Result<()> {
    for svc in &mut stack.services {
        svc.supervise()?;
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    let pg_bin = tools::ensure_postgres()?;
    if !args.no_build {
        tools::build_components(false)?;
        tools::build_native()?;
    }
    anyhow::ensure!(args.every > 0, "--every must be at least 1");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root().join("target/chaos").join(stamp.to_string());
    let mut stack = Stack::start(&dir)?;
    let probes = args
        .faults
        .iter()
        .map(|f| probe_for(&stack, f, &pg_bin).map(|p| (f.clone(), p)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Ctrl-C reaches likes-load too (same process group), which ends the load early and still
    // judges; xtask waits for it and then stops the services. `cargo xtask test` may already
    // have installed a handler.
    let _ = ctrlc::set_handler(|| {});
    let ledger = dir.join("ledger.jsonl");
    let report = dir.join("report");
    let mut cmd = stack.likes_load();
    cmd.args(["--users", &args.users.to_string()])
        .args(["--posts", &args.posts.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--duration", &format!("{}s", args.seconds)])
        .args(["--ramp", &format!("{RAMP_SECS}s")])
        .args(["--sockets", &args.sockets.to_string()])
        .args(["--subs-per-socket", "4"])
        .args(["--uploads-per-sec", &args.uploads_per_sec.to_string()])
        .args(["--unlike-ratio", "0.3"])
        .args(["--max-in-flight", "256"])
        .args(["--drain-timeout", "180s", "--replay-timeout", "180s"])
        .arg("--ledger")
        .arg(&ledger)
        .arg("--report")
        .arg(&report);
    eprintln!(
        "[chaos] {} s of load at {}/s, {} sockets; killing {} every {} s; data in {}",
        args.seconds,
        args.rate,
        args.sockets,
        args.faults.join(", "),
        args.every,
        stack.dir.display()
    );
    let mut child = cmd.spawn().context("starting likes-load")?;
    let faults = drive_faults(&mut stack, &mut child, &args, &probes, &ledger);
    let status = child.wait().context("waiting for likes-load")?;
    let faults = faults?;
    drop(stack);

    let summary = summarise(&faults, &report.join("report.json"));
    std::fs::write(
        dir.join("chaos.json"),
        serde_json::to_vec_pretty(&summary.json)?,
    )
    .context("writing chaos.json")?;
    println!("{}", summary.text);
    println!("chaos results in {}", dir.display());
    let unrecovered: Vec<&str> = faults
        .iter()
        .filter(|f| f.back_ms.is_none())
        .map(|f| f.service.as_str())
        .collect();
    anyhow::ensure!(
        unrecovered.is_empty(),
        "services that did not come back: {unrecovered:?}"
    );
    anyhow::ensure!(
        faults.len() >= args.faults.len().min(1),
        "no fault was injected (the load ended first?)"
    );
    anyhow::ensure!(
        status.success(),
        "likes-load: {status} (the verdict, the audit or the sockets' convergence failed)"
    );
    anyhow::ensure!(summary.passed, "the chaos audit failed");
    println!("CHAOS PASS");
    Ok(())
}

/// While likes-load runs: waits for its load to start (the first ledger line), then kills the
/// services in turn, each once the previous one is back, supervising every service all along.
fn drive_faults(
    stack: &mut Stack,
    child: &mut Child,
    args: &Args,
    probes: &[(String, Probe)],
    ledger: &Path,
) -> anyhow::Result<Vec<Fault>> {
    let tick = Duration::from_millis(100);
    let setup_deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::metadata(ledger).map_or(true, |m| m.len() == 0) {
        if child.try_wait()?.is_some() {
            return Ok(Vec::new());
        }
        anyhow::ensure!(
            Instant::now() < setup_deadline,
            "likes-load did not start its load"
        );
        supervise(stack)?;
        std::thread::sleep(tick);
    }
    let t0 = Instant::now();
    let t0_ms = unix_ms();
    let last_start = Duration::from_secs((RAMP_SECS + args.seconds).saturating_sub(QUIET_END_SECS));
    let mut next = Duration::from_secs(args.warmup);
    let mut faults = Vec::new();
    let mut turn = 0usize;
    while child.try_wait()?.is_none() {
        supervise(stack)?;
        let now = t0.elapsed();
        if now >= next && now <= last_start && !probes.is_empty() {
            let (name, probe) = &probes[turn % probes.len()];
            turn += 1;
            let svc = stack
                .service(name)
                .with_context(|| format!("no service {name}"))?;
            let pid_before = svc.pid();
            svc.crash()?;
            let killed_ms = unix_ms();
            eprintln!(
                "[chaos] t+{:.1}s kill -9 {name} (pid {pid_before})",
                (killed_ms - t0_ms) as f64 / 1000.0
            );
            let mut fault = Fault {
                service: name.clone(),
                pid_before,
                killed_ms,
                back_ms: None,
                pid_after: 0,
            };
            // Wait until it is dead, restarted and serving again.
            let deadline = Instant::now() + BACK_TIMEOUT;
            std::thread::sleep(tick);
            while Instant::now() < deadline && child.try_wait()?.is_none() {
                supervise(stack)?;
                let svc = stack
                    .service(name)
                    .with_context(|| format!("no service {name}"))?;
                if svc.pid() != pid_before && svc.is_up() && probe.ready() {
                    fault.back_ms = Some(unix_ms());
                    fault.pid_after = svc.pid();
                    break;
                }
                std::thread::sleep(tick);
            }
            match fault.back_ms {
                Some(back) => eprintln!(
                    "[chaos] t+{:.1}s {name} back (pid {}) after {:.1} s",
                    (back - t0_ms) as f64 / 1000.0,
                    fault.pid_after,
                    (back - killed_ms) as f64 / 1000.0
                ),
                None => eprintln!("[chaos] {name} did not come back within {BACK_TIMEOUT:?}"),
            }
            let recovered = fault.back_ms.is_some();
            faults.push(fault);
            if !recovered {
                break;
            }
            next = (next + Duration::from_secs(args.every)).max(t0.elapsed() + tick);
        }
        std::thread::sleep(tick);
    }
    // Keep every service alive until likes-load is done judging.
    while child.try_wait()?.is_none() {
        supervise(stack)?;
        std::thread::sleep(tick);
    }
    Ok(faults)
}

/// The printed and saved result.
struct Summary {
    text: String,
    json: Value,
    passed: bool,
}

/// The faults and likes-load's audit, side by side; every lost or resurrected like is placed
/// relative to the nearest fault.
fn summarise(faults: &[Fault], report: &Path) -> Summary {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\n## Chaos faults\n\n| service | killed at (Unix ms) | pid | back after s | new pid |\n|---|---|---|---|---|"
    );
    for f in faults {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} |",
            f.service,
            f.killed_ms,
            f.pid_before,
            f.back_ms.map_or("never".into(), |b| format!(
                "{:.1}",
                (b - f.killed_ms) as f64 / 1000.0
            )),
            f.pid_after
        );
    }
    let fault_json: Vec<Value> = faults
        .iter()
        .map(|f| {
            json!({
                "service": f.service, "pid_before": f.pid_before, "killed_ms": f.killed_ms,
                "back_ms": f.back_ms, "pid_after": f.pid_after,
            })
        })
        .collect();
    let parsed: Option<Value> = std::fs::read(report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(r) = parsed else {
        let _ = writeln!(text, "\nno report at {}", report.display());
        return Summary {
            text,
            json: json!({ "faults": fault_json, "report": null }),
            passed: false,
        };
    };
    let audit = &r["audit"];
    let t = &audit["totals"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let sockets = &r["sockets"];
    let (conv, total) = (
        sockets["converged"].as_u64(),
        sockets["converge_total"].as_u64(),
    );
    let errors: u64 = r["errors"]
        .as_object()
        .map_or(0, |m| m.values().map(n).sum());
    let _ = writeln!(
        text,
        "\n## Chaos verdict\n\n| | value |\n|---|---|\n\
         | requests sent (likes+unlikes, replays included) | {} |\n\
         | acknowledged (2xx) | {} |\n\
         | failed during the outages (unacked, replayed at the end) | {errors} answers; {} pairs replayed, {} still failing |\n\
         | expected likes (ledger) / Redis / PostgreSQL count / PostgreSQL rows | {} / {} / {} / {} |\n\
         | acknowledged likes lost | {} |\n\
         | unlikes undone (resurrected likes) | {} |\n\
         | posts counted twice | {} |\n\
         | uncertain pairs left | {} |\n\
         | mismatching posts | {} |\n\
         | uploads sent / acked / in Redis / in PostgreSQL | {} / {} / {} / {} |\n\
         | sockets: dropped / reconnected | {} / {} |\n\
         | clients converged | {} / {} |",
        n(&t["sent"]),
        n(&t["acked"]),
        n(&r["replayed"]),
        n(&r["replay_failures"]),
        n(&t["expected"]),
        n(&t["redis"]),
        n(&t["pg_count"]),
        n(&t["pg_rows"]),
        n(&audit["lost"]),
        n(&audit["resurrected"]),
        n(&audit["counted_twice"]),
        n(&audit["uncertain_pairs"]),
        n(&audit["mismatched_posts"]),
        n(&audit["uploads"]["sent"]),
        n(&audit["uploads"]["acked"]),
        n(&audit["uploads"]["in_redis"]),
        n(&audit["uploads"]["in_pg"]),
        n(&sockets["dropped"]),
        n(&sockets["reconnected"]),
        conv.map_or("—".into(), |v| v.to_string()),
        total.map_or("—".into(), |v| v.to_string()),
    );
    let issues = audit["issues"].as_array().cloned().unwrap_or_default();
    for i in &issues {
        let at = i["last_acked_t_ms"].as_u64();
        let near = at.and_then(|at| {
            faults
                .iter()
                .min_by_key(|f| f.killed_ms.abs_diff(at))
                .map(|f| (f, at as i64 - f.killed_ms as i64))
        });
        let _ = writeln!(
            text,
            "- {} like u_{} on p_{}: last acked seq {} answered {}; in Redis {}, in PostgreSQL {}",
            i["kind"].as_str().unwrap_or("?"),
            n(&i["user"]),
            n(&i["post"]),
            i["last_acked_seq"]
                .as_u64()
                .map_or("none".into(), |s| s.to_string()),
            near.map_or("—".into(), |(f, d)| format!(
                "{:+.3} s from the kill of {}",
                d as f64 / 1000.0,
                f.service
            )),
            i["in_redis"],
            i["in_pg"],
        );
    }
    let passed = !audit.is_null()
        && n(&audit["lost"]) == 0
        && n(&audit["resurrected"]) == 0
        && n(&audit["counted_twice"]) == 0
        && n(&audit["uncertain_pairs"]) == 0
        && n(&audit["mismatched_posts"]) == 0
        && conv.is_some()
        && conv == total;
    Summary {
        text,
        json: json!({ "faults": fault_json, "audit": audit, "sockets": sockets, "passed": passed }),
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_out_of_service_urls() {
        assert_eq!(authority("redis://127.0.0.1:6390"), "127.0.0.1:6390");
        assert_eq!(
            authority("postgres://postgres@127.0.0.1:5499/likes"),
            "127.0.0.1:5499"
        );
        assert_eq!(port_of("127.0.0.1:5499"), 5_499);
    }
}

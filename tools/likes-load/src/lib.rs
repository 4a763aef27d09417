//! `likes-load`: puts the whole likes system under load the way users would — virtual users
//! over HTTP/1.1 keep-alive against the edge, Socket.IO connections on the realtime hub — and
//! ends with a verdict: the likes the generator knows it left, Redis's counts and PostgreSQL's
//! (after the sync daemon drains) must agree exactly.
//!
//! [`run`] is the whole run as a library, reporting progress to a [`ProgressSink`] so that a
//! control endpoint can stream it; the `likes-load` binary is a thin command line around it.

pub mod audit;
pub mod charts;
pub mod cli;
pub mod config;
pub mod drive;
pub mod edge;
pub mod ledger;
pub mod observe;
mod output;
pub mod pick;
pub mod progress;
pub mod reads;
pub mod report;
pub mod setup;
pub mod sockets;
pub mod stats;
pub mod verdict;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use likes_core::PostId;
use tokio::sync::watch;

pub use config::{Config, Popularity, Preset};
pub use progress::{NoProgress, Phase, ProgressEvent, ProgressSink};
pub use report::Report;
pub use verdict::{Status, Verdict};

use crate::observe::{LagProbe, Machine};
use crate::report::{SecondRow, SocketsReport};
use crate::sockets::{Delivery, Sockets};
use crate::stats::Latency;

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("setup failed: {0:#}")]
    Setup(anyhow::Error),
    #[error("the verdict could not be computed: {0:#}")]
    Verdict(anyhow::Error),
}

/// Delivery histogram buckets in the report.
const DELIVERY_BUCKETS: usize = 50;

/// Runs a whole scenario: setup, sockets, load, replay of unknown outcomes, drain wait and
/// verdict, then (with a ledger) the audit and (with sockets) the clients' convergence. `stop`
/// ends the load phase early (the verdict still runs).
pub async fn run(
    config: Config,
    progress: Arc<dyn ProgressSink>,
    stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    config.validate().map_err(LoadError::Config)?;
    let started_at = likes_core::time::rfc3339_ms(setup::unix_now().1);
    let loadavg_start = observe::loadavg();
    let phase = |phase| progress.event(ProgressEvent::Phase { phase });
    let edge = edge::Edge::new(&config.edge, config.max_in_flight)
        .map_err(|e| LoadError::Config(format!("{e:#}")))?;
    let redis = service_kit::redis::Redis::open(config.redis.as_str())
        .map_err(|e| LoadError::Config(format!("--redis: {e}")))?;

    phase(Phase::Users);
    let (users, users_via, users_secs) = setup::users(
        &edge,
        &redis,
        config.users,
        config.token_secret.as_deref(),
        progress.as_ref(),
    )
    .await
    .map_err(LoadError::Setup)?;
    phase(Phase::Posts);
    let (posts, posts_via, posts_secs) =
        setup::posts(&edge, &redis, &users, config.posts, progress.as_ref())
            .await
            .map_err(LoadError::Setup)?;
    let setup_info = setup::SetupInfo {
        users_via,
        users_secs,
        posts_via,
        posts_secs,
    };
    let posts = Arc::new(posts);
    let delivery = Arc::new(Delivery::new(&posts));

    let mut sockets_report = SocketsReport {
        asked: if config.hub.is_some() {
            config.sockets
        } else {
            0
        },
        ..SocketsReport::default()
    };
    let sockets = match (&config.hub, config.sockets) {
        (Some(hub), n) if n > 0 => {
            phase(Phase::Sockets);
            let limit = raise_fd_limit(n * 2 + 4 * config.max_in_flight as u64 + 1_024);
            if limit < n + config.max_in_flight as u64 + 256 {
                progress.event(ProgressEvent::Note {
                    message: format!(
                        "the open-file limit is {limit} and cannot be raised here: {n} sockets will not all fit"
                    ),
                });
            }
            let t = Instant::now();
            let per = config.subs_per_socket as u64;
            let all = posts.clone();
            let s = Sockets::open(
                hub,
                n,
                move |i| {
                    (0..per)
                        .map(|j| all[((i * per + j) % all.len() as u64) as usize])
                        .collect()
                },
                delivery.clone(),
                Duration::from_secs(60) + Duration::from_millis(n * 5),
            )
            .await
            .map_err(LoadError::Setup)?;
            sockets_report.connect_secs = t.elapsed().as_secs_f64();
            if s.subscribed() < n {
                progress.event(ProgressEvent::Note {
                    message: format!(
                        "{} of {n} sockets subscribed ({} failed): this box holds that many",
                        s.subscribed(),
                        s.fleet.failed.load(Ordering::Relaxed)
                    ),
                });
            }
            Some(s)
        }
        _ => None,
    };

    let ledger = match &config.ledger {
        Some(path) => {
            let (l, w) = ledger::Ledger::create(path).map_err(LoadError::Setup)?;
            Some((Arc::new(l), w))
        }
        None => None,
    };

    phase(Phase::Load);
    let lag_probe = config
        .sync_metrics
        .as_deref()
        .map(LagProbe::new)
        .transpose()
        .map_err(|e| LoadError::Config(format!("--sync-metrics: {e:#}")))?
        .map(Arc::new);
    let users = Arc::new(users);
    let result = drive::load(
        &config,
        edge,
        users,
        posts.clone(),
        delivery.clone(),
        drive::Observers {
            lag: lag_probe,
            fleet: sockets.as_ref().map(|s| s.fleet.clone()),
            ledger: ledger.as_ref().map(|(l, _)| l.clone()),
        },
        progress.clone(),
        stop,
    )
    .await;

    // The last counts reach the sockets within a coalescing window or two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(s) = &sockets {
        sockets_report.subscribed = s.fleet.ever.load(Ordering::Relaxed);
        sockets_report.failed = s.fleet.failed.load(Ordering::Relaxed);
        sockets_report.dropped = s.fleet.dropped.load(Ordering::Relaxed);
        sockets_report.reconnected = s.fleet.reconnected.load(Ordering::Relaxed);
        sockets_report.first_errors = stats::lock(&s.errors).clone();
    }
    let ledger_path = match ledger {
        Some((l, writer)) => {
            l.close();
            let path = l.path().to_path_buf();
            drop(l);
            let lines = writer.finish().map_err(LoadError::Verdict)?;
            progress.event(ProgressEvent::Note {
                message: format!("ledger: {lines} lines in {}", path.display()),
            });
            Some(path)
        }
        None => None,
    };
    let (dh, frames, unmatched) = delivery.finish();
    sockets_report.frames = frames;
    sockets_report.unmatched = unmatched;
    sockets_report.delivery = Latency::of(&dh);
    sockets_report.delivery_buckets = buckets(&dh);

    phase(Phase::Drain);
    let expected: Vec<(PostId, u64)> = posts
        .iter()
        .copied()
        .zip(result.expected.iter().copied())
        .collect();
    let verdict = verdict::check(
        &redis,
        config.database_url.as_deref(),
        &expected,
        config.drain_timeout,
        progress.as_ref(),
    )
    .await
    .map_err(LoadError::Verdict)?;

    let audit = match (&ledger_path, config.database_url.as_deref()) {
        (Some(path), Some(url)) => {
            let entries = ledger::read(path).map_err(LoadError::Verdict)?;
            let raw: Vec<u64> = posts.iter().map(|p| p.get()).collect();
            let uploads = audit::uploaded_posts(&entries);
            let observed = audit::observe(&redis, url, &raw, &uploads)
                .await
                .map_err(LoadError::Verdict)?;
            Some(audit::audit(&entries, &raw, &observed))
        }
        _ => None,
    };

    // Every socket must end knowing Redis's final count of each post it follows: the last
    // updates (and resyncs after a hub restart) may still be on their way.
    if let Some(s) = sockets {
        let started = Instant::now();
        loop {
            let counts = verdict::redis_counts(&redis, &posts)
                .await
                .map_err(LoadError::Verdict)?;
            let truth = posts
                .iter()
                .copied()
                .zip(counts.into_iter().map(Option::unwrap_or_default))
                .collect();
            let (ok, total, stale) = s.converged(&truth);
            sockets_report.converged = Some(ok);
            sockets_report.converge_total = Some(total);
            sockets_report.stale = stale;
            if ok == total || started.elapsed() >= CONVERGE_TIMEOUT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sockets_report.converge_secs = started.elapsed().as_secs_f64();
        s.close().await;
    }

    phase(Phase::Report);
    let mut machine = Machine::detect();
    machine.loadavg_start = loadavg_start;
    Ok(assemble(
        machine,
        config,
        started_at,
        setup_info,
        result,
        sockets_report,
        expected,
        verdict,
        audit,
    ))
}

/// How long the end of a run waits for every socket to know the final counts.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);

#[allow(clippy::too_many_arguments)]
fn assemble(
    machine: Machine,
    config: Config,
    started_at: String,
    setup: setup::SetupInfo,
    result: drive::LoadResult,
    sockets: SocketsReport,
    expected: Vec<(PostId, u64)>,
    verdict: Verdict,
    audit: Option<audit::Audit>,
) -> Report {
    let recorded = result.recorder.finish();
    let mut likes = stats::histogram();
    let mut endpoints = std::collections::BTreeMap::new();
    for (e, h) in &recorded.endpoints {
        if *e != stats::Endpoint::Upload {
            let _ = likes.add(h);
        }
        endpoints.insert(e.name().to_owned(), Latency::of(h));
    }
    let timeline: Vec<SecondRow> = recorded
        .seconds
        .iter()
        .enumerate()
        .map(|(t, s)| SecondRow {
            t_s: t as u64,
            target_rate: config.rate_at(Duration::from_secs(t as u64) + Duration::from_millis(500)),
            scheduled: s.scheduled,
            ok: s.ok,
            errors: s.errors,
            p50_ms: s.p50_ms(),
            p99_ms: s.p99_ms(),
        })
        .collect();
    // Achieved rate over the steady part: 2xx answers to arrivals scheduled after the ramp.
    let ramp = config.ramp.as_secs() as usize;
    let steady: Vec<&SecondRow> = timeline
        .iter()
        .skip(ramp)
        .filter(|s| s.scheduled > 0)
        .collect();
    let achieved_rate = if steady.is_empty() {
        0.0
    } else {
        steady.iter().map(|s| s.ok as f64).sum::<f64>() / steady.len() as f64
    };
    let lag_max = |f: fn(&observe::LagSample) -> f64| {
        (!result.lag.is_empty()).then(|| result.lag.iter().map(f).fold(0.0, f64::max))
    };
    Report {
        started_at,
        machine,
        target_rate: config.rate,
        setup,
        load_secs: result.load_secs,
        scheduled: result.scheduled,
        achieved_rate,
        dropped: result.dropped,
        replayed: result.replayed,
        replay_failures: result.replay_failures,
        uploads: result.uploads,
        endpoints,
        likes: Latency::of(&likes),
        errors: recorded.errors,
        sockets,
        sync_lag_max_s: lag_max(|s| s.lag_s),
        sync_lag_max_entries: lag_max(|s| s.entries),
        sync_lag: result.lag,
        memory: result.memory,
        timeline,
        expected,
        verdict,
        audit,
        config,
    }
}

/// Equal-width buckets up to the 99.9th percentile (the rest lands in the last one).
fn buckets(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let top = h.value_at_quantile(0.999).max(1) as f64 / 1000.0;
    let width = top / DELIVERY_BUCKETS as f64;
    let mut out: Vec<(f64, u64)> = (1..=DELIVERY_BUCKETS)
        .map(|i| (width * i as f64, 0))
        .collect();
    for v in h.iter_recorded() {
        let ms = v.value_iterated_to() as f64 / 1000.0;
        let i = ((ms / width) as usize).min(DELIVERY_BUCKETS - 1);
        out[i].1 += v.count_at_value();
    }
    out
}

/// Raises the open-file limit (soft up to hard, and hard too when allowed) so thousands of
/// sockets fit in one process; returns the soft limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(want.max(soft)), hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s)
}

/// Reads a report back (e.g. to re-judge it).
pub fn read_report(path: &std::path::Path) -> anyhow::Result<Report> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).context("parsing the report")
}

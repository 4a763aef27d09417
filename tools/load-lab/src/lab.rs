//! The lab itself: at most one load run at a time, its live state for pages that connect
//! late, and the task that runs [`likes_load::run`] and broadcasts its progress and verdict.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lab_protocol::{
    self as lab, Done, ErrorBody, LabState, Outcome, Phase, Progress, RunInfo, StartRequest,
    Summary, Tick,
};
use likes_load::{LoadError, Popularity, Preset, Report};
use serde::de::DeserializeOwned;
use socketioxide::SocketIo;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, Limits, TICKS_KEPT};

/// Setup and drain events come as fast as users are made; pages need a few a second.
const SETUP_EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Why the lab refused a request; sent back as `{"error":{"title","detail"}}`.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("this server was started without --enable-lab; no load runs are allowed here")]
    Disabled,
    #[error("a run is already in progress; stop it or wait for its verdict")]
    Busy,
    #[error("no run is in progress")]
    Idle,
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{value} {} is more than this lab allows ({max}); start it with a larger {}",
        cap.unit(),
        cap.flag()
    )]
    OverCap {
        cap: Cap,
        value: String,
        max: String,
    },
}

/// Which of the lab's [`Limits`] a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Users,
    Posts,
    Rate,
    Sockets,
    Duration,
}

impl Cap {
    fn unit(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Posts => "posts",
            Self::Rate => "requests per second",
            Self::Sockets => "sockets",
            Self::Duration => "seconds of load (ramp_secs + duration_secs)",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Users => "--max-users",
            Self::Posts => "--max-posts",
            Self::Rate => "--max-rate",
            Self::Sockets => "--max-sockets",
            Self::Duration => "--max-duration-secs",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Users => "Too many users",
            Self::Posts => "Too many posts",
            Self::Rate => "Rate too high",
            Self::Sockets => "Too many sockets",
            Self::Duration => "Run too long",
        }
    }
}

impl LabError {
    fn title(&self) -> &'static str {
        match self {
            Self::Disabled => "Lab disabled",
            Self::Busy => "Run in progress",
            Self::Idle => "Nothing to stop",
            Self::Invalid(_) => "Invalid settings",
            Self::OverCap { cap, .. } => cap.title(),
        }
    }

    /// The error as the ack body carries it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            title: self.title().to_owned(),
            detail: self.to_string(),
        }
    }
}

/// A float as an error message shows it: `1e300`, not three hundred zeros.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Figure(f64);

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.abs() >= 1e9 {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Refuses `value` when it is above the cap's `max`.
fn over<T: PartialOrd + ToString>(cap: Cap, value: T, max: T) -> Result<(), LabError> {
    if value > max {
        return Err(LabError::OverCap {
            cap,
            value: value.to_string(),
            max: max.to_string(),
        });
    }
    Ok(())
}

/// Parses a wire name (`10k`, `zipf`) with the generator's own serde names.
fn by_name<T: DeserializeOwned>(name: &str, what: &str, choices: &str) -> Result<T, LabError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| LabError::Invalid(format!("unknown {what} {name:?}; use {choices}")))
}

/// A request's seconds: finite and 0 or more, and no more than the lab's longest load phase
/// (checked before converting, so `1e300` is "too long", not "not a number").
fn secs(value: f64, what: &str, max: Duration) -> Result<Duration, LabError> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(LabError::Invalid(format!(
            "{what} must be a number of seconds, 0 or more"
        )));
    }
    over(Cap::Duration, Figure(value), Figure(max.as_secs_f64()))?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| LabError::Invalid(format!("{what} must be a number of seconds, 0 or more")))
}

/// The run a request asks for: the lab's target, then the preset, then explicit settings;
/// refused when it is malformed or larger than `limits` (nothing starts then).
pub fn plan(
    target: &likes_load::Config,
    req: &StartRequest,
    limits: &Limits,
) -> Result<likes_load::Config, LabError> {
    let mut c = target.clone();
    if let Some(p) = &req.preset {
        c.apply_preset(by_name::<Preset>(p, "preset", "10k, 100k or 1m")?);
    }
    if let Some(v) = req.users {
        c.users = v;
    }
    if let Some(v) = req.posts {
        c.posts = v;
    }
    if let Some(v) = req.rate {
        c.rate = v;
    }
    if let Some(v) = req.sockets {
        c.sockets = v;
    }
    if let Some(v) = req.duration_secs {
        c.duration = secs(v, "duration_secs", limits.max_duration)?;
    }
    if let Some(v) = req.ramp_secs {
        c.ramp = secs(v, "ramp_secs", limits.max_duration)?;
    }
    if let Some(p) = &req.popularity {
        c.popularity = by_name::<Popularity>(p, "popularity", "uniform, zipf or viral")?;
    }
    c.validate().map_err(LabError::Invalid)?;
    over(Cap::Users, c.users, limits.max_users)?;
    over(Cap::Posts, c.posts, limits.max_posts)?;
    over(Cap::Rate, Figure(c.rate), Figure(limits.max_rate))?;
    // Checked as asked, before a lab without a hub drops the sockets.
    over(Cap::Sockets, c.sockets, limits.max_sockets)?;
    // Each part is at most the cap, so the sum cannot overflow a `Duration`.
    over(
        Cap::Duration,
        Figure(c.ramp.as_secs_f64() + c.duration.as_secs_f64()),
        Figure(limits.max_duration.as_secs_f64()),
    )?;
    if c.hub.is_none() {
        c.sockets = 0;
    }
    if c.load_time().is_zero() {
        return Err(LabError::Invalid(
            "duration_secs must be more than 0".into(),
        ));
    }
    Ok(c)
}

/// What a page shows of a run's settings.
pub fn run_info(c: &likes_load::Config) -> RunInfo {
    RunInfo {
        users: c.users,
        posts: c.posts,
        sockets: c.sockets,
        rate: c.rate,
        ramp_secs: c.ramp.as_secs_f64(),
        duration_secs: c.duration.as_secs_f64(),
        popularity: serde_json::to_value(c.popularity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// The verdict and headline figures of a finished run.
pub fn summary_of(report: &Report) -> (Outcome, Summary) {
    let v = &report.verdict;
    let outcome = match v.status {
        likes_load::Status::Pass => Outcome::Pass,
        likes_load::Status::Fail => Outcome::Fail,
    };
    let summary = Summary {
        posts: v.posts,
        expected_total: v.expected_total,
        redis_total: v.redis_total,
        pg_total: v.pg_total,
        mismatch_count: v.mismatch_count,
        note: v.note.clone(),
        scheduled: report.scheduled,
        target_rate: report.target_rate,
        achieved_rate: report.achieved_rate,
        p50_ms: report.likes.p50_ms,
        p99_ms: report.likes.p99_ms,
        errors: report.errors.values().sum(),
        delivery_p99_ms: report.sockets.delivery.p99_ms,
        sync_lag_max_s: report.sync_lag_max_s,
        markdown: report.markdown(&[]),
    };
    (outcome, summary)
}

fn done_of(result: Result<Result<Report, LoadError>, tokio::task::JoinError>) -> Done {
    let failed = |title: &str, detail: String| Done {
        outcome: Outcome::Error,
        error: Some(ErrorBody {
            title: title.to_owned(),
            detail,
        }),
        summary: None,
    };
    match result {
        Ok(Ok(report)) => {
            let (outcome, summary) = summary_of(&report);
            Done {
                outcome,
                error: None,
                summary: Some(summary),
            }
        }
        Ok(Err(e)) => failed("The run failed", e.to_string()),
        Err(e) => failed("The run crashed", e.to_string()),
    }
}

#[derive(Default)]
struct Inner {
    /// Set while a run is going: sending `true` ends its load phase.
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    run: Option<RunInfo>,
    phase: Option<Phase>,
    ticks: VecDeque<Tick>,
    last: Option<Done>,
}

/// The lab's shared state, one per server.
pub struct Lab {
    config: Config,
    inner: Mutex<Inner>,
}

impl Lab {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            inner: Mutex::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A panicked holder leaves state still worth showing.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a page that connects now needs.
    pub fn state(&self) -> LabState {
        let inner = self.lock();
        LabState {
            enabled: self.config.enabled,
            running: inner.stop.is_some(),
            run: inner.run.clone(),
            phase: inner.phase,
            ticks: inner.ticks.iter().cloned().collect(),
            last: inner.last.clone(),
            max_users: self.config.limits.max_users,
        }
    }

    /// Starts the run `req` asks for, unless one is going; progress goes to every socket of
    /// `io`.
    pub fn start(self: &Arc<Self>, io: SocketIo, req: &StartRequest) -> Result<RunInfo, LabError> {
        if !self.config.enabled {
            return Err(LabError::Disabled);
        }
        let config = plan(&self.config.target, req, &self.config.limits)?;
        let info = run_info(&config);
        let mut inner = self.lock();
        if inner.stop.is_some() {
            return Err(LabError::Busy);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        inner.stop = Some(stop_tx);
        inner.run = Some(info.clone());
        inner.phase = None;
        inner.ticks.clear();
        tracing::info!(?info, "load run starting");
        inner.task = Some(tokio::spawn(Arc::clone(self).drive(io, config, stop_rx)));
        Ok(info)
    }

    /// Ends the running load phase; the verdict follows as usual.
    pub fn stop(&self) -> Result<(), LabError> {
        if !self.config.enabled {
            return Err(LabError::Disabled);
        }
        match &self.lock().stop {
            Some(stop) => {
                tracing::info!("load run stop requested");
                let _ = stop.send(true);
                Ok(())
            }
            None => Err(LabError::Idle),
        }
    }

    /// Stops a running run and waits up to the grace period for its verdict.
    pub async fn shutdown(&self) {
        let task = {
            let mut inner = self.lock();
            if let Some(stop) = &inner.stop {
                let _ = stop.send(true);
            }
            inner.task.take()
        };
        if let Some(mut task) = task {
            let grace = self.config.shutdown_grace;
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                tracing::warn!(?grace, "the run did not finish within the grace period");
                task.abort();
            }
        }
    }

    /// Runs the generator in its own task (a panic there becomes an error verdict, not a
    /// lab stuck "running"), forwarding its progress as it comes.
    async fn drive(
        self: Arc<Self>,
        io: SocketIo,
        config: likes_load::Config,
        stop: watch::Receiver<bool>,
    ) {
        let _ = io.emit(lab::STATE, &self.state()).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
        let mut run = AbortOnDrop(tokio::spawn(likes_load::run(config, Arc::new(tx), stop)));
        let mut throttle = Throttle::default();
        let result = loop {
            tokio::select! {
                biased;
                Some(event) = rx.recv() => self.forward(&io, &mut throttle, &event).await,
                result = &mut run.0 => break result,
            }
        };
        while let Ok(event) = rx.try_recv() {
            self.forward(&io, &mut throttle, &event).await;
        }
        let done = done_of(result);
        tracing::info!(outcome = ?done.outcome, "load run done");
        {
            let mut inner = self.lock();
            inner.stop = None;
            inner.phase = None;
            inner.last = Some(done.clone());
        }
        if let Err(e) = io.emit(lab::DONE, &done).await {
            tracing::warn!(error = %e, "lab:done not broadcast");
        }
    }

    /// Records a progress event in the state and broadcasts it, as the generator made it.
    async fn forward(&self, io: &SocketIo, throttle: &mut Throttle, progress: &Progress) {
        {
            let mut inner = self.lock();
            match progress {
                Progress::Phase { phase } => inner.phase = Some(*phase),
                Progress::Tick(tick) => {
                    if inner.ticks.len() == TICKS_KEPT {
                        inner.ticks.pop_front();
                    }
                    inner.ticks.push_back(tick.clone());
                }
                _ => {}
            }
        }
        if !throttle.admit(progress) {
            return;
        }
        if let Err(e) = io.emit(lab::PROGRESS, progress).await {
            tracing::debug!(error = %e, "lab:progress not broadcast");
        }
    }
}

/// Ends the generator's task when the task driving it is aborted (a shutdown past its grace
/// period), instead of leaving it running detached.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lets through every event except setup and drain counts, which pass a few times a second
/// (and always when complete).
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn admit(&mut self, p: &Progress) -> bool {
        let complete = match p {
            Progress::Setup { done, total, .. } => done >= total,
            Progress::Drain { matching, total } => matching >= total,
            Progress::Other => return false,
            _ => return true,
        };
        let now = Instant::now();
        if complete || self.last.is_none_or(|t| now - t >= SETUP_EVENT_INTERVAL) {
            self.last = Some(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> likes_load::Config {
        likes_load::Config {
            hub: None,
            ..likes_load::Config::default()
        }
    }

    #[test]
    fn a_request_applies_the_preset_then_its_settings() {
        let req = StartRequest {
            preset: Some("100k".into()),
            rate: Some(50.0),
            duration_secs: Some(3.0),
            popularity: Some("viral".into()),
            ..StartRequest::default()
        };
        let c = plan(&target(), &req, &Limits::default()).expect("valid");
        assert_eq!((c.users, c.rate), (100_000, 50.0));
        assert_eq!(c.duration, Duration::from_secs(3));
        assert_eq!(c.popularity, Popularity::Viral);
        // No hub configured: no sockets, whatever the preset says.
        assert_eq!(c.sockets, 0);
        let info = run_info(&c);
        assert_eq!((info.users, info.popularity.as_str()), (100_000, "viral"));
    }

    #[test]
    fn bad_or_too_big_requests_are_refused_with_a_reason() {
        let cases = [
            (
                StartRequest {
                    preset: Some("10m".into()),
                    ..StartRequest::default()
                },
                "Invalid settings",
            ),
            (
                StartRequest {
                    rate: Some(-1.0),
                    ..StartRequest::default()
                },
                "Invalid settings",
            ),
            (
                StartRequest {
                    duration_secs: Some(f64::NAN),
                    ..StartRequest::default()
                },
                "Invalid settings",
            ),
            (
                StartRequest {
                    duration_secs: Some(0.0),
                    ramp_secs: Some(0.0),
                    ..StartRequest::default()
                },
                "Invalid settings",
            ),
            (
                StartRequest {
                    preset: Some("1m".into()),
                    ..StartRequest::default()
                },
                "Too many users",
            ),
        ];
        let limits = Limits {
            max_users: 200_000,
            ..Limits::default()
        };
        for (req, title) in cases {
            let err = plan(&target(), &req, &limits).expect_err("refused");
            let body = err.body();
            assert_eq!(body.title, title, "{req:?}");
            assert!(!body.detail.is_empty());
        }
    }

    fn small_limits() -> Limits {
        Limits {
            max_users: 1_000,
            max_posts: 50,
            max_rate: 100.0,
            max_sockets: 10,
            max_duration: Duration::from_secs(60),
        }
    }

    /// A request within [`small_limits`]; each case below changes one setting.
    fn within() -> StartRequest {
        StartRequest {
            users: Some(1_000),
            posts: Some(50),
            rate: Some(100.0),
            sockets: Some(10),
            duration_secs: Some(50.0),
            ramp_secs: Some(10.0),
            ..StartRequest::default()
        }
    }

    #[test]
    fn a_request_at_every_cap_is_allowed() {
        let c = plan(&target(), &within(), &small_limits()).expect("at the caps");
        assert_eq!((c.users, c.posts, c.rate), (1_000, 50, 100.0));
        assert_eq!(c.load_time(), Duration::from_secs(60));
    }

    #[test]
    fn each_cap_refuses_a_larger_run_and_names_its_flag() {
        let cases: [(StartRequest, &str, &str); 9] = [
            (
                StartRequest {
                    users: Some(1_001),
                    ..within()
                },
                "Too many users",
                "--max-users",
            ),
            (
                StartRequest {
                    users: Some(u64::MAX),
                    ..within()
                },
                "Too many users",
                "--max-users",
            ),
            (
                StartRequest {
                    posts: Some(u32::MAX),
                    ..within()
                },
                "Too many posts",
                "--max-posts",
            ),
            (
                StartRequest {
                    rate: Some(1e300),
                    ..within()
                },
                "Rate too high",
                "--max-rate",
            ),
            (
                StartRequest {
                    sockets: Some(u64::MAX),
                    ..within()
                },
                "Too many sockets",
                "--max-sockets",
            ),
            (
                StartRequest {
                    duration_secs: Some(1e15),
                    ..within()
                },
                "Run too long",
                "--max-duration-secs",
            ),
            (
                StartRequest {
                    ramp_secs: Some(1e300),
                    ..within()
                },
                "Run too long",
                "--max-duration-secs",
            ),
            // Each part fits; together they do not.
            (
                StartRequest {
                    duration_secs: Some(51.0),
                    ..within()
                },
                "Run too long",
                "--max-duration-secs",
            ),
            (
                StartRequest {
                    preset: Some("10k".into()),
                    ..StartRequest::default()
                },
                "Too many users",
                "--max-users",
            ),
        ];
        for (req, title, flag) in cases {
            let body = plan(&target(), &req, &small_limits())
                .expect_err("over a cap")
                .body();
            assert_eq!(body.title, title, "{req:?}");
            assert!(body.detail.contains(flag), "{}", body.detail);
            assert!(body.detail.len() < 200, "a short detail: {}", body.detail);
        }
    }

    #[test]
    fn huge_durations_are_refused_before_they_can_overflow() {
        // Both fit in a `Duration`; their sum would not (and `Duration + Duration` panics).
        let req = StartRequest {
            duration_secs: Some(1e19),
            ramp_secs: Some(1e19),
            ..within()
        };
        let limits = Limits {
            max_duration: Duration::MAX,
            ..small_limits()
        };
        assert_eq!(
            plan(&target(), &req, &limits)
                .expect_err("too long")
                .body()
                .title,
            "Run too long"
        );
    }

    #[test]
    fn negative_or_non_finite_numbers_are_invalid_not_over_a_cap() {
        for req in [
            StartRequest {
                rate: Some(-5.0),
                ..within()
            },
            StartRequest {
                rate: Some(f64::INFINITY),
                ..within()
            },
            StartRequest {
                rate: Some(f64::NAN),
                ..within()
            },
            StartRequest {
                duration_secs: Some(-1.0),
                ..within()
            },
            StartRequest {
                ramp_secs: Some(f64::NEG_INFINITY),
                ..within()
            },
            StartRequest {
                duration_secs: Some(f64::INFINITY),
                ..within()
            },
            StartRequest {
                users: Some(0),
                ..within()
            },
        ] {
            assert_eq!(
                plan(&target(), &req, &small_limits())
                    .expect_err("invalid")
                    .body()
                    .title,
                "Invalid settings",
                "{req:?}"
            );
        }
    }

    #[test]
    fn setup_counts_are_throttled_but_their_end_is_not() {
        let mut t = Throttle::default();
        let setup = |done| Progress::Setup {
            phase: Phase::Users,
            done,
            total: 10,
        };
        assert!(t.admit(&setup(1)));
        assert!(!t.admit(&setup(2)));
        assert!(t.admit(&setup(10)));
        assert!(t.admit(&Progress::Phase { phase: Phase::Load }));
        assert!(!t.admit(&Progress::Other));
    }
}

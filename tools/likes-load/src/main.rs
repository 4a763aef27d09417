//! `likes-load`: the command line around [`likes_load::run`], with a progress bar.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use likes_load::cli::TargetArgs;
use likes_load::{Config, Phase, Popularity, Preset, ProgressEvent, ProgressSink};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Puts the likes system under load over real HTTP and Socket.IO, then checks that the
/// generator, Redis and PostgreSQL agree on every count.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Scenario preset; flags given explicitly override it.
    #[arg(long)]
    preset: Option<Preset>,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    users: Option<u64>,
    #[arg(long)]
    sockets: Option<u64>,
    /// Target like/unlike arrivals per second (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Steady part, e.g. `60s`.
    #[arg(long, value_parser = humantime_duration)]
    duration: Option<Duration>,
    /// Linear ramp before the steady part, e.g. `5s`.
    #[arg(long, value_parser = humantime_duration)]
    ramp: Option<Duration>,
    /// Stop after this many like/unlike requests.
    #[arg(long)]
    max_requests: Option<u64>,
    #[arg(long)]
    posts: Option<u32>,
    #[arg(long)]
    popularity: Option<Popularity>,
    /// Share of likes the viral post takes with `--popularity viral`.
    #[arg(long)]
    viral_share: Option<f64>,
    #[arg(long)]
    unlike_ratio: Option<f64>,
    #[arg(long)]
    uploads_per_sec: Option<f64>,
    #[arg(long)]
    max_in_flight: Option<usize>,
    #[arg(long)]
    subs_per_socket: Option<u32>,
    /// How long to wait for PostgreSQL to catch up, e.g. `120s`.
    #[arg(long, value_parser = humantime_duration)]
    drain_timeout: Option<Duration>,
    #[arg(long)]
    seed: Option<u64>,
    /// Sample this process's memory: `name=pid` (repeatable).
    #[arg(long, value_parser = name_pid)]
    watch: Vec<(String, u32)>,
    /// Folder for report.json, report.md and the PNG charts.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write every request and answer to this JSONL file and audit the run against it.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// How long the end-of-run replay retries unknown requests, e.g. `120s`.
    #[arg(long, value_parser = humantime_duration)]
    replay_timeout: Option<Duration>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn name_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((name.to_owned(), pid.parse().map_err(|_| "pid is a number")?))
}

impl Args {
    fn config(self) -> Config {
        let mut c = Config::default();
        if let Some(p) = self.preset {
            c.apply_preset(p);
        }
        self.target.apply(&mut c);
        c.watch = self.watch;
        c.ledger = self.ledger;
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f { c.$f = v; })* };
        }
        set!(
            users,
            sockets,
            rate,
            duration,
            ramp,
            posts,
            popularity,
            viral_share,
            unlike_ratio,
            uploads_per_sec,
            max_in_flight,
            subs_per_socket,
            drain_timeout,
            replay_timeout,
            seed
        );
        if self.max_requests.is_some() {
            c.max_requests = self.max_requests;
        }
        c
    }
}

/// Draws progress events as an indicatif bar (and lines for notes).
struct Bar(ProgressBar);

impl ProgressSink for Bar {
    fn event(&self, event: ProgressEvent) {
        let bar = &self.0;
        match event {
            ProgressEvent::Phase { phase } => {
                bar.set_prefix(format!("{phase:?}").to_lowercase());
                if phase != Phase::Load {
                    bar.set_position(0);
                }
            }
            ProgressEvent::Setup { done, total, .. } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            ProgressEvent::Tick(t) => {
                bar.set_length(t.total_s as u64);
                bar.set_position(t.elapsed_s as u64);
                bar.set_message(format!(
                    "{:.0}/{:.0} req/s  p50 {:.1} ms  p99 {:.1} ms  err {}  in-flight {}  sockets {}  delivery p99 {:.0} ms  sync lag {}",
                    t.achieved_rate,
                    t.target_rate,
                    t.p50_ms,
                    t.p99_ms,
                    t.errors,
                    t.in_flight,
                    t.sockets,
                    t.delivery_p99_ms,
                    t.sync_lag_s
                        .map_or("n/a".into(), |l| format!("{l:.2} s"))
                ));
            }
            ProgressEvent::Drain { matching, total } => {
                bar.set_length(total);
                bar.set_position(matching);
                bar.set_message("posts matching in PostgreSQL");
            }
            ProgressEvent::Note { message } => bar.println(format!("note: {message}")),
            // A kind only a newer lab protocol knows; this generator emits none.
            ProgressEvent::Other => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("warn");
    let args = Args::parse();
    let report_dir = args.report.clone();
    let config = args.config();
    if config.users > 50_000 && config.token_secret.is_none() {
        eprintln!(
            "note: creating {} users through POST /api/session; pass --token-secret to register them directly",
            config.users
        );
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let sink = Arc::new(Bar(bar.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        service_kit::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let report = likes_load::run(config, sink, stop_rx).await?;
    bar.finish_and_clear();
    let charts = match &report_dir {
        Some(dir) => report.write(dir)?,
        None => Vec::new(),
    };
    println!("{}", report.markdown(&charts));
    if let Some(dir) = report_dir {
        println!("report written to {}", dir.display());
    }
    if report.passed() {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        std::process::exit(1);
    }
}

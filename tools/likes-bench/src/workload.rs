//! The request sequence every benchmark target receives, so their numbers are comparable.
//!
//! Worker `w` acts as its own user and walks the posts: like p1..pN, then unlike p1..pN, and
//! again. No two workers share a user, so every request changes state and runs the whole
//! script (dedupe, count, stream, publish), never the cheap "already liked" path.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use service_kit::procfs::cpu_time;

/// What the i-th request of a worker does.
pub fn step(i: u64, posts: u64) -> (u64, bool) {
    let post = i % posts + 1;
    let like = (i / posts).is_multiple_of(2);
    (post, like)
}

/// The user id of worker `w` (offset so runs do not collide with each other's state).
pub fn user_of(worker: usize, offset: u64) -> u64 {
    offset + worker as u64 + 1
}

/// Latency histogram in microseconds, 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("static bounds are valid"))
}

/// One measured run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// CPU the server process used per request (user + system), when its pid was given.
    pub server_cpu_us_per_req: Option<f64>,
    /// CPU the load generator itself used per request: on a shared machine every µs of it is
    /// taken from the server under test, so it is reported beside the server's.
    pub client_cpu_us_per_req: Option<f64>,
}

/// CPU µs per request, when both are known.
fn per_request(cpu: Option<Duration>, requests: u64) -> Option<f64> {
    cpu.filter(|_| requests > 0)
        .map(|c| c.as_secs_f64() * 1e6 / requests as f64)
}

impl Report {
    pub fn new(
        target: &str,
        connections: usize,
        hist: &Histogram<u64>,
        errors: u64,
        window: Window,
    ) -> Self {
        let requests = hist.len();
        let Window {
            elapsed,
            cpu,
            client_cpu,
        } = window;
        let seconds = elapsed.as_secs_f64();
        Self {
            target: target.to_owned(),
            connections,
            requests,
            errors,
            seconds,
            rps: requests as f64 / seconds,
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            server_cpu_us_per_req: per_request(cpu, requests),
            client_cpu_us_per_req: per_request(client_cpu, requests),
        }
    }
}

impl Report {
    /// A run measured by an outside tool that reports its own rate and percentiles.
    pub fn from_rate(
        target: &str,
        connections: usize,
        requests: u64,
        rps: f64,
        window: Window,
    ) -> Self {
        let Window {
            elapsed,
            cpu,
            client_cpu,
        } = window;
        Self {
            target: target.to_owned(),
            connections,
            requests,
            errors: 0,
            seconds: elapsed.as_secs_f64(),
            rps,
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            server_cpu_us_per_req: per_request(cpu, requests),
            client_cpu_us_per_req: per_request(client_cpu, requests),
        }
    }
}

/// The measured interval of a run: how long it lasted and how much CPU the server and the load
/// generator used in it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub elapsed: Duration,
    pub cpu: Option<Duration>,
    pub client_cpu: Option<Duration>,
}

impl Window {
    /// Lets the workers run for `seconds`, then raises `stop`.
    pub async fn measure(
        seconds: u64,
        server_pid: Option<u32>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Self {
        let me = std::process::id();
        let (cpu0, client0) = (server_pid.and_then(cpu_time), cpu_time(me));
        let t0 = std::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let elapsed = t0.elapsed();
        let (cpu1, client1) = (server_pid.and_then(cpu_time), cpu_time(me));
        Self {
            elapsed,
            cpu: spent(cpu0, cpu1),
            client_cpu: spent(client0, client1),
        }
    }
}

/// The CPU used between two readings.
pub fn spent(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    before.zip(after).map(|(a, b)| b.saturating_sub(a))
}

// The edge under test: its address and the secret it verifies session tokens with, so a
// benchmark can mint its users' tokens. (Plain comments: clap would show a doc comment as the
// help text of every subcommand that flattens this.)
#[derive(clap::Args)]
pub struct EdgeTarget {
    /// host:port of the edge under test.
    #[arg(long)]
    pub addr: String,
    /// The edge's `session_secret` (HS256).
    #[arg(long)]
    pub secret: String,
}

// A Redis under test, called by `connections` concurrent callers (plain comment, as above).
#[derive(clap::Args)]
pub struct RedisTarget {
    #[arg(long)]
    pub redis: String,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Pid of redis-server, to report its CPU per call.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_alternates_like_and_unlike_per_post() {
        let posts = 3;
        let seq: Vec<_> = (0..6).map(|i| step(i, posts)).collect();
        assert_eq!(
            seq,
            vec![
                (1, true),
                (2, true),
                (3, true),
                (1, false),
                (2, false),
                (3, false)
            ]
        );
        assert_eq!(step(6, posts), (1, true));
    }
}

//! What the generator watches besides its own requests: the sync daemon's lag (its Prometheus
//! `/metrics`) and the resident memory of named processes.

use std::collections::BTreeMap;

use http::{Method, Uri};
use serde::{Deserialize, Serialize};

use crate::edge::{Edge, Outcome};

/// One sample of the sync daemon's lag.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LagSample {
    /// Seconds since the load phase started.
    pub t_s: f64,
    /// Largest `sync_lag_seconds` over the like streams `{sN}:events` (age of the newest
    /// committed entry when it was committed). A gauge keeps its last value while its stream is
    /// idle, which is why the users stream is kept apart.
    pub lag_s: f64,
    /// `sync_lag_seconds` of `{users}:events`.
    #[serde(default)]
    pub users_lag_s: f64,
    /// Sum of `sync_lag_entries` (undelivered + unacknowledged entries).
    pub entries: f64,
}

/// Reads `sync_lag_seconds` (max over the like streams; the users stream's apart) and
/// `sync_lag_entries` (sum over all streams) from a Prometheus text page.
pub fn parse_lag(text: &str) -> LagSample {
    let mut s = LagSample::default();
    for line in text.lines() {
        let value = || {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if line.starts_with("sync_lag_seconds{") {
            if line.contains(likes_core::keys::USER_STREAM) {
                s.users_lag_s = s.users_lag_s.max(value());
            } else {
                s.lag_s = s.lag_s.max(value());
            }
        } else if line.starts_with("sync_lag_entries{") {
            s.entries += value();
        }
    }
    s
}

/// Polls a sync daemon's `/metrics`.
pub struct LagProbe {
    edge: Edge,
    path: String,
}

impl LagProbe {
    pub fn new(metrics_url: &str) -> anyhow::Result<Self> {
        let uri: Uri = metrics_url.parse()?;
        let base = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(ToString::to_string).unwrap_or_default()
        );
        Ok(Self {
            edge: Edge::new(&base, 1)?,
            path: uri.path().to_owned(),
        })
    }

    /// The current lag (`t_s` left at 0), or `None` when the daemon does not answer.
    pub async fn sample(&self) -> Option<LagSample> {
        let (outcome, body) = self.edge.send(Method::GET, &self.path, None, None).await;
        (matches!(outcome, Outcome::Status(s) if s.is_success()))
            .then(|| parse_lag(&String::from_utf8_lossy(&body)))
    }
}

/// Resident set size of `pid`, in bytes (0 when it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    service_kit::procfs::rss_bytes(pid).unwrap_or(0)
}

/// CPU time (user + system) of `pid`, in seconds, children excluded (0 when it is gone).
pub fn cpu_secs(pid: u32) -> f64 {
    service_kit::procfs::cpu_time(pid).map_or(0.0, |t| t.as_secs_f64())
}

/// Busy CPU time of the whole machine (all processes, every core), in seconds.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let jiffies: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait.
    let busy: u64 = jiffies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, v)| *v)
        .sum();
    busy as f64 / 100.0
}

/// Peak RSS and mean CPU use of each watched process, plus the generator itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Mean cores used over the load phase (CPU seconds / wall seconds).
    #[serde(default)]
    pub cpu_cores: BTreeMap<String, f64>,
    #[serde(skip)]
    first: BTreeMap<String, (std::time::Instant, f64)>,
}

impl Memory {
    pub fn sample(&mut self, watch: &[(String, u32)]) {
        let me = ("likes-load (this generator)".to_owned(), std::process::id());
        let now = std::time::Instant::now();
        for (name, pid) in watch.iter().chain(std::iter::once(&me)) {
            let mib = rss_bytes(*pid) as f64 / 1_048_576.0;
            let peak = self.peak_rss_mib.entry(name.clone()).or_default();
            *peak = peak.max(mib);
            let cpu = cpu_secs(*pid);
            self.cpu(name, now, cpu);
        }
        // What every process on the box used, ours and others' (the box is shared).
        self.cpu("(whole machine)", now, machine_busy_secs());
    }

    fn cpu(&mut self, name: &str, now: std::time::Instant, cpu: f64) {
        let (t0, c0) = *self.first.entry(name.to_owned()).or_insert((now, cpu));
        let wall = now.duration_since(t0).as_secs_f64();
        if wall > 0.0 {
            self.cpu_cores.insert(name.to_owned(), (cpu - c0) / wall);
        }
    }
}

/// The machine the run happened on, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_gib: f64,
    pub kernel: String,
    /// `/proc/loadavg` when the run started and when it ended: the box is shared.
    #[serde(default)]
    pub loadavg_start: String,
    #[serde(default)]
    pub loadavg_end: String,
}

/// The 1/5/15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .unwrap_or("unknown")
                .trim()
                .to_owned(),
            mem_gib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1_048_576.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            loadavg_start: String::new(),
            loadavg_end: loadavg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_worst_stream_and_entries_add_up() {
        let page = "# TYPE sync_lag_seconds gauge\n\
                    sync_lag_seconds{stream=\"{s0}:events\"} 0.25\n\
                    sync_lag_seconds{stream=\"{s1}:events\"} 1.5\n\
                    sync_lag_entries{stream=\"{s0}:events\"} 10\n\
                    sync_lag_entries{stream=\"{s1}:events\"} 32\n\
                    sync_lag_seconds_total 99\n";
        let s = parse_lag(page);
        assert_eq!((s.lag_s, s.users_lag_s, s.entries), (1.5, 0.0, 42.0));
        let users = parse_lag("sync_lag_seconds{stream=\"{users}:events\"} 28\n");
        assert_eq!((users.lag_s, users.users_lag_s), (0.0, 28.0));
        assert!(rss_bytes(std::process::id()) > 0);
    }
}

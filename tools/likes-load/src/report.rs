//! The run's report: one serialisable struct, written as `report.json`, `report.md` and PNG
//! charts into a folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use likes_core::PostId;
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::config::Config;
use crate::observe::{LagSample, Machine, Memory};
use crate::setup::SetupInfo;
use crate::stats::Latency;
use crate::verdict::{Status, Verdict};

/// Posts listed in the audit table (the busiest; the totals cover all).
const AUDIT_POSTS_SHOWN: usize = 20;

/// One second of the load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondRow {
    pub t_s: u64,
    pub target_rate: f64,
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Socket.IO side of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SocketsReport {
    pub asked: u64,
    pub subscribed: u64,
    pub failed: u64,
    /// Times a subscribed socket lost its connection during the run (each reconnects).
    pub dropped: u64,
    /// Times a socket was subscribed again after losing its connection.
    #[serde(default)]
    pub reconnected: u64,
    /// Sockets that ended knowing Redis's final count of every post they follow, of
    /// `converge_total` (every socket that subscribed); absent when not checked.
    #[serde(default)]
    pub converged: Option<u64>,
    #[serde(default)]
    pub converge_total: Option<u64>,
    /// Seconds the end of the run waited for them.
    #[serde(default)]
    pub converge_secs: f64,
    /// The first sockets that did not converge.
    #[serde(default)]
    pub stale: Vec<crate::sockets::Stale>,
    pub connect_secs: f64,
    pub first_errors: Vec<String>,
    /// `likes:updated` frames received.
    pub frames: u64,
    /// Frames whose count no request of this run produced (e.g. coalesced past, or foreign).
    pub unmatched: u64,
    /// Like → `likes:updated` at the sockets, from the like's intended send time.
    pub delivery: Latency,
    /// Delivery latency histogram: (upper bound ms, count) buckets.
    pub delivery_buckets: Vec<(f64, u64)>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub started_at: String,
    pub machine: Machine,
    pub config: Config,
    pub setup: SetupInfo,
    pub load_secs: f64,
    pub target_rate: f64,
    /// Like/unlike requests scheduled, and answered 2xx per second over the steady part.
    pub scheduled: u64,
    pub achieved_rate: f64,
    pub dropped: u64,
    pub replayed: u64,
    pub replay_failures: u64,
    pub uploads: u64,
    /// Latency per endpoint (2xx only; errors are counted below).
    pub endpoints: BTreeMap<String, Latency>,
    /// Likes and unlikes together.
    pub likes: Latency,
    pub errors: BTreeMap<String, u64>,
    pub sockets: SocketsReport,
    pub sync_lag: Vec<LagSample>,
    pub sync_lag_max_s: Option<f64>,
    pub sync_lag_max_entries: Option<f64>,
    pub memory: Memory,
    pub timeline: Vec<SecondRow>,
    /// Unique likers the generator left per post.
    pub expected: Vec<(PostId, u64)>,
    pub verdict: Verdict,
    /// The ledger audit (runs with `--ledger` and PostgreSQL).
    #[serde(default)]
    pub audit: Option<Audit>,
}

impl Report {
    /// The verdict passed, and so did the audit and the sockets' convergence when checked.
    pub fn passed(&self) -> bool {
        self.verdict.status == Status::Pass
            && self.audit.as_ref().is_none_or(Audit::passed)
            && self.sockets.converged == self.sockets.converge_total
    }

    /// The human summary.
    pub fn markdown(&self, charts: &[String]) -> String {
        let c = &self.config;
        let mut md = String::new();
        let _ = writeln!(md, "# Load run {}\n", self.started_at);
        let _ = writeln!(
            md,
            "**Verdict: {}** — {} posts; expected {} likes, Redis {}, PostgreSQL {} ({} mismatching){}\n",
            match self.verdict.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
            },
            self.verdict.posts,
            self.verdict.expected_total,
            self.verdict.redis_total,
            self.verdict.pg_total,
            self.verdict.mismatch_count,
            self.verdict
                .note
                .as_ref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}), {:.1} GiB, Linux {}; load average {} at the start, {} at the end.\n",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.mem_gib,
            self.machine.kernel,
            self.machine.loadavg_start,
            self.machine.loadavg_end
        );
        let _ = writeln!(md, "| scenario | value |\n|---|---|");
        let _ = writeln!(
            md,
            "| users | {} ({}, {:.1} s) |",
            c.users, self.setup.users_via, self.setup.users_secs
        );
        let _ = writeln!(
            md,
            "| posts | {} ({}, {:.1} s), popularity {:?} |",
            c.posts, self.setup.posts_via, self.setup.posts_secs, c.popularity
        );
        let _ = writeln!(
            md,
            "| target rate | {:.0}/s after a {:.0} s ramp, {:.0} s steady |",
            c.rate,
            c.ramp.as_secs_f64(),
            c.duration.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| unlike ratio / uploads | {} / {}/s |",
            c.unlike_ratio, c.uploads_per_sec
        );
        let _ = writeln!(
            md,
            "| sockets | {} asked, {} subscribed ({} failed, {} dropped, {} reconnected) in {:.1} s |\n",
            self.sockets.asked,
            self.sockets.subscribed,
            self.sockets.failed,
            self.sockets.dropped,
            self.sockets.reconnected,
            self.sockets.connect_secs
        );
        if let (Some(ok), Some(total)) = (self.sockets.converged, self.sockets.converge_total) {
            let _ = writeln!(
                md,
                "**Clients converged: {ok} / {total}** (every socket's last known count of each post it follows equals Redis's final count; checked for {:.1} s)\n",
                self.sockets.converge_secs
            );
            for st in &self.sockets.stale {
                let _ = writeln!(
                    md,
                    "- socket {} on {}: knows {}, Redis says {}",
                    st.socket,
                    st.post,
                    st.known.map_or("nothing".into(), |k| k.to_string()),
                    st.want
                );
            }
            if !self.sockets.stale.is_empty() {
                md.push('\n');
            }
        }
        if let Some(a) = &self.audit {
            md.push_str(&a.markdown(AUDIT_POSTS_SHOWN));
            md.push('\n');
        }
        let _ = writeln!(md, "| result | value |\n|---|---|");
        let _ = writeln!(
            md,
            "| requests scheduled | {} in {:.1} s (dropped {}) |",
            self.scheduled, self.load_secs, self.dropped
        );
        let _ = writeln!(
            md,
            "| achieved rate (steady part) | {:.0}/s of {:.0}/s |",
            self.achieved_rate, self.target_rate
        );
        let _ = writeln!(
            md,
            "| like/unlike latency | p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms |",
            self.likes.p50_ms, self.likes.p99_ms, self.likes.p999_ms, self.likes.max_ms
        );
        let _ = writeln!(
            md,
            "| delivery like → likes:updated | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} frames, {} unmatched) |",
            self.sockets.delivery.p50_ms,
            self.sockets.delivery.p99_ms,
            self.sockets.delivery.max_ms,
            self.sockets.frames,
            self.sockets.unmatched
        );
        let _ = writeln!(
            md,
            "| sync lag max | {} s, {} entries |",
            self.sync_lag_max_s
                .map_or("n/a".into(), |v| format!("{v:.2}")),
            self.sync_lag_max_entries
                .map_or("n/a".into(), |v| format!("{v:.0}"))
        );
        let _ = writeln!(
            md,
            "| drain after load | {:.1} s |",
            self.verdict.drain_secs
        );
        let _ = writeln!(
            md,
            "| replayed unknown requests | {} ({} still failing) |\n",
            self.replayed, self.replay_failures
        );
        let _ = writeln!(
            md,
            "| endpoint | count | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|"
        );
        for (name, l) in &self.endpoints {
            let _ = writeln!(
                md,
                "| `{name}` | {} | {:.2} | {:.2} | {:.2} | {:.1} |",
                l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        if !self.sockets.first_errors.is_empty() {
            let _ = writeln!(
                md,
                "Socket errors (first {}):\n",
                self.sockets.first_errors.len()
            );
            for e in &self.sockets.first_errors {
                let _ = writeln!(md, "- {e}");
            }
            md.push('\n');
        }
        if !self.errors.is_empty() {
            let _ = writeln!(md, "\n| error | count |\n|---|---|");
            for (k, v) in &self.errors {
                let _ = writeln!(md, "| {k} | {v} |");
            }
        }
        let _ = writeln!(
            md,
            "\n| process | peak RSS MiB | mean CPU cores during load |\n|---|---|---|"
        );
        for (k, v) in &self.memory.peak_rss_mib {
            let cores = self
                .memory
                .cpu_cores
                .get(k)
                .map_or("—".into(), |c| format!("{c:.2}"));
            let _ = writeln!(md, "| {k} | {v:.0} | {cores} |");
        }
        if let Some(all) = self.memory.cpu_cores.get("(whole machine)") {
            let _ = writeln!(md, "| (whole machine, every process) | — | {all:.2} |");
        }
        if !self.verdict.mismatches.is_empty() {
            let _ = writeln!(
                md,
                "\n| mismatching post | expected | Redis | PG count | PG rows |\n|---|---|---|---|---|"
            );
            let opt = |v: Option<u64>| v.map_or("—".into(), |v| v.to_string());
            for m in &self.verdict.mismatches {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    m.post,
                    m.expected,
                    opt(m.redis),
                    opt(m.pg_count),
                    opt(m.pg_rows)
                );
            }
        }
        md.push('\n');
        for chart in charts {
            let _ = writeln!(md, "![{chart}]({chart})");
        }
        md
    }
}

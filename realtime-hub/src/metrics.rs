//! Prometheus metrics of one hub instance, as plain atomics rendered to the text format.
//!
//! Kept per instance (not the global `metrics` recorder) so several hubs can run in one test
//! process and each `/metrics` shows only its own numbers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters updated on the hot paths; gauges are sampled when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages received from Redis Pub/Sub on `like_event`.
    pub like_messages_in: AtomicU64,
    /// Messages received from Redis Pub/Sub on `post_event`.
    pub post_messages_in: AtomicU64,
    /// Pub/Sub messages that could not be decoded (dropped).
    pub bad_messages_in: AtomicU64,
    /// `likes:updated` emits to post rooms.
    pub like_emits_out: AtomicU64,
    /// `posts:created` broadcasts.
    pub post_emits_out: AtomicU64,
    /// Count changes absorbed by coalescing (held and then superseded or merged).
    pub coalesced: AtomicU64,
    /// Client events handled (`subscribe`, `unsubscribe`).
    pub client_events_in: AtomicU64,
    /// Client events answered with an error ack.
    pub client_errors: AtomicU64,
    /// Successful Redis Pub/Sub reconnects after a lost connection.
    pub redis_reconnects: AtomicU64,
}

/// Values sampled at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub sockets: usize,
    pub rooms: usize,
    pub redis_up: bool,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus text exposition of these metrics.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "realtime_hub_sockets",
            "gauge",
            "Connected Socket.IO sockets.",
            g.sockets.to_string(),
        );
        metric(
            "realtime_hub_rooms",
            "gauge",
            "Post rooms with at least one socket.",
            g.rooms.to_string(),
        );
        metric(
            "realtime_hub_redis_up",
            "gauge",
            "1 while the Pub/Sub bridge is subscribed.",
            u8::from(g.redis_up).to_string(),
        );
        let likes_in = get(&self.like_messages_in);
        let likes_out = get(&self.like_emits_out);
        metric(
            "realtime_hub_like_messages_in_total",
            "counter",
            "like_event messages received from Redis.",
            likes_in.to_string(),
        );
        metric(
            "realtime_hub_post_messages_in_total",
            "counter",
            "post_event messages received from Redis.",
            get(&self.post_messages_in).to_string(),
        );
        metric(
            "realtime_hub_bad_messages_in_total",
            "counter",
            "Pub/Sub messages dropped as undecodable.",
            get(&self.bad_messages_in).to_string(),
        );
        metric(
            "realtime_hub_like_emits_out_total",
            "counter",
            "likes:updated emits to post rooms.",
            likes_out.to_string(),
        );
        metric(
            "realtime_hub_post_emits_out_total",
            "counter",
            "posts:created broadcasts.",
            get(&self.post_emits_out).to_string(),
        );
        metric(
            "realtime_hub_coalesced_total",
            "counter",
            "Count changes absorbed by coalescing.",
            get(&self.coalesced).to_string(),
        );
        // Changes in per emit out; 1 means no coalescing happened.
        let ratio = if likes_out == 0 {
            1.0
        } else {
            likes_in as f64 / likes_out as f64
        };
        metric(
            "realtime_hub_coalescing_ratio",
            "gauge",
            "like_event messages in per likes:updated emit out.",
            format!("{ratio}"),
        );
        metric(
            "realtime_hub_client_events_in_total",
            "counter",
            "subscribe/unsubscribe events from clients.",
            get(&self.client_events_in).to_string(),
        );
        metric(
            "realtime_hub_client_errors_total",
            "counter",
            "Client events answered with an error ack.",
            get(&self.client_errors).to_string(),
        );
        metric(
            "realtime_hub_redis_reconnects_total",
            "counter",
            "Redis Pub/Sub reconnects after a lost connection.",
            get(&self.redis_reconnects).to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_ratio() {
        let m = Metrics::default();
        for _ in 0..10 {
            inc(&m.like_messages_in);
        }
        inc(&m.like_emits_out);
        inc(&m.like_emits_out);
        let text = m.render(Gauges {
            sockets: 3,
            rooms: 2,
            redis_up: true,
        });
        assert!(text.contains("realtime_hub_sockets 3\n"), "{text}");
        assert!(text.contains("realtime_hub_rooms 2\n"));
        assert!(text.contains("realtime_hub_redis_up 1\n"));
        assert!(text.contains("realtime_hub_coalescing_ratio 5\n"));
        assert!(text.contains("# TYPE realtime_hub_redis_reconnects_total counter"));
    }
}

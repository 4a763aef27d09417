//! The backlog sampler behind `sync_lag_entries`: per stream, the entries not yet delivered to
//! our group plus those delivered but not yet acknowledged.
//!
//! Redis's own `lag` (from `XINFO GROUPS`) is `entries-added − entries-read`, and a restart that
//! replays the AOF, or an `XGROUP SETID`, can leave `entries-read` stale: the gauge then showed
//! thousands of entries while nothing was pending. So the entries after the group's last
//! delivered id are counted (none once it has seen the newest id), and Redis's figure is used
//! only beyond what one sample counts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use redis::aio::ConnectionLike;
use tokio::sync::watch;

use crate::checkpoint::StreamPos;
use crate::trim::{after, id_field};

/// Most entries one sample counts by reading them; a larger backlog is reported as at least
/// this many (or Redis's figure when that is larger), which is all an alert needs.
pub const COUNT_CAP: u64 = 100_000;
/// Entries per `XRANGE` page while counting.
const PAGE: u64 = 1_000;

/// Samples each stream's backlog every `every` into `sync_lag_entries{stream}`.
pub async fn sample_lag(
    redis: service_kit::redis::Redis,
    streams: Vec<String>,
    group: String,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            conn = redis.connect(&Default::default()).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        for stream in &streams {
            match backlog(c, stream, &group).await {
                Ok(Some(n)) => {
                    metrics::gauge!("sync_lag_entries", "stream" => stream.clone()).set(n as f64);
                }
                // No group yet: the consumer creates it; nothing to report until then.
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(%stream, error = format!("{e:#}"), "lag sample failed");
                    conn = None;
                    break;
                }
            }
        }
    }
}

/// Undelivered + pending entries of `stream` for `group`; `None` when the group does not exist.
pub async fn backlog(
    c: &mut (impl ConnectionLike + Send),
    stream: &str,
    group: &str,
) -> anyhow::Result<Option<u64>> {
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(c)
        .await
        .context("XINFO GROUPS")?;
    let Some(g) = groups.iter().find(
        |g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()),
    ) else {
        return Ok(None);
    };
    let pending = int_field(g, "pending").unwrap_or(0);
    let last_delivered = id_field(g, "last-delivered-id").unwrap_or_default();
    let info: HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(c)
        .await
        .context("XINFO STREAM")?;
    let length = int_field(&info, "length").unwrap_or(0);
    let last_generated = id_field(&info, "last-generated-id").unwrap_or_default();
    let undelivered = if last_delivered >= last_generated {
        // The group has seen the newest id, whatever Redis's counter says.
        0
    } else {
        let counted = count_after(c, stream, last_delivered, COUNT_CAP).await?;
        beyond_cap(counted, int_field(g, "lag"), length)
    };
    Ok(Some(undelivered + pending))
}

/// The undelivered entries given `counted` of them (up to [`COUNT_CAP`]): exact below the cap;
/// at the cap, Redis's `lag` when it is larger and possible (undelivered entries are all still in
/// the stream, since trimming never removes them, so no more than its `length`).
pub fn beyond_cap(counted: u64, reported: Option<u64>, length: u64) -> u64 {
    if counted < COUNT_CAP {
        return counted;
    }
    counted.max(reported.unwrap_or(0).min(length))
}

/// Entries of `stream` after `from`, counted up to `cap`.
async fn count_after(
    c: &mut (impl ConnectionLike + Send),
    stream: &str,
    from: StreamPos,
    cap: u64,
) -> anyhow::Result<u64> {
    let mut start = after(from);
    let mut counted = 0;
    while counted < cap {
        let ids: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(start.to_string())
            .arg("+")
            .arg("COUNT")
            .arg(PAGE.min(cap - counted))
            .query_async(c)
            .await
            .context("XRANGE")?;
        let Some(last) = ids.last() else { break };
        start = after(last.0.parse().context("stream id")?);
        counted += ids.len() as u64;
    }
    Ok(counted)
}

fn int_field(g: &HashMap<String, redis::Value>, k: &str) -> Option<u64> {
    match g.get(k) {
        Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_cap_the_count_is_the_answer_whatever_redis_says() {
        assert_eq!(beyond_cap(5, Some(18_961), 40_000), 5);
        assert_eq!(beyond_cap(0, Some(18_961), 40_000), 0);
        assert_eq!(beyond_cap(7, None, 40), 7);
    }

    #[test]
    fn at_the_cap_a_larger_possible_redis_lag_is_used() {
        assert_eq!(beyond_cap(COUNT_CAP, Some(250_000), 300_000), 250_000);
        assert_eq!(beyond_cap(COUNT_CAP, Some(900_000), 300_000), 300_000);
        assert_eq!(beyond_cap(COUNT_CAP, None, 300_000), COUNT_CAP);
    }
}

//! Stream trimming: entries are removed only below what every consumer group is done with — our
//! group's PostgreSQL checkpoint (committed) and every group's acknowledgements — and never
//! entries younger than the configured retention, which keeps a window for replays.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use service_kit::redis::Conn;

use crate::checkpoint::StreamPos;

/// The id just after `p`: `XTRIM MINID` keeps ids `>= MINID`.
pub(crate) fn after(p: StreamPos) -> StreamPos {
    match p.seq.checked_add(1) {
        Some(seq) => StreamPos { ms: p.ms, seq },
        None => StreamPos {
            ms: p.ms + 1,
            seq: 0,
        },
    }
}

/// A stream id field of an `XINFO` reply.
pub(crate) fn id_field(g: &HashMap<String, redis::Value>, k: &str) -> Option<StreamPos> {
    match g.get(k) {
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Trims `stream` once; returns how many entries were removed.
pub async fn trim_once(
    pool: &Pool,
    redis: &mut Conn,
    stream: &str,
    keep: Duration,
    now_ms: u64,
) -> anyhow::Result<u64> {
    let client = pool
        .get()
        .await
        .context("getting a PostgreSQL connection")?;
    let row = client
        .query_opt(
            "SELECT last_ms, last_seq FROM stream_checkpoints WHERE stream = $1 AND last_ms >= 0",
            &[&stream],
        )
        .await
        .context("reading the checkpoint")?;
    let Some(row) = row else { return Ok(0) };
    let committed = StreamPos {
        ms: u64::try_from(row.get::<_, i64>(0)).context("checkpoint ms")?,
        seq: u64::try_from(row.get::<_, i64>(1)).context("checkpoint seq")?,
    };
    let mut min_id = after(committed);
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(redis)
        .await
        .context("XINFO GROUPS")?;
    // Every group, ours included: an entry still pending anywhere (even committed, awaiting
    // its XACK after a crash) stays, so a pending-list re-read never meets a deleted entry.
    for g in &groups {
        let delivered = id_field(g, "last-delivered-id").unwrap_or_default();
        let mut done = after(delivered);
        if !matches!(g.get("pending"), Some(redis::Value::Int(0))) {
            // The oldest entry that group still has unacknowledged.
            let oldest: Vec<redis::Value> = redis::cmd("XPENDING")
                .arg(stream)
                .arg(g.get("name").map(|v| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                }))
                .query_async(redis)
                .await
                .context("XPENDING")?;
            if let Some(redis::Value::BulkString(b)) = oldest.get(1)
                && let Some(p) = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok())
            {
                done = done.min(p);
            }
        }
        min_id = min_id.min(done);
    }
    let retention = StreamPos {
        ms: now_ms.saturating_sub(keep.as_millis() as u64),
        seq: 0,
    };
    min_id = min_id.min(retention);
    let removed: u64 = redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg(min_id.to_string())
        .query_async(redis)
        .await
        .context("XTRIM")?;
    Ok(removed)
}

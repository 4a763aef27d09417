//! Which entries of a batch may be applied: those after the checkpoint that continue the stream
//! right after it. An entry Redis holds in that range but the batch lacks is pending at another
//! consumer; applying past it would skip it forever, so the batch is cut there.
//!
//! The decisions ([`after_checkpoint`], [`contiguous_prefix`], [`alone_in_summary`]) are pure;
//! [`contiguous_len`] asks Redis for what they need.

use anyhow::Context;
use service_kit::redis::Conn;

use super::Entry;
use crate::checkpoint::StreamPos;

/// The entries after `checkpoint`, in stream order: those at or below it were applied before.
pub fn after_checkpoint(entries: &[Entry], checkpoint: Option<StreamPos>) -> Vec<&Entry> {
    let mut fresh: Vec<&Entry> = entries
        .iter()
        .filter(|e| checkpoint.is_none_or(|c| e.pos > c))
        .collect();
    fresh.sort_by_key(|e| e.pos);
    fresh
}

/// How many of `fresh` (in stream order) match `stream_ids` (what the stream holds right after
/// the checkpoint) one for one: the longest prefix that continues the stream.
pub fn contiguous_prefix(fresh: &[&Entry], stream_ids: &[String]) -> usize {
    fresh
        .iter()
        .zip(stream_ids)
        .take_while(|(e, id)| id.parse::<StreamPos>().is_ok_and(|p| p == e.pos))
        .count()
}

/// How many of `fresh` (non-empty, in stream order, ending at `last`) may be applied.
///
/// `reader` is the `(group, consumer)` that read them. When no other consumer of the group has
/// anything pending, the batch is contiguous by construction (an entry after the checkpoint is
/// either pending somewhere or not delivered yet, since entries are acknowledged only once
/// committed), so the stream is not read a second time to prove it.
pub async fn contiguous_len(
    redis: &mut Conn,
    stream: &str,
    reader: Option<(&str, &str)>,
    checkpoint: Option<StreamPos>,
    fresh: &[&Entry],
    last: StreamPos,
) -> anyhow::Result<usize> {
    let alone = match reader {
        Some((group, consumer)) => only_pending_at(redis, stream, group, consumer).await?,
        None => false,
    };
    if alone {
        return Ok(fresh.len());
    }
    let start = checkpoint.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
    let stream_ids: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg(&start)
        .arg(last.to_string())
        .arg("COUNT")
        .arg(fresh.len() + 1)
        .query_async(redis)
        .await
        .context("XRANGE contiguity check")?;
    let ids: Vec<String> = stream_ids.into_iter().map(|(id, _)| id).collect();
    Ok(contiguous_prefix(fresh, &ids))
}

/// Whether `consumer` is the only consumer of `group` with entries pending on `stream` (the
/// summary form of `XPENDING`: one line per consumer, not per entry).
async fn only_pending_at(
    redis: &mut Conn,
    stream: &str,
    group: &str,
    consumer: &str,
) -> anyhow::Result<bool> {
    let reply: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(redis)
        .await
        .context("XPENDING summary")?;
    Ok(alone_in_summary(&reply, consumer))
}

/// Whether the `XPENDING` summary `reply` (count, lowest id, highest id, `[consumer, count]`
/// pairs) lists no consumer but `consumer`.
pub fn alone_in_summary(reply: &[redis::Value], consumer: &str) -> bool {
    let Some(redis::Value::Array(consumers)) = reply.get(3) else {
        // Nothing pending at all (nil), so nothing pending elsewhere.
        return true;
    };
    consumers.iter().all(|c| match c {
        redis::Value::Array(pair) => {
            matches!(pair.first(), Some(redis::Value::BulkString(n)) if n == consumer.as_bytes())
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;
    use crate::apply::BadEntry;

    fn at(seq: u64) -> Entry {
        Entry {
            pos: StreamPos { ms: 1, seq },
            event: Err(BadEntry {
                fields: String::new(),
                error: String::new(),
            }),
        }
    }

    fn seqs(entries: &[&Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.pos.seq).collect()
    }

    #[test]
    fn entries_at_or_below_the_checkpoint_are_dropped_and_the_rest_sorted() {
        let entries = [at(4), at(2), at(3), at(1)];
        assert_eq!(seqs(&after_checkpoint(&entries, None)), vec![1, 2, 3, 4]);
        let checkpoint = Some(StreamPos { ms: 1, seq: 2 });
        assert_eq!(seqs(&after_checkpoint(&entries, checkpoint)), vec![3, 4]);
        let beyond = Some(StreamPos { ms: 2, seq: 0 });
        assert!(after_checkpoint(&entries, beyond).is_empty());
    }

    #[test]
    fn the_batch_is_cut_at_the_first_entry_it_lacks() {
        let entries = [at(1), at(2), at(4)];
        let fresh: Vec<&Entry> = entries.iter().collect();
        let ids = |s: &[&str]| s.iter().map(|&s| s.to_owned()).collect::<Vec<_>>();
        assert_eq!(contiguous_prefix(&fresh, &ids(&["1-1", "1-2", "1-4"])), 3);
        // 1-3 is pending at another consumer: only what comes before it may be applied.
        assert_eq!(
            contiguous_prefix(&fresh, &ids(&["1-1", "1-2", "1-3", "1-4"])),
            2
        );
        assert_eq!(contiguous_prefix(&fresh, &ids(&["1-0", "1-1"])), 0);
        assert_eq!(contiguous_prefix(&fresh, &ids(&["1-1", "garbage"])), 1);
        assert_eq!(contiguous_prefix(&fresh, &[]), 0);
    }

    #[test]
    fn the_pending_summary_tells_whether_others_hold_entries() {
        let pair = |name: &str, n: &str| {
            Value::Array(vec![
                Value::BulkString(name.as_bytes().to_vec()),
                Value::BulkString(n.as_bytes().to_vec()),
            ])
        };
        let summary = |consumers: Value| {
            vec![
                Value::Int(3),
                Value::BulkString(b"1-1".to_vec()),
                Value::BulkString(b"1-3".to_vec()),
                consumers,
            ]
        };
        let nothing = [Value::Int(0), Value::Nil, Value::Nil, Value::Nil];
        assert!(alone_in_summary(&nothing, "a"));
        assert!(alone_in_summary(
            &summary(Value::Array(vec![pair("a", "3")])),
            "a"
        ));
        let shared = summary(Value::Array(vec![pair("a", "2"), pair("b", "1")]));
        assert!(!alone_in_summary(&shared, "a"));
        assert!(!alone_in_summary(
            &summary(Value::Array(vec![pair("b", "3")])),
            "a"
        ));
    }
}

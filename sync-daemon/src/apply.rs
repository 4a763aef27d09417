//! Applying one batch of stream entries to PostgreSQL in ONE transaction: like rows inserted or
//! deleted idempotently, per-post counts moved only by rows that really changed, users upserted,
//! undecodable entries parked, and the stream checkpoint written — all committed together.
//!
//! Idempotence comes from two layers. The checkpoint (locked for the transaction) drops entries
//! already applied; and even without it (checkpoint lost, replay from the start) the like rows
//! are set-like (`ON CONFLICT DO NOTHING`, `DELETE` of what is there) and the counts follow the
//! rows actually inserted/deleted, so a replay changes nothing.

use std::collections::HashMap;

use anyhow::Context;
use deadpool_postgres::Pool;
use likes_core::events::{EventError, StreamEvent};
use redis::aio::MultiplexedConnection;

use crate::checkpoint::{self, StreamPos};

/// One stream entry as read from Redis, decoded (or not).
#[derive(Debug, Clone)]
pub struct Entry {
    pub pos: StreamPos,
    pub event: Result<StreamEvent, BadEntry>,
}

/// An entry that could not be decoded: kept verbatim so it can be parked, not lost.
#[derive(Debug, Clone)]
pub struct BadEntry {
    pub fields: String,
    pub error: String,
}

impl BadEntry {
    /// Wraps a decoding error with a readable rendering of the entry's fields.
    pub fn new(fields: &[(String, Vec<u8>)], error: &EventError) -> Self {
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            fields,
            error: error.to_string(),
        }
    }
}

/// The net effect of a run of events, one final state per key, ready for bulk statements.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// (post, user, ts) that must end up liked; sorted by (post, user).
    pub likes: Vec<(i64, i64, Option<String>)>,
    /// (post, user) that must end up not liked; sorted.
    pub unlikes: Vec<(i64, i64)>,
    /// (user, name, ts), the last record per user; sorted by user.
    pub users: Vec<(i64, String, Option<String>)>,
}

/// Whether every id of `event` fits PostgreSQL's `BIGINT`; those that do not are parked.
pub fn fits(event: &StreamEvent) -> bool {
    let ok = |v: u64| i64::try_from(v).is_ok();
    match event {
        StreamEvent::Like { post, user, .. } | StreamEvent::Unlike { post, user, .. } => {
            ok(post.get()) && ok(user.get())
        }
        StreamEvent::User { user, .. } => ok(user.get()),
    }
}

/// Folds events in stream order: for each (post, user) only the last like/unlike counts, which
/// is the state Redis ended in, so like/unlike/like inside one batch leaves one like. Events
/// that do not [`fits`] are ignored (the caller parks them).
pub fn fold<'a>(events: impl IntoIterator<Item = &'a StreamEvent>) -> Folded {
    let mut likes: HashMap<(i64, i64), Option<Option<String>>> = HashMap::new();
    let mut users: HashMap<i64, (String, Option<String>)> = HashMap::new();
    let id = |v: u64| i64::try_from(v).ok();
    for event in events {
        match event {
            StreamEvent::Like { post, user, ts, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), Some(valid_ts(ts)));
                }
            }
            StreamEvent::Unlike { post, user, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), None);
                }
            }
            StreamEvent::User { user, name, ts } => {
                if let Some(u) = id(user.get()) {
                    users.insert(u, (name.clone(), valid_ts(ts)));
                }
            }
        }
    }
    let mut out = Folded::default();
    for ((post, user), state) in likes {
        match state {
            Some(ts) => out.likes.push((post, user, ts)),
            None => out.unlikes.push((post, user)),
        }
    }
    out.users = users
        .into_iter()
        .map(|(id, (name, ts))| (id, name, ts))
        .collect();
    // A fixed row order makes concurrent transactions lock rows in the same order.
    out.likes.sort_by_key(|&(p, u, _)| (p, u));
    out.unlikes.sort_unstable();
    out.users.sort_by_key(|&(id, _, _)| id);
    out
}

/// The timestamp if PostgreSQL will accept it; a malformed one must not wedge the stream, so
/// it becomes `now()` in SQL instead.
fn valid_ts(ts: &str) -> Option<String> {
    humantime::parse_rfc3339_weak(ts.trim_end_matches('Z'))
        .ok()
        .map(|_| ts.to_owned())
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Entries at or below the checkpoint, dropped as already applied.
    pub skipped: usize,
    /// Entries applied (including parked ones).
    pub applied: usize,
    /// Like rows really inserted / deleted.
    pub inserted: u64,
    pub deleted: u64,
    /// Entries parked as undecodable.
    pub parked: usize,
    /// Every entry of the batch at or below this position is applied (or was before) and may
    /// be acknowledged; later ones were not applied (see `gap`).
    pub upto: StreamPos,
    /// The stream holds an entry, between the checkpoint and the end of this batch, that is
    /// not in it (pending at another consumer): only the part before it was applied (maybe
    /// nothing), since committing past it would skip it forever.
    pub gap: bool,
}

const APPLY_LIKES: &str = "
WITH ins AS (
    INSERT INTO likes (post_id, user_id, created_at)
    SELECT p, u, COALESCE(t::timestamptz, now())
    FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS x(p, u, t)
    ON CONFLICT (post_id, user_id) DO NOTHING
    RETURNING post_id
), del AS (
    DELETE FROM likes l
    USING UNNEST($4::bigint[], $5::bigint[]) AS d(p, u)
    WHERE l.post_id = d.p AND l.user_id = d.u
    RETURNING l.post_id
), delta AS (
    SELECT post_id, SUM(n)::bigint AS n
    FROM (SELECT post_id, 1 AS n FROM ins UNION ALL SELECT post_id, -1 AS n FROM del) c
    GROUP BY post_id
), counts AS (
    INSERT INTO post_like_counts AS c (post_id, likes)
    SELECT post_id, n FROM delta WHERE n <> 0 ORDER BY post_id
    ON CONFLICT (post_id) DO UPDATE SET likes = c.likes + EXCLUDED.likes, updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM del), (SELECT count(*) FROM counts)";

const UPSERT_USERS: &str = "
INSERT INTO users (id, name, created_at)
SELECT i, n, COALESCE(t::timestamptz, now())
FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS x(i, n, t)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name";

const PARK: &str = "
INSERT INTO stream_dead_letters (stream, entry_id, fields, error)
SELECT $1, e, f, r FROM UNNEST($2::text[], $3::text[], $4::text[]) AS x(e, f, r)
ON CONFLICT (stream, entry_id) DO NOTHING";

/// Applies `entries` (in stream order) of `stream` in one transaction and commits it.
///
/// Only entries that continue the stream right after the checkpoint are applied: at an entry
/// Redis holds but the batch lacks (delivered to another consumer, not applied yet) the batch
/// is cut and [`Applied::gap`] is set. Together with the locked checkpoint this makes any number of
/// consumers on one stream safe: none skips what another has not applied, none applies twice.
pub async fn apply_batch(
    pool: &Pool,
    redis: &mut MultiplexedConnection,
    stream: &str,
    entries: &[Entry],
) -> anyhow::Result<Applied> {
    let Some(last) = entries.iter().map(|e| e.pos).max() else {
        return Ok(Applied::default());
    };
    let mut client = pool
        .get()
        .await
        .context("getting a PostgreSQL connection")?;
    let tx = client.transaction().await.context("BEGIN")?;
    let checkpoint = checkpoint::lock(&tx, stream).await?;
    let mut fresh: Vec<&Entry> = entries
        .iter()
        .filter(|e| checkpoint.is_none_or(|c| e.pos > c))
        .collect();
    fresh.sort_by_key(|e| e.pos);
    let mut out = Applied {
        skipped: entries.len() - fresh.len(),
        applied: fresh.len(),
        upto: last,
        ..Applied::default()
    };
    if fresh.is_empty() {
        // Everything was applied before (a crash between COMMIT and XACK); nothing to write.
        tx.commit().await.context("COMMIT")?;
        return Ok(out);
    }

    // Contiguity: the stream between the checkpoint and our last entry must hold exactly our
    // entries. Apply the longest prefix that does; the rest waits (still pending with us)
    // until whoever holds the missing entry commits it, or until we claim it.
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
    let contiguous = fresh
        .iter()
        .zip(&stream_ids)
        .take_while(|(e, (id, _))| id.parse::<StreamPos>().is_ok_and(|p| p == e.pos))
        .count();
    if contiguous == 0 {
        return Ok(Applied {
            skipped: out.skipped,
            upto: checkpoint.unwrap_or_default(),
            gap: true,
            ..Applied::default()
        });
    }
    fresh.truncate(contiguous);
    let last = fresh[contiguous - 1].pos;
    out.applied = contiguous;
    out.upto = last;
    out.gap = contiguous < entries.len() - out.skipped;

    let mut parked: Vec<(String, String, String)> = Vec::new();
    let mut good: Vec<&StreamEvent> = Vec::with_capacity(fresh.len());
    for e in &fresh {
        match &e.event {
            Ok(ev) if fits(ev) => good.push(ev),
            Ok(ev) => parked.push((
                e.pos.to_string(),
                format!("{ev:?}"),
                "id exceeds BIGINT".into(),
            )),
            Err(bad) => parked.push((e.pos.to_string(), bad.fields.clone(), bad.error.clone())),
        }
    }
    let folded = fold(good.iter().copied());

    if !folded.likes.is_empty() || !folded.unlikes.is_empty() {
        let (lp, lu, lt) = unzip3(&folded.likes);
        let (up, uu): (Vec<i64>, Vec<i64>) = folded.unlikes.iter().copied().unzip();
        let stmt = tx.prepare_cached(APPLY_LIKES).await?;
        let row = tx
            .query_one(&stmt, &[&lp, &lu, &lt, &up, &uu])
            .await
            .context("applying likes")?;
        out.inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        out.deleted = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
    }
    if !folded.users.is_empty() {
        let ids: Vec<i64> = folded.users.iter().map(|u| u.0).collect();
        let names: Vec<&str> = folded.users.iter().map(|u| u.1.as_str()).collect();
        let ts: Vec<Option<&str>> = folded.users.iter().map(|u| u.2.as_deref()).collect();
        let stmt = tx.prepare_cached(UPSERT_USERS).await?;
        tx.execute(&stmt, &[&ids, &names, &ts])
            .await
            .context("upserting users")?;
    }
    if !parked.is_empty() {
        out.parked = parked.len();
        let ids: Vec<&str> = parked.iter().map(|p| p.0.as_str()).collect();
        let fields: Vec<&str> = parked.iter().map(|p| p.1.as_str()).collect();
        let errors: Vec<&str> = parked.iter().map(|p| p.2.as_str()).collect();
        let stmt = tx.prepare_cached(PARK).await?;
        tx.execute(&stmt, &[&stream, &ids, &fields, &errors])
            .await
            .context("parking undecodable entries")?;
    }
    checkpoint::write(&tx, stream, last).await?;
    tx.commit().await.context("COMMIT")?;
    Ok(out)
}

fn unzip3(rows: &[(i64, i64, Option<String>)]) -> (Vec<i64>, Vec<i64>, Vec<Option<&str>>) {
    let mut a = Vec::with_capacity(rows.len());
    let mut b = Vec::with_capacity(rows.len());
    let mut c = Vec::with_capacity(rows.len());
    for (p, u, t) in rows {
        a.push(*p);
        b.push(*u);
        c.push(t.as_deref());
    }
    (a, b, c)
}

#[cfg(test)]
mod tests {
    use likes_core::{PostId, UserId};

    use super::*;

    fn like(p: u64, u: u64, on: bool) -> StreamEvent {
        let (post, user) = (
            PostId::new(p).expect("nonzero"),
            UserId::new(u).expect("nonzero"),
        );
        let ts = "2026-11-27T20:52:16.123Z".to_owned();
        if on {
            StreamEvent::Like {
                post,
                user,
                likes: 0,
                ts,
            }
        } else {
            StreamEvent::Unlike {
                post,
                user,
                likes: 0,
                ts,
            }
        }
    }

    #[test]
    fn last_event_per_key_wins() {
        let evs = [
            like(1, 1, true),
            like(1, 1, false),
            like(1, 1, true),
            like(1, 2, true),
            like(1, 2, false),
            like(2, 1, false),
        ];
        let f = fold(&evs);
        let ts = Some("2026-11-27T20:52:16.123Z".to_owned());
        assert_eq!(f.likes, vec![(1, 1, ts)]);
        assert_eq!(f.unlikes, vec![(1, 2), (2, 1)]);
    }

    #[test]
    fn oversized_ids_are_refused_and_bad_timestamps_dropped() {
        let big = like(u64::MAX, 1, true);
        assert!(!fits(&big));
        assert_eq!(fold([&big]), Folded::default());
        assert_eq!(valid_ts("yesterday"), None);
        assert!(valid_ts("2026-11-27T20:52:16.123Z").is_some());
    }
}

//! Applying one batch of stream entries to PostgreSQL in ONE transaction: like rows inserted or
//! deleted idempotently, per-post counts moved only by rows that really changed, recent likers
//! lists moved forward, users upserted, posts inserted with their images (read from Redis,
//! content-addressed), undecodable entries parked, and the stream checkpoint written — all
//! committed together.
//!
//! Idempotence comes from two layers. The checkpoint (locked for the transaction) drops entries
//! already applied; and even without it (checkpoint lost, replay from the start) the like rows
//! are set-like (`ON CONFLICT DO NOTHING`, `DELETE` of what is there), the counts follow the
//! rows actually inserted/deleted, and posts and images are immutable (`ON CONFLICT DO
//! NOTHING`), so a replay changes none of them. (The recent likers lists are the exception: a
//! replay moves the replayed likers to the front again.)

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
    /// Created posts, one per id; sorted by id.
    pub posts: Vec<PostRow>,
    /// Per post, the state-changing like (`true`) / unlike (`false`) operations in stream order,
    /// replayed on the stored recent likers list; sorted by post.
    pub recent_ops: Vec<(i64, Vec<(i64, bool)>)>,
}

/// A post creation as it goes into `posts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRow {
    pub id: i64,
    pub author: i64,
    pub author_name: String,
    pub caption: String,
    pub image: String,
    pub width: i32,
    pub height: i32,
    pub ts: Option<String>,
}

/// Whether every id of `event` fits PostgreSQL's `BIGINT`; those that do not are parked.
pub fn fits(event: &StreamEvent) -> bool {
    let ok = |v: u64| i64::try_from(v).is_ok();
    match event {
        StreamEvent::Like { post, user, .. } | StreamEvent::Unlike { post, user, .. } => {
            ok(post.get()) && ok(user.get())
        }
        StreamEvent::User { user, .. } => ok(user.get()),
        StreamEvent::Post(p) => {
            ok(p.post.get())
                && ok(p.user.get())
                && i32::try_from(p.width).is_ok()
                && i32::try_from(p.height).is_ok()
        }
    }
}

/// Folds events in stream order: for each (post, user) only the last like/unlike counts, which
/// is the state Redis ended in, so like/unlike/like inside one batch leaves one like. Events
/// that do not [`fits`] are ignored (the caller parks them).
pub fn fold<'a>(events: impl IntoIterator<Item = &'a StreamEvent>) -> Folded {
    let mut likes: HashMap<(i64, i64), Option<Option<String>>> = HashMap::new();
    let mut users: HashMap<i64, (String, Option<String>)> = HashMap::new();
    let mut posts: HashMap<i64, PostRow> = HashMap::new();
    let mut recent: HashMap<i64, Vec<(i64, bool)>> = HashMap::new();
    let id = |v: u64| i64::try_from(v).ok();
    for event in events {
        match event {
            StreamEvent::Like { post, user, ts, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), Some(valid_ts(ts)));
                    recent.entry(p).or_default().push((u, true));
                }
            }
            StreamEvent::Unlike { post, user, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), None);
                    recent.entry(p).or_default().push((u, false));
                }
            }
            StreamEvent::Post(p) => {
                let dims = (i32::try_from(p.width).ok(), i32::try_from(p.height).ok());
                if let (Some(post), Some(author), (Some(width), Some(height))) =
                    (id(p.post.get()), id(p.user.get()), dims)
                {
                    // post.lua never re-creates an id, so any copy is the same post.
                    posts.entry(post).or_insert_with(|| PostRow {
                        id: post,
                        author,
                        author_name: p.name.clone(),
                        caption: p.caption.clone(),
                        image: p.image.clone(),
                        width,
                        height,
                        ts: valid_ts(&p.ts),
                    });
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
    out.posts = posts.into_values().collect();
    out.posts.sort_by_key(|p| p.id);
    out.recent_ops = recent.into_iter().collect();
    out.recent_ops.sort_by_key(|&(p, _)| p);
    out
}

/// Replays the like script's recent-likers list operations on `list` (newest first): a like
/// is `LREM` + `LPUSH` + `LTRIM cap`, an unlike is `LREM`. Same input, same list as Redis.
pub fn replay_recent(list: &mut Vec<i64>, ops: &[(i64, bool)], cap: usize) {
    for &(user, on) in ops {
        list.retain(|&u| u != user);
        if on {
            list.insert(0, user);
            list.truncate(cap);
        }
    }
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

/// Like rows, counts and recent likers lists in one statement, so each touched post's counts
/// row is written once per batch. Lists travel as array literals (`{3,1}`): UNNEST would
/// flatten a two-dimensional array.
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
), lists AS (
    SELECT p, r::bigint[] AS r FROM UNNEST($6::bigint[], $7::text[]) AS x(p, r)
), counts AS (
    INSERT INTO post_like_counts AS c (post_id, likes, recent_likers)
    SELECT l.p, COALESCE(d.n, 0), l.r FROM lists l LEFT JOIN delta d ON d.post_id = l.p
    ORDER BY l.p
    ON CONFLICT (post_id) DO UPDATE
        SET likes = c.likes + EXCLUDED.likes, recent_likers = EXCLUDED.recent_likers,
            updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM del), (SELECT count(*) FROM counts)";

const UPSERT_USERS: &str = "
INSERT INTO users (id, name, created_at)
SELECT i, n, COALESCE(t::timestamptz, now())
FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS x(i, n, t)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name";

const UPSERT_POSTS: &str = "
INSERT INTO posts (id, author_id, author_name, caption, image_id, width, height, created_at)
SELECT i, a, n, c, img, w, h, COALESCE(t::timestamptz, now())
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
            $8::text[]) AS x(i, a, n, c, img, w, h, t)
ON CONFLICT (id) DO NOTHING";

const READ_RECENT: &str = "
SELECT post_id, recent_likers FROM post_like_counts WHERE post_id = ANY($1::bigint[])";

const KNOWN_IMAGES: &str = "
SELECT id FROM images WHERE id = ANY($1::text[]) GROUP BY id HAVING count(*) = 2";

const UPSERT_IMAGES: &str = "
INSERT INTO images (id, variant, content_type, etag, width, height, bytes)
SELECT i, v, $1, e, w, h, b
FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bytea[])
     AS x(i, v, e, w, h, b)
ON CONFLICT (id, variant) DO NOTHING";

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
///
/// `reader` is the `(group, consumer)` that read `entries`. When no other consumer of the group
/// has anything pending, the batch is contiguous by construction (an entry after the checkpoint
/// is either pending somewhere or not delivered yet, since entries are acknowledged only once
/// committed), so the stream is not read a second time to prove it.
pub async fn apply_batch(
    pool: &Pool,
    redis: &mut MultiplexedConnection,
    stream: &str,
    reader: Option<(&str, &str)>,
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
    let alone = match reader {
        Some((group, consumer)) => only_pending_at(redis, stream, group, consumer).await?,
        None => false,
    };
    let contiguous = if alone {
        fresh.len()
    } else {
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
        fresh
            .iter()
            .zip(&stream_ids)
            .take_while(|(e, (id, _))| id.parse::<StreamPos>().is_ok_and(|p| p == e.pos))
            .count()
    };
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
        let (rp, rl) = recent_lists(&tx, &folded.recent_ops).await?;
        let stmt = tx.prepare_cached(APPLY_LIKES).await?;
        let row = tx
            .query_one(&stmt, &[&lp, &lu, &lt, &up, &uu, &rp, &rl])
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
    if !folded.posts.is_empty() {
        upsert_posts(&tx, &folded.posts).await?;
        upsert_images(&tx, redis, &folded.posts).await?;
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

/// Whether `consumer` is the only consumer of `group` with entries pending on `stream` (the
/// summary form of `XPENDING`: one line per consumer, not per entry).
async fn only_pending_at(
    redis: &mut MultiplexedConnection,
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
    let Some(redis::Value::Array(consumers)) = reply.get(3) else {
        // Nothing pending at all (nil), so nothing pending elsewhere.
        return Ok(true);
    };
    Ok(consumers.iter().all(|c| match c {
        redis::Value::Array(pair) => {
            matches!(pair.first(), Some(redis::Value::BulkString(n)) if n == consumer.as_bytes())
        }
        _ => false,
    }))
}

/// The recent likers lists of the touched posts moved forward by this batch's operations, as
/// `(posts, array literals)` for the counts upsert. Only this stream's transactions touch these
/// posts (a post lives on one shard), serialized by the checkpoint lock, so the read-modify-write
/// is safe.
async fn recent_lists(
    tx: &deadpool_postgres::Transaction<'_>,
    ops: &[(i64, Vec<(i64, bool)>)],
) -> anyhow::Result<(Vec<i64>, Vec<String>)> {
    let ids: Vec<i64> = ops.iter().map(|(p, _)| *p).collect();
    let stmt = tx.prepare_cached(READ_RECENT).await?;
    let mut lists: HashMap<i64, Vec<i64>> = tx
        .query(&stmt, &[&ids])
        .await
        .context("reading recent likers")?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let cap = likes_core::scripts::RECENT_LIKERS_CAP as usize;
    let mut literals = Vec::with_capacity(ops.len());
    for (post, post_ops) in ops {
        let list = lists.entry(*post).or_default();
        replay_recent(list, post_ops, cap);
        let items: Vec<String> = list.iter().map(i64::to_string).collect();
        literals.push(format!("{{{}}}", items.join(",")));
    }
    Ok((ids, literals))
}

async fn upsert_posts(
    tx: &deadpool_postgres::Transaction<'_>,
    posts: &[PostRow],
) -> anyhow::Result<()> {
    let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
    let authors: Vec<i64> = posts.iter().map(|p| p.author).collect();
    let names: Vec<&str> = posts.iter().map(|p| p.author_name.as_str()).collect();
    let captions: Vec<&str> = posts.iter().map(|p| p.caption.as_str()).collect();
    let images: Vec<&str> = posts.iter().map(|p| p.image.as_str()).collect();
    let widths: Vec<i32> = posts.iter().map(|p| p.width).collect();
    let heights: Vec<i32> = posts.iter().map(|p| p.height).collect();
    let ts: Vec<Option<&str>> = posts.iter().map(|p| p.ts.as_deref()).collect();
    let stmt = tx.prepare_cached(UPSERT_POSTS).await?;
    tx.execute(
        &stmt,
        &[
            &ids, &authors, &names, &captions, &images, &widths, &heights, &ts,
        ],
    )
    .await
    .context("upserting posts")?;
    Ok(())
}

/// Copies the posts' images from Redis into `images`, skipping those PostgreSQL already has
/// (content-addressed, so a stored image never changes). A missing Redis key does not hold the
/// post back: it is logged and counted in `sync_missing_images_total`.
async fn upsert_images(
    tx: &deadpool_postgres::Transaction<'_>,
    redis: &mut MultiplexedConnection,
    posts: &[PostRow],
) -> anyhow::Result<()> {
    let mut wanted: Vec<&str> = posts.iter().map(|p| p.image.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let stmt = tx.prepare_cached(KNOWN_IMAGES).await?;
    let known: std::collections::HashSet<String> = tx
        .query(&stmt, &[&wanted])
        .await
        .context("looking up stored images")?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    wanted.retain(|id| !known.contains(*id));
    // A few at a time: each image is up to a few hundred KB.
    for chunk in wanted.chunks(16) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.hgetall(likes_core::keys::image_key(id));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = pipe
            .query_async(redis)
            .await
            .context("reading images from Redis")?;
        let mut rows = ImageRows::default();
        for (id, fields) in chunk.iter().zip(hashes) {
            rows.push_image(id, &fields);
        }
        if rows.ids.is_empty() {
            continue;
        }
        let stmt = tx.prepare_cached(UPSERT_IMAGES).await?;
        tx.execute(
            &stmt,
            &[
                &likes_images::CONTENT_TYPE,
                &rows.ids,
                &rows.variants,
                &rows.etags,
                &rows.widths,
                &rows.heights,
                &rows.bytes,
            ],
        )
        .await
        .context("upserting images")?;
    }
    Ok(())
}

/// Image variants as columns for one `UNNEST` insert.
#[derive(Default)]
struct ImageRows {
    ids: Vec<String>,
    variants: Vec<&'static str>,
    etags: Vec<String>,
    widths: Vec<i32>,
    heights: Vec<i32>,
    bytes: Vec<Vec<u8>>,
}

impl ImageRows {
    /// Adds both variants of image `id` from its Redis hash, or logs why it cannot.
    fn push_image(&mut self, id: &str, fields: &HashMap<String, Vec<u8>>) {
        use likes_core::keys::image_field as f;
        let variants = [
            ("full", f::FULL, f::FULL_ETAG),
            ("thumb", f::THUMB, f::THUMB_ETAG),
        ];
        let mut found = Vec::new();
        for (variant, bytes_field, etag_field) in variants {
            let Some(bytes) = fields.get(bytes_field) else {
                continue;
            };
            let etag = fields
                .get(etag_field)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .unwrap_or_else(|| likes_images::content_hash(bytes));
            found.push((variant, bytes, etag));
        }
        if found.len() < 2 {
            metrics::counter!("sync_missing_images_total").increment(1);
            tracing::error!(
                image = id,
                variants = found.len(),
                "image missing in Redis; post persisted without it"
            );
            return;
        }
        for (variant, bytes, etag) in found {
            // Header only: the variants are our own JPEGs, so this cannot cost a decode.
            let (width, height) = match likes_images::probe(bytes, &likes_images::Limits::default())
            {
                Ok(p) => (
                    i32::try_from(p.width).unwrap_or(0),
                    i32::try_from(p.height).unwrap_or(0),
                ),
                Err(e) => {
                    tracing::warn!(image = id, variant, error = %e, "image header unreadable");
                    (0, 0)
                }
            };
            self.ids.push(id.to_owned());
            self.variants.push(variant);
            self.etags.push(etag);
            self.widths.push(width);
            self.heights.push(height);
            self.bytes.push(bytes.clone());
        }
    }
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
    fn recent_likers_follow_the_like_scripts_list_operations() {
        // cap 2: a like moves the user to the front and trims; an unlike leaves a hole that
        // older (trimmed) likers do not refill.
        let mut list = vec![9];
        replay_recent(&mut list, &[(1, true), (2, true), (1, true)], 2);
        assert_eq!(list, vec![1, 2]);
        replay_recent(&mut list, &[(2, false), (7, false)], 2);
        assert_eq!(list, vec![1]);
    }

    #[test]
    fn the_largest_ids_fit_and_bad_timestamps_are_dropped() {
        // Ids stop at 2^53 − 1 when parsed (likes_core::ids), so every id a stream entry can
        // carry fits PostgreSQL's bigint.
        assert!(PostId::new(u64::MAX).is_none());
        let largest = like(PostId::MAX, UserId::MAX, true);
        assert!(fits(&largest));
        assert_eq!(fold([&largest]).likes.len(), 1);
        assert_eq!(valid_ts("yesterday"), None);
        assert!(valid_ts("2026-11-27T20:52:16.123Z").is_some());
    }
}

//! The batch's SQL: every statement it runs and the writes that bind a folded batch to them.
//! Each write is a single bulk statement (`UNNEST` of column arrays) and does nothing when it
//! has no rows.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use deadpool_postgres::Transaction;

use super::fold::{Folded, PostRow, replay_recent};
use super::images::ImageRows;
use super::park::Parked;

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

/// Writes the folded likes and unlikes, moves the touched posts' counts by the rows really
/// inserted and deleted and their recent likers lists forward; returns `(inserted, deleted)`.
pub async fn apply_likes(tx: &Transaction<'_>, folded: &Folded) -> anyhow::Result<(u64, u64)> {
    if folded.likes.is_empty() && folded.unlikes.is_empty() {
        return Ok((0, 0));
    }
    let (lp, lu, lt) = unzip3(&folded.likes);
    let (up, uu): (Vec<i64>, Vec<i64>) = folded.unlikes.iter().copied().unzip();
    let (rp, rl) = recent_lists(tx, &folded.recent_ops).await?;
    let stmt = tx.prepare_cached(APPLY_LIKES).await?;
    let row = tx
        .query_one(&stmt, &[&lp, &lu, &lt, &up, &uu, &rp, &rl])
        .await
        .context("applying likes")?;
    Ok((
        u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
    ))
}

/// The recent likers lists of the touched posts moved forward by this batch's operations, as
/// `(posts, array literals)` for the counts upsert. Only this stream's transactions touch these
/// posts (a post lives on one shard), serialized by the checkpoint lock, so the read-modify-write
/// is safe.
async fn recent_lists(
    tx: &Transaction<'_>,
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

/// Inserts or renames the folded users (`(id, name, ts)`).
pub async fn upsert_users(
    tx: &Transaction<'_>,
    users: &[(i64, String, Option<String>)],
) -> anyhow::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let names: Vec<&str> = users.iter().map(|u| u.1.as_str()).collect();
    let ts: Vec<Option<&str>> = users.iter().map(|u| u.2.as_deref()).collect();
    let stmt = tx.prepare_cached(UPSERT_USERS).await?;
    tx.execute(&stmt, &[&ids, &names, &ts])
        .await
        .context("upserting users")?;
    Ok(())
}

/// Inserts the created posts; one already stored is left as it is (posts are immutable).
pub async fn upsert_posts(tx: &Transaction<'_>, posts: &[PostRow]) -> anyhow::Result<()> {
    if posts.is_empty() {
        return Ok(());
    }
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

/// Which of `ids` PostgreSQL already holds with both variants.
pub async fn known_images(tx: &Transaction<'_>, ids: &[&str]) -> anyhow::Result<HashSet<String>> {
    let stmt = tx.prepare_cached(KNOWN_IMAGES).await?;
    Ok(tx
        .query(&stmt, &[&ids])
        .await
        .context("looking up stored images")?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}

/// Inserts image variants; one already stored is left as it is (content-addressed).
pub async fn insert_images(
    tx: &Transaction<'_>,
    content_type: &str,
    rows: &ImageRows,
) -> anyhow::Result<()> {
    if rows.ids.is_empty() {
        return Ok(());
    }
    let stmt = tx.prepare_cached(UPSERT_IMAGES).await?;
    tx.execute(
        &stmt,
        &[
            &content_type,
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
    Ok(())
}

/// Parks entries in `stream_dead_letters`; one parked before is left as it is.
pub async fn park(tx: &Transaction<'_>, stream: &str, parked: &[Parked]) -> anyhow::Result<()> {
    if parked.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = parked.iter().map(|p| p.id.as_str()).collect();
    let fields: Vec<&str> = parked.iter().map(|p| p.fields.as_str()).collect();
    let errors: Vec<&str> = parked.iter().map(|p| p.error.as_str()).collect();
    let stmt = tx.prepare_cached(PARK).await?;
    tx.execute(&stmt, &[&stream, &ids, &fields, &errors])
        .await
        .context("parking undecodable entries")?;
    Ok(())
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

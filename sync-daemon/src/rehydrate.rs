//! `sync-daemon rehydrate`: after a Redis loss, rebuilds from PostgreSQL (the record) every key
//! the edge reads, so it serves exactly what was persisted: user ids and names, posts and both
//! feed indexes per shard, counts, recent likers, the likers dedupe structures and the images.
//!
//! It writes state only, never stream entries or Pub/Sub messages (there is nothing to re-sync
//! and nothing new to announce), and it overwrites rather than increments, so running it twice
//! changes nothing. Rows are read from one REPEATABLE READ snapshot through cursors and written
//! in pipelines of whole chunks (one per slot on a cluster), so a million likes take a few seconds. Run it before the edge
//! takes traffic again: a like taken by an empty Redis would be counted from zero.

use std::time::Instant;

use anyhow::Context;
use likes_core::keys::{self, PostKeys, post_field};
use likes_core::scripts::{self, RestoreCall};
use likes_core::{PostId, UserId};
use service_kit::redis::{Bulk, Conn, Options, Redis};
use tokio_postgres::{IsolationLevel, Transaction};

use crate::apply::images as variants;

/// Rows fetched per cursor round trip (and written per Redis pipeline).
const ROWS_PER_FETCH: i32 = 20_000;
/// User ids per `restore.lua` call: bounds the time one call blocks Redis.
pub const IDS_PER_RESTORE: usize = 10_000;
/// Images per pipeline: each holds up to a few hundred KB.
const IMAGES_PER_FETCH: i32 = 64;

/// What a rehydration wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub users: u64,
    pub posts: u64,
    /// Posts that have a count but no post record (liked before their creation was synced).
    pub counts_only: u64,
    pub likes: u64,
    pub recent_lists: u64,
    pub images: u64,
    pub millis: u64,
}

/// Rebuilds Redis at `redis_url` from PostgreSQL at `postgres_url` (migrated already).
pub async fn rehydrate(postgres_url: &str, redis_url: &str) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (mut client, connection) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    // Whole chunks go in one pipeline (per slot, on a cluster): allow them far longer than a
    // command's usual reply time.
    let options = Options::default().with_response_timeout(std::time::Duration::from_secs(120));
    let mut redis = Redis::open(redis_url)
        .context("redis url")?
        .connect(&options)
        .await
        .context("connecting to Redis")?;
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::RESTORE.source)
        .query_async(&mut redis)
        .await
        .context("loading restore.lua")?;

    // One snapshot for everything, so counts, likers and posts agree with each other.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("BEGIN")?;
    let mut s = Summary {
        users: users(&tx, &mut redis).await.context("users")?,
        posts: posts(&tx, &mut redis).await.context("posts")?,
        counts_only: counts_only(&tx, &mut redis).await.context("counts")?,
        recent_lists: recent(&tx, &mut redis).await.context("recent likers")?,
        likes: likers(&tx, &mut redis).await.context("likers")?,
        images: images(&tx, &mut redis).await.context("images")?,
        millis: 0,
    };
    tx.commit().await.context("COMMIT")?;
    drop(client);
    let _ = driver.await;
    s.millis = started.elapsed().as_millis() as u64;
    tracing::info!(?s, "rehydrated Redis from PostgreSQL");
    Ok(s)
}

/// Every row of `sql` in chunks, through a server-side cursor.
async fn for_each_chunk<F, Fut>(
    tx: &Transaction<'_>,
    sql: &str,
    per_fetch: i32,
    mut f: F,
) -> anyhow::Result<u64>
where
    F: FnMut(Vec<tokio_postgres::Row>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let portal = tx.bind(sql, &[]).await.context("opening a cursor")?;
    let mut total = 0;
    loop {
        let rows = tx
            .query_portal(&portal, per_fetch)
            .await
            .context("fetching rows")?;
        if rows.is_empty() {
            return Ok(total);
        }
        total += rows.len() as u64;
        f(rows).await?;
    }
}

/// Sets a sequence to at least `min`, never lowering it (ids already handed out stay taken).
async fn raise_seq(redis: &mut Conn, key: &str, min: i64) -> anyhow::Result<()> {
    let current: Option<i64> = redis::cmd("GET").arg(key).query_async(redis).await?;
    if current.unwrap_or(0) < min {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(min)
            .query_async(redis)
            .await?;
    }
    Ok(())
}

async fn users(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let mut conn = redis.clone();
    let n = for_each_chunk(
        tx,
        "SELECT id, name FROM users ORDER BY id",
        ROWS_PER_FETCH,
        |rows| {
            let mut conn = conn.clone();
            async move {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(keys::USER_NAMES);
                for row in &rows {
                    cmd.arg(row.get::<_, i64>(0)).arg(row.get::<_, &str>(1));
                }
                let _: i64 = cmd.query_async(&mut conn).await?;
                Ok(())
            }
        },
    )
    .await?;
    // Authors are users too, even if their own event has not been applied.
    let max: i64 = tx
        .query_one(
            "SELECT GREATEST((SELECT max(id) FROM users), (SELECT max(author_id) FROM posts), 0)",
            &[],
        )
        .await?
        .get(0);
    raise_seq(&mut conn, keys::USER_SEQ, max).await?;
    Ok(n)
}

/// The post records with their counts, and both indexes of their shards.
async fn posts(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let sql = "SELECT p.id, p.author_id, COALESCE(NULLIF(p.author_name, ''), u.name, ''), \
                      p.caption, p.image_id, p.width, p.height, \
                      to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                      COALESCE(c.likes, 0) \
               FROM posts p \
               LEFT JOIN post_like_counts c ON c.post_id = p.id \
               LEFT JOIN users u ON u.id = p.author_id \
               ORDER BY p.id";
    let conn = redis.clone();
    let n = for_each_chunk(tx, sql, ROWS_PER_FETCH, |rows| {
        let conn = conn.clone();
        async move {
            let mut bulk = Bulk::for_conn(&conn);
            for row in &rows {
                let id: i64 = row.get(0);
                let post = PostId::new(u64::try_from(id).unwrap_or(0))
                    .with_context(|| format!("post id {id} is not a valid id"))?;
                let k = PostKeys::new(post);
                let likes: i64 = row.get(8);
                bulk.on(&k.post)
                    .cmd("HSET")
                    .arg(&k.post)
                    .arg(post_field::ID)
                    .arg(id)
                    .arg(post_field::LIKES)
                    .arg(likes)
                    .arg(post_field::AUTHOR)
                    .arg(row.get::<_, i64>(1))
                    .arg(post_field::AUTHOR_NAME)
                    .arg(row.get::<_, &str>(2))
                    .arg(post_field::CAPTION)
                    .arg(row.get::<_, &str>(3))
                    .arg(post_field::IMAGE)
                    .arg(row.get::<_, &str>(4))
                    .arg(post_field::WIDTH)
                    .arg(row.get::<_, i32>(5))
                    .arg(post_field::HEIGHT)
                    .arg(row.get::<_, i32>(6))
                    .arg(post_field::CREATED_AT)
                    .arg(row.get::<_, &str>(7))
                    .ignore();
                bulk.on(&k.new_index).zadd(&k.new_index, id, id).ignore();
                bulk.on(&k.top).zadd(&k.top, id, likes).ignore();
            }
            bulk.run(&conn).await?;
            Ok(())
        }
    })
    .await?;
    let max: i64 = tx
        .query_one("SELECT COALESCE(max(id), 0) FROM posts", &[])
        .await?
        .get(0);
    raise_seq(redis, keys::POST_SEQ, max).await?;
    Ok(n)
}

/// Counts of posts liked before their creation reached PostgreSQL (or never created): Redis had
/// a `likes`-only hash and a `top` entry for them, which a later `post.lua` builds on.
async fn counts_only(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let sql = "SELECT c.post_id, c.likes FROM post_like_counts c \
               WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = c.post_id) ORDER BY 1";
    let conn = redis.clone();
    for_each_chunk(tx, sql, ROWS_PER_FETCH, |rows| {
        let conn = conn.clone();
        async move {
            let mut bulk = Bulk::for_conn(&conn);
            for row in &rows {
                let (id, likes): (i64, i64) = (row.get(0), row.get(1));
                let Some(post) = u64::try_from(id).ok().and_then(PostId::new) else {
                    continue;
                };
                let k = PostKeys::new(post);
                bulk.on(&k.post)
                    .hset(&k.post, post_field::LIKES, likes)
                    .ignore();
                bulk.on(&k.top).zadd(&k.top, id, likes).ignore();
            }
            bulk.run(&conn).await?;
            Ok(())
        }
    })
    .await
}

/// The recent likers lists, replaced whole (newest first, as the like script keeps them).
async fn recent(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let sql = "SELECT post_id, recent_likers FROM post_like_counts \
               WHERE cardinality(recent_likers) > 0 ORDER BY 1";
    let conn = redis.clone();
    for_each_chunk(tx, sql, ROWS_PER_FETCH, |rows| {
        let conn = conn.clone();
        async move {
            let mut bulk = Bulk::for_conn(&conn).atomic();
            for row in &rows {
                let id: i64 = row.get(0);
                let Some(post) = u64::try_from(id).ok().and_then(PostId::new) else {
                    continue;
                };
                let list: Vec<i64> = row.get(1);
                let k = PostKeys::new(post);
                bulk.on(&k.recent)
                    .del(&k.recent)
                    .ignore()
                    .rpush(&k.recent, list)
                    .ignore();
            }
            bulk.run(&conn).await?;
            Ok(())
        }
    })
    .await
}

/// Adds `users` to `post`'s likers structure with `restore.lua`, in calls of at most
/// [`IDS_PER_RESTORE`] ids, queued on `pipe`.
pub fn queue_restore(pipe: &mut redis::Pipeline, post: PostId, users: &[i64]) {
    // Like rows reference users, whose ids start at 1: nothing is dropped here.
    let users: Vec<UserId> = users
        .iter()
        .filter_map(|&u| u64::try_from(u).ok().and_then(UserId::new))
        .collect();
    for chunk in users.chunks(IDS_PER_RESTORE) {
        let call = RestoreCall { post, users: chunk };
        let keys = call.keys();
        pipe.cmd("EVALSHA")
            .arg(scripts::RESTORE.sha1)
            .arg(keys.len())
            .arg(&keys)
            .arg(call.args().collect::<Vec<_>>())
            .ignore();
    }
}

/// The likers dedupe structures, from the like rows in (post, user) order.
async fn likers(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let conn = redis.clone();
    for_each_chunk(
        tx,
        "SELECT post_id, user_id FROM likes ORDER BY post_id, user_id",
        ROWS_PER_FETCH * 5,
        |rows| {
            let conn = conn.clone();
            async move {
                let mut bulk = Bulk::for_conn(&conn);
                let mut run: Vec<i64> = Vec::new();
                let mut current: Option<i64> = None;
                for row in &rows {
                    let (p, u): (i64, i64) = (row.get(0), row.get(1));
                    if current != Some(p) {
                        flush_run(&mut bulk, current, &run);
                        run.clear();
                        current = Some(p);
                    }
                    run.push(u);
                }
                flush_run(&mut bulk, current, &run);
                bulk.run(&conn).await?;
                Ok(())
            }
        },
    )
    .await
}

fn flush_run(bulk: &mut Bulk, post: Option<i64>, users: &[i64]) {
    if let Some(post) = post
        .and_then(|p| u64::try_from(p).ok())
        .and_then(PostId::new)
        && !users.is_empty()
    {
        queue_restore(bulk.on(&PostKeys::new(post).likers), post, users);
    }
}

/// The image hashes: both variants with their ETags and sizes, the fields the upload writes.
async fn images(tx: &Transaction<'_>, redis: &mut Conn) -> anyhow::Result<u64> {
    let conn = redis.clone();
    for_each_chunk(
        tx,
        "SELECT id, variant, etag, bytes, width, height FROM images ORDER BY id, variant",
        IMAGES_PER_FETCH,
        |rows| {
            let conn = conn.clone();
            async move {
                let mut bulk = Bulk::for_conn(&conn);
                for row in &rows {
                    let id: &str = row.get(0);
                    let v = if row.get::<_, &str>(1) == variants::FULL.name {
                        variants::FULL
                    } else {
                        variants::THUMB
                    };
                    let key = keys::image_key(id);
                    bulk.on(&key)
                        .cmd("HSET")
                        .arg(&key)
                        .arg(v.bytes)
                        .arg(row.get::<_, &[u8]>(3))
                        .arg(v.etag)
                        .arg(row.get::<_, &str>(2))
                        .arg(v.width)
                        .arg(row.get::<_, i32>(4))
                        .arg(v.height)
                        .arg(row.get::<_, i32>(5))
                        .ignore();
                }
                bulk.run(&conn).await?;
                Ok(())
            }
        },
    )
    .await
}

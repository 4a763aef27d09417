//! Reconciliation of recently active posts: Redis's counter vs PostgreSQL's count vs the dedupe
//! structure's cardinality, compared only when PostgreSQL has applied everything Redis has
//! streamed for that shard (otherwise they legitimately differ). A wrong Redis counter is
//! repaired from PostgreSQL (the record), and so is a likers structure whose cardinality differs
//! from the like rows (rebuilt whole with `restore.lua`, the `top` score with it) —
//! conditionally, so a like racing the repair wins. Each repair is logged and counted in
//! `sync_repairs_total{kind=count|dedupe}`.

use anyhow::Context;
use deadpool_postgres::Pool;
use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field};
use likes_core::scripts::{self, CardinalityCall};
use service_kit::redis::Conn;

use crate::checkpoint::StreamPos;

/// What one comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything agrees.
    Consistent,
    /// The shard's stream is not fully applied yet; try again later.
    NotDrained,
    /// Redis was repaired from PostgreSQL: the counter (and `top` score) when `count` is
    /// `(redis, postgres)`, the likers structure when `dedupe` is `(cardinality, rows)`.
    Repaired {
        count: Option<(i64, i64)>,
        dedupe: Option<(i64, i64)>,
    },
    /// A like raced the repair; try again later.
    Raced,
}

/// Compares and, if needed, repairs one post. `conn` must not be shared (it uses WATCH).
pub async fn reconcile_post(pool: &Pool, conn: &mut Conn, post: PostId) -> anyhow::Result<Outcome> {
    let k = PostKeys::new(post);
    let cardinality = CardinalityCall { post };
    let (count, cardinality, last): (Option<i64>, i64, redis::Value) = redis::pipe()
        .atomic()
        .hget(&k.post, post_field::LIKES)
        .cmd("EVAL")
        .arg(scripts::CARDINALITY.source)
        .arg(cardinality.keys().len())
        .arg(&cardinality.keys())
        .add_command(newest_entry(&k.stream))
        .query_async(conn)
        .await
        .context("reading the post's Redis state")?;
    let last = last_id(&last);
    let redis_count = count.unwrap_or(0);

    let id = i64::try_from(post.get()).context("post id exceeds BIGINT")?;
    let client = pool
        .get()
        .await
        .context("getting a PostgreSQL connection")?;
    let row = client
        .query_one(
            "SELECT COALESCE((SELECT likes FROM post_like_counts WHERE post_id = $1), 0), \
                    (SELECT count(*) FROM likes WHERE post_id = $1), \
                    (SELECT last_ms FROM stream_checkpoints WHERE stream = $2), \
                    (SELECT last_seq FROM stream_checkpoints WHERE stream = $2)",
            &[&id, &k.stream],
        )
        .await
        .context("reading the post's PostgreSQL state")?;
    let (pg_count, pg_rows): (i64, i64) = (row.get(0), row.get(1));
    let checkpoint = match (row.get::<_, Option<i64>>(2), row.get::<_, Option<i64>>(3)) {
        (Some(ms), Some(seq)) if ms >= 0 => Some(StreamPos {
            ms: u64::try_from(ms).unwrap_or(0),
            seq: u64::try_from(seq).unwrap_or(0),
        }),
        _ => None,
    };
    if last.is_some() && checkpoint < last {
        return Ok(Outcome::NotDrained);
    }
    if pg_count != pg_rows {
        metrics::counter!("sync_drift_total", "kind" => "postgres_count").increment(1);
        tracing::error!(
            post = post.get(),
            pg_count,
            pg_rows,
            "PostgreSQL count differs from its rows"
        );
    }
    let count_ok = redis_count == pg_count;
    let dedupe_ok = cardinality == pg_rows;
    if count_ok && dedupe_ok {
        return Ok(Outcome::Consistent);
    }
    let likers: Vec<i64> = if dedupe_ok {
        Vec::new()
    } else {
        metrics::counter!("sync_drift_total", "kind" => "dedupe").increment(1);
        // EVALSHA inside MULTI cannot fall back to EVAL, so the script is loaded first.
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(scripts::RESTORE.source)
            .query_async(conn)
            .await
            .context("loading restore.lua")?;
        client
            .query(
                "SELECT user_id FROM likes WHERE post_id = $1 ORDER BY user_id",
                &[&id],
            )
            .await
            .context("reading the post's likers")?
            .into_iter()
            .map(|row| row.get(0))
            .collect()
    };
    // Repair only if nothing was streamed for the shard since we looked.
    let _: () = redis::cmd("WATCH")
        .arg(&k.stream)
        .query_async(conn)
        .await
        .context("WATCH")?;
    let now: redis::Value = newest_entry(&k.stream)
        .query_async(conn)
        .await
        .context("XREVRANGE")?;
    if last_id(&now) != last {
        let _: () = redis::cmd("UNWATCH").query_async(conn).await?;
        return Ok(Outcome::Raced);
    }
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset(&k.post, post_field::LIKES, pg_count)
        .zadd(&k.top, post.get(), pg_count);
    if !dedupe_ok {
        pipe.del(&k.likers).ignore();
        crate::rehydrate::queue_restore(&mut pipe, post, &likers);
    }
    let done: Option<redis::Value> = pipe
        .query_async(conn)
        .await
        .context("repairing Redis from PostgreSQL")?;
    if done.is_none() {
        return Ok(Outcome::Raced);
    }
    if !count_ok {
        metrics::counter!("sync_repairs_total", "kind" => "count").increment(1);
        tracing::warn!(
            post = post.get(),
            redis = redis_count,
            postgres = pg_count,
            "repaired Redis like count from PostgreSQL"
        );
    }
    if !dedupe_ok {
        metrics::counter!("sync_repairs_total", "kind" => "dedupe").increment(1);
        tracing::warn!(
            post = post.get(),
            cardinality,
            postgres = pg_rows,
            "rebuilt Redis likers structure from PostgreSQL"
        );
    }
    Ok(Outcome::Repaired {
        count: (!count_ok).then_some((redis_count, pg_count)),
        dedupe: (!dedupe_ok).then_some((cardinality, pg_rows)),
    })
}

/// The id of the single entry an `XREVRANGE … COUNT 1` returned.
fn last_id(v: &redis::Value) -> Option<StreamPos> {
    let redis::Value::Array(entries) = v else {
        return None;
    };
    let redis::Value::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// `XREVRANGE stream + - COUNT 1`: the stream's newest entry, whose id tells whether anything
/// was appended between two reads.
fn newest_entry(stream: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(stream).arg("+").arg("-").arg("COUNT").arg(1);
    cmd
}

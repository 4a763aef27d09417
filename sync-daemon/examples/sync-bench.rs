//! The measuring half of `cargo xtask bench sync` (xtask starts the servers and prints the
//! table): a backlog of N likes written by the production like script, drained into PostgreSQL
//! by the real daemon (in-process) at several batch sizes, next to two references measured in
//! the same run on the same servers:
//! - `pg insert`: the same like rows bulk-inserted (UNNEST, 8000 per statement, one
//!   connection) into an empty table with the same primary key — PostgreSQL's raw ingest rate;
//! - `redis read`: the same entries read back (XRANGE, 8000 per call) and decoded — the rate at
//!   which the streams can be read at all.
//!
//! Then Redis is flushed and rebuilt from PostgreSQL (`rehydrate`), timed. Last, a steady
//! load: likes at a fixed rate through the like script while the daemon runs with its default
//! batching, sampling the sync lag (age of the oldest entry not yet committed, across every
//! stream) every 50 ms.
//!
//! Prints one JSON object on its last stdout line.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use likes_core::events::StreamEvent;
use likes_core::keys::{self, PostKeys};
use likes_core::{PostId, UserId, events, scripts};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    redis: String,
    #[arg(long)]
    postgres: String,
    /// Likes in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    likes: u64,
    /// Posts they spread over (all 16 shards).
    #[arg(long, default_value_t = 10_000)]
    posts: u64,
    /// Batch sizes to drain with.
    #[arg(long, value_delimiter = ',', default_value = "500,2000,8000")]
    batches: Vec<usize>,
    /// Like rate of the steady-load phase (1.5× the edge's measured peak of ~13k/s).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Length of the steady-load phase.
    #[arg(long, default_value_t = 20)]
    sustain_secs: u64,
}

const REF_CHUNK: usize = 8000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Pipelines of hundreds of scripts on a busy 2-core box: no 500 ms reply deadline.
    let conn_cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = redis::Client::open(args.redis.as_str())?
        .get_multiplexed_async_connection_with_config(&conn_cfg)
        .await
        .context("connecting to redis")?;
    sync_daemon::migrate::migrate(&args.postgres).await?;

    let started = Instant::now();
    fill(&conn, args.likes, args.posts).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "backlog: {} likes in {fill_secs:.1} s ({:.0}/s through like.lua)",
        args.likes,
        args.likes as f64 / fill_secs
    );
    let targets = last_ids(&mut conn).await?;

    // Reference 1: read and decode every entry.
    let started = Instant::now();
    let rows = read_all(&mut conn).await?;
    let read_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(rows.len() as u64 == args.likes, "read {} rows", rows.len());
    let read_rate = rows.len() as f64 / read_secs;
    eprintln!("redis read: {read_rate:.0} entries/s");

    // Reference 2: bulk insert of the same rows.
    let (pg, driver) = tokio_postgres::connect(&args.postgres, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(driver);
    pg.batch_execute(
        "DROP TABLE IF EXISTS bench_likes_ref; \
         CREATE TABLE bench_likes_ref (post_id BIGINT NOT NULL, user_id BIGINT NOT NULL, \
           created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (post_id, user_id))",
    )
    .await?;
    let started = Instant::now();
    for chunk in rows.chunks(REF_CHUNK) {
        let (p, u): (Vec<i64>, Vec<i64>) = chunk.iter().copied().unzip();
        pg.execute(
            "INSERT INTO bench_likes_ref (post_id, user_id) SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) \
             ON CONFLICT DO NOTHING",
            &[&p, &u],
        )
        .await?;
    }
    let insert_secs = started.elapsed().as_secs_f64();
    let insert_rate = rows.len() as f64 / insert_secs;
    eprintln!("pg insert: {insert_rate:.0} rows/s");
    pg.batch_execute("DROP TABLE bench_likes_ref").await?;

    let mut runs = Vec::new();
    for &batch in &args.batches {
        pg.batch_execute("TRUNCATE likes, post_like_counts, stream_checkpoints")
            .await?;
        pg.batch_execute("VACUUM ANALYZE").await?;
        for stream in keys::all_streams() {
            let _: redis::RedisResult<i64> = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(&stream)
                .arg("sync-daemon")
                .query_async(&mut conn)
                .await;
        }
        let mut config = sync_daemon::Config::new(&args.redis, &args.postgres);
        config.batch_max = batch;
        config.migrate = false;
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let started = Instant::now();
        let daemon = tokio::spawn(sync_daemon::run(config, async move {
            let _ = rx.await;
        }));
        wait_committed(&pg, &targets).await?;
        let secs = started.elapsed().as_secs_f64();
        let _ = stop.send(());
        daemon.await??;
        let applied: i64 = pg
            .query_one("SELECT count(*) FROM likes", &[])
            .await?
            .get(0);
        anyhow::ensure!(applied as u64 == args.likes, "applied {applied}");
        let rate = args.likes as f64 / secs;
        eprintln!(
            "daemon, batch {batch}: {rate:.0} events/s ({:.2}× pg insert)",
            rate / insert_rate
        );
        runs.push(json!({
            "batch_max": batch,
            "seconds": secs,
            "events_per_sec": rate,
            "vs_pg_insert": rate / insert_rate,
            "vs_redis_read": rate / read_rate,
        }));
    }
    // And back: Redis lost, rebuilt from what was just persisted.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    let rehydrated = sync_daemon::rehydrate::rehydrate(&args.postgres, &args.redis).await?;
    anyhow::ensure!(rehydrated.likes == args.likes, "rehydrated {rehydrated:?}");
    let rehydrate_secs = rehydrated.millis as f64 / 1000.0;
    eprintln!(
        "rehydrate: {} likes in {rehydrate_secs:.1} s",
        rehydrated.likes
    );
    // Steady load: likes at a fixed rate while the daemon (default batching) keeps up.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    pg.batch_execute("TRUNCATE likes, post_like_counts, stream_checkpoints")
        .await?;
    let sustained = sustained(&args, &conn, &pg).await?;
    eprintln!("sustained: {sustained}");
    drop(pg);
    let _ = driver.await;
    println!(
        "{}",
        json!({
            "likes": args.likes,
            "posts": args.posts,
            "fill_likes_per_sec": args.likes as f64 / fill_secs,
            "redis_read_per_sec": read_rate,
            "pg_insert_rows_per_sec": insert_rate,
            "runs": runs,
            "rehydrate_secs": rehydrate_secs,
            "sustained": sustained,
        })
    );
    Ok(())
}

/// Writes `likes` distinct (post, user) likes through like.lua, 4 connections, pipelined.
async fn fill(
    conn: &redis::aio::MultiplexedConnection,
    likes: u64,
    posts: u64,
) -> anyhow::Result<()> {
    let mut c = conn.clone();
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::LIKE.source)
        .query_async(&mut c)
        .await?;
    let ts = likes_core::time::rfc3339_ms(1_795_812_736_123);
    let tasks = 4u64;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mut c = conn.clone();
        let ts = ts.clone();
        handles.push(tokio::spawn(async move {
            let mut n = t;
            while n < likes {
                let mut pipe = redis::pipe();
                for _ in 0..500 {
                    if n >= likes {
                        break;
                    }
                    like_call(&mut pipe, 1 + n % posts, 1 + n / posts, &ts)?;
                    n += tasks;
                }
                let _: () = pipe.query_async(&mut c).await?;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}

/// The last entry id of every stream.
async fn last_ids(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<Vec<(String, (i64, i64))>> {
    let mut out = Vec::new();
    for stream in keys::all_streams() {
        let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        if let Some((id, _)) = last.first() {
            let pos: sync_daemon::checkpoint::StreamPos = id.parse()?;
            out.push((stream, (pos.ms as i64, pos.seq as i64)));
        }
    }
    Ok(out)
}

/// Every like in every stream, read and decoded.
async fn read_all(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut rows = Vec::new();
    for stream in keys::all_streams() {
        let mut start = "-".to_owned();
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(REF_CHUNK)
                .query_async(conn)
                .await?;
            let Some(last) = reply.ids.last().map(|e| e.id.clone()) else {
                break;
            };
            for entry in reply.ids {
                let fields: Vec<(String, Vec<u8>)> = entry
                    .map
                    .into_iter()
                    .map(|(k, v)| match v {
                        redis::Value::BulkString(b) => (k, b),
                        other => (k, format!("{other:?}").into_bytes()),
                    })
                    .collect();
                if let Ok(StreamEvent::Like { post, user, .. }) = StreamEvent::decode(&fields) {
                    rows.push((post.get() as i64, user.get() as i64));
                }
            }
            start = format!("({last}");
        }
    }
    Ok(rows)
}

/// Waits until every stream's checkpoint reaches its last entry (committed in PostgreSQL).
async fn wait_committed(
    pg: &tokio_postgres::Client,
    targets: &[(String, (i64, i64))],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let rows = pg
            .query(
                "SELECT stream, last_ms, last_seq FROM stream_checkpoints",
                &[],
            )
            .await?;
        let done = targets.iter().all(|(stream, target)| {
            rows.iter().any(|r| {
                r.get::<_, &str>(0) == stream && (r.get::<_, i64>(1), r.get::<_, i64>(2)) >= *target
            })
        });
        if done {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "not drained within an hour");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Likes at `args.rate` for `args.sustain_secs` while the daemon runs; the lag it keeps.
async fn sustained(
    args: &Args,
    conn: &redis::aio::MultiplexedConnection,
    pg: &tokio_postgres::Client,
) -> anyhow::Result<serde_json::Value> {
    let mut config = sync_daemon::Config::new(&args.redis, &args.postgres);
    config.migrate = false;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(sync_daemon::run(config, async move {
        let _ = rx.await;
    }));
    let ts = likes_core::time::rfc3339_ms(1_795_812_736_123);
    // Several producers, so one slow reply does not hold the whole rate back.
    let producers = 4u64;
    let per_tick = (args.rate / 100 / producers).max(1);
    let mut handles = Vec::new();
    for t in 0..producers {
        let mut c = conn.clone();
        let (posts, secs, ts) = (args.posts, args.sustain_secs, ts.clone());
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let started = Instant::now();
            let mut n = t;
            let mut sent = 0u64;
            while started.elapsed() < Duration::from_secs(secs) {
                tick.tick().await;
                let mut pipe = redis::pipe();
                for _ in 0..per_tick {
                    like_call(&mut pipe, 1 + n % posts, 1 + n / posts, &ts)?;
                    n += producers;
                    sent += 1;
                }
                let _: () = pipe.query_async(&mut c).await?;
            }
            anyhow::Ok((sent, started.elapsed().as_secs_f64()))
        }));
    }
    let mut c = conn.clone();
    let mut samples = Vec::new();
    while !handles.iter().all(|h| h.is_finished()) {
        samples.push(lag_ms(&mut c, pg).await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut produced, mut secs) = (0, 0f64);
    for h in handles {
        let (n, s) = h.await??;
        produced += n;
        secs = secs.max(s);
    }
    let targets = last_ids(&mut c).await?;
    let started = Instant::now();
    wait_committed(pg, &targets).await?;
    let catch_up = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    daemon.await??;
    samples.sort_unstable();
    let pct = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok(json!({
        "target_rate": args.rate,
        "achieved_rate": produced as f64 / secs,
        "seconds": secs,
        "lag_samples": samples.len(),
        "lag_p50_ms": pct(0.5),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": pct(1.0),
        "catch_up_after_stop_secs": catch_up,
    }))
}

fn like_call(pipe: &mut redis::Pipeline, post: u64, user: u64, ts: &str) -> anyhow::Result<()> {
    let post = PostId::new(post).context("post id")?;
    let user = UserId::new(user).context("user id")?;
    let k = PostKeys::new(post);
    pipe.cmd("EVALSHA")
        .arg(scripts::LIKE.sha1)
        .arg(5)
        .arg(&k.post)
        .arg(&k.likers)
        .arg(&k.recent)
        .arg(&k.stream)
        .arg(&k.top)
        .arg("like")
        .arg(post.get())
        .arg(user.get())
        .arg(ts)
        .arg("0")
        .arg(events::SCHEMA_VERSION)
        .arg(scripts::RECENT_LIKERS_CAP)
        .arg(&k.like_channel)
        .arg(post.to_string())
        .ignore();
    Ok(())
}

/// The age of the oldest entry not committed yet, over every stream (0 when all are).
async fn lag_ms(
    conn: &mut redis::aio::MultiplexedConnection,
    pg: &tokio_postgres::Client,
) -> anyhow::Result<u64> {
    let rows = pg
        .query(
            "SELECT stream, last_ms, last_seq FROM stream_checkpoints",
            &[],
        )
        .await?;
    let mut pipe = redis::pipe();
    for stream in keys::all_streams() {
        let from = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == stream && r.get::<_, i64>(1) >= 0)
            .map_or_else(
                || "-".to_owned(),
                |r| format!("({}-{}", r.get::<_, i64>(1), r.get::<_, i64>(2)),
            );
        pipe.cmd("XRANGE")
            .arg(&stream)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(1);
    }
    let firsts: Vec<Vec<(String, redis::Value)>> = pipe.query_async(conn).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let mut lag = 0;
    for first in firsts {
        if let Some((id, _)) = first.first() {
            let pos: sync_daemon::checkpoint::StreamPos = id.parse()?;
            lag = lag.max(now_ms.saturating_sub(pos.ms));
        }
    }
    Ok(lag)
}

//! Bytes per like of the dedupe structure, next to a plain Redis SET holding the same user ids.
//!
//! Likes go through the real like script (pipelined, so a million takes seconds); the size is
//! Redis's own `MEMORY USAGE … SAMPLES 0` (exact) of the key, divided by the number of likes.

use anyhow::Context;
use likes_core::keys::PostKeys;
use likes_core::scripts::{self, CardinalityCall, LikeCall};
use likes_core::{PostId, UserId};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    redis: String,
    /// Distinct users liking one post.
    #[arg(long, default_value_t = 1_000_000)]
    likes: u64,
    /// Post id to use (pick an unused one).
    #[arg(long, default_value_t = 900_000_001)]
    post: u64,
    /// Every `stride`-th user id likes (1 = dense ids 1..=likes; larger spreads them out).
    #[arg(long, default_value_t = 1)]
    stride: u64,
}

#[derive(Serialize)]
struct Report {
    likes: u64,
    stride: u64,
    roaring_bytes: u64,
    roaring_bytes_per_like: f64,
    cardinality: u64,
    set_bytes: u64,
    set_bytes_per_like: f64,
    ratio_set_over_roaring: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = redis::Client::open(args.redis.as_str()).context("redis url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting")?;
    let post = PostId::new(args.post).context("post id")?;
    let k = PostKeys::new(post);
    let set_key = format!("bench:set:{}", args.post);
    // Before and after the run: what it measures starts empty and is not left behind.
    let mut clear = redis::cmd("DEL");
    clear
        .arg(&k.likers)
        .arg(&k.post)
        .arg(&k.recent)
        .arg(&set_key);
    let _: () = clear.query_async(&mut conn).await?;
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::LIKE.source)
        .query_async(&mut conn)
        .await?;

    let batch = 2_000u64;
    let mut done = 0u64;
    while done < args.likes {
        let n = batch.min(args.likes - done);
        let mut pipe = redis::pipe();
        for i in 0..n {
            let user = (done + i) * args.stride + 1;
            let user = UserId::new(user).context("user id")?;
            let call = LikeCall {
                post,
                user,
                on: true,
                ts: "2026-01-01T00:00:00.000Z".into(),
                require_post: false,
            };
            pipe.cmd("EVALSHA")
                .arg(scripts::LIKE.sha1)
                .arg(5)
                .arg(&call.keys())
                .arg(&call.args())
                .ignore();
            pipe.cmd("SADD").arg(&set_key).arg(user.get()).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
        done += n;
    }
    // The benchmark's stream entries are not part of the structure being measured.
    let _: () = redis::cmd("DEL")
        .arg(&k.stream)
        .query_async(&mut conn)
        .await?;

    let usage = |key: String| {
        let mut conn = conn.clone();
        async move {
            let bytes: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await?;
            anyhow::Ok(bytes)
        }
    };
    let roaring = usage(k.likers.clone()).await?;
    let set = usage(set_key.clone()).await?;
    let call = CardinalityCall { post };
    let cardinality: u64 = redis::cmd("EVAL")
        .arg(scripts::CARDINALITY.source)
        .arg(call.keys().len())
        .arg(&call.keys())
        .query_async(&mut conn)
        .await?;
    let _: () = clear.query_async(&mut conn).await?;

    let per = |b: u64| b as f64 / args.likes as f64;
    let report = Report {
        likes: args.likes,
        stride: args.stride,
        roaring_bytes: roaring,
        roaring_bytes_per_like: per(roaring),
        cardinality,
        set_bytes: set,
        set_bytes_per_like: per(set),
        ratio_set_over_roaring: set as f64 / roaring.max(1) as f64,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

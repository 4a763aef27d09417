//! `likes-bench seed`: creates the posts the like benchmarks cycle through, with the real `post`
//! script, so likes on them pass the script's "post exists" check exactly as in production.

use anyhow::Context;
use likes_core::api::User;
use likes_core::scripts::{self, PostCall};
use likes_core::{PostId, UserId, keys};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    redis: String,
    /// Posts `p_1` to `p_N`.
    #[arg(long, default_value_t = 50)]
    posts: u64,
    /// `--redis` is a Redis Cluster node: route each post's script by its slot.
    #[arg(long)]
    cluster: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.cluster {
        let client = redis::cluster::ClusterClient::new(vec![args.redis.as_str()])?;
        let conn = client.get_async_connection().await?;
        seed(conn, args.posts).await
    } else {
        let client = redis::Client::open(args.redis.as_str())?;
        let conn = client.get_multiplexed_async_connection().await?;
        seed(conn, args.posts).await
    }
}

/// Creates posts 1..=`posts` on `conn`, one `post` script call each.
async fn seed(mut conn: impl redis::aio::ConnectionLike, posts: u64) -> anyhow::Result<()> {
    let author = User {
        id: UserId::new(1).context("user id")?,
        name: "bench".into(),
    };
    let script = redis::Script::new(scripts::POST.source);
    for raw in 1..=posts {
        let call = PostCall {
            post: PostId::new(raw).context("post id")?,
            author: &author,
            caption: "",
            image: "00000000000000000000000000000000",
            width: 1080,
            height: 1080,
            created_at: "2026-01-01T00:00:00.000Z",
        };
        let mut invocation = script.prepare_invoke();
        for k in call.keys() {
            invocation.key(k);
        }
        for a in call.args() {
            invocation.arg(a);
        }
        let _: i64 = invocation.invoke_async(&mut conn).await?;
    }
    let _: () = redis::cmd("SET")
        .arg(keys::POST_SEQ)
        .arg(posts)
        .query_async(&mut conn)
        .await?;
    println!(
        "{}",
        serde_json::json!({ "target": "seed", "posts": posts })
    );
    Ok(())
}

//! Current like counts, read from the post hashes the like script maintains.

use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field};
use redis::aio::ConnectionManager;

/// The current count of each post, in order; a post without a hash (unknown, or not created
/// yet) counts 0. One pipeline of `HGET`s, one round trip.
pub async fn read_counts(
    redis: &ConnectionManager,
    posts: &[PostId],
) -> redis::RedisResult<Vec<u64>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for post in posts {
        pipe.hget(PostKeys::new(*post).post, post_field::LIKES);
    }
    let mut conn = redis.clone();
    let counts: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
    Ok(counts.into_iter().map(Option::unwrap_or_default).collect())
}

//! Current like counts, read from the post hashes the like script maintains.

use std::collections::BTreeMap;

use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field, shard_of};
use service_kit::redis::Lazy;

/// The current count of each post, in order; a post without a hash (unknown, or not created
/// yet) counts 0. One pipeline of `HGET`s per shard, all sent at once: a pipeline must stay in
/// one slot on a cluster, and on a single Redis they share one round trip.
pub async fn read_counts(redis: &Lazy, posts: &[PostId]) -> redis::RedisResult<Vec<u64>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let conn = redis.get().await?;
    let mut by_shard: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, post) in posts.iter().enumerate() {
        by_shard.entry(shard_of(*post)).or_default().push(i);
    }
    let reads = by_shard.values().map(|indexes| {
        let mut pipe = redis::pipe();
        for &i in indexes {
            pipe.hget(PostKeys::new(posts[i]).post, post_field::LIKES);
        }
        let mut conn = conn.clone();
        async move { pipe.query_async::<Vec<Option<u64>>>(&mut conn).await }
    });
    let mut counts = vec![0; posts.len()];
    for (indexes, read) in by_shard
        .values()
        .zip(futures::future::try_join_all(reads).await?)
    {
        for (&i, count) in indexes.iter().zip(read) {
            counts[i] = count.unwrap_or_default();
        }
    }
    Ok(counts)
}

//! The Redis key scheme. Every key a single script touches carries the same Redis Cluster hash
//! tag (the `{…}` part), so each script runs on one node when Redis is sharded.
//!
//! Posts are spread over [`SHARDS`] tags by id. A post's count, dedupe structure and recent
//! likers live under its shard's tag together with that shard's event stream and `top` index,
//! which is what lets one like be a single atomic script. Users live under the `{users}` tag.

use crate::ids::{PostId, UserId};

/// Number of post shards. Changing it remaps every post, so it is fixed for a deployment.
pub const SHARDS: u16 = 16;

/// What a shard's Pub/Sub channels carry. The channels are sharded (`SPUBLISH`/`SSUBSCRIBE`),
/// one per shard and kind, named `{s<shard>}:<kind>` so that on a Redis Cluster each lives on
/// the node of its shard and the like script can publish on it atomically (same slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Like count changes (`{"post_id","likes","ts"}`).
    Like,
    /// New posts (the post as JSON).
    Post,
}

impl Channel {
    /// The kind's suffix in a channel name.
    pub const fn kind(self) -> &'static str {
        match self {
            Channel::Like => "like_event",
            Channel::Post => "post_event",
        }
    }

    /// Every shard channel of this kind.
    pub fn all(self) -> impl Iterator<Item = String> {
        Shard::all().map(move |s| s.channel(self))
    }

    /// The kind and shard of a channel name, `None` for a name that is not a shard channel.
    pub fn parse(name: &str) -> Option<(Channel, Shard)> {
        let rest = name.strip_prefix("{s")?;
        let (digits, kind) = rest.split_once("}:")?;
        let shard: u16 = digits.parse().ok()?;
        // Only the canonical spelling: `{s03}` is another slot than `{s3}`.
        if shard >= SHARDS || shard.to_string() != digits {
            return None;
        }
        let channel = [Channel::Like, Channel::Post]
            .into_iter()
            .find(|c| c.kind() == kind)?;
        Some((channel, Shard(shard)))
    }
}

/// Every shard channel of every kind: what a hub subscribes to.
pub fn all_channels() -> Vec<String> {
    Channel::Like.all().chain(Channel::Post.all()).collect()
}

/// Global counter of user ids (`INCR`).
pub const USER_SEQ: &str = "{users}:seq";
/// Hash `user id → display name`, one key so a page of likers is one `HMGET`.
pub const USER_NAMES: &str = "{users}:names";
/// Stream of user creations, consumed by the sync daemon.
pub const USER_STREAM: &str = "{users}:events";

/// Global counter of post ids (`INCR`). Ids grow with creation time, which is what makes the
/// `new` feed's cursor (an id) never skip or repeat a post.
pub const POST_SEQ: &str = "{posts}:seq";

/// Fields of a post hash, written by `post.lua` and read by `feed.lua` and the sync daemon.
pub mod post_field {
    pub const ID: &str = "id";
    pub const LIKES: &str = "likes";
    pub const AUTHOR: &str = "author";
    pub const AUTHOR_NAME: &str = "author_name";
    pub const CAPTION: &str = "caption";
    pub const IMAGE: &str = "image";
    pub const WIDTH: &str = "width";
    pub const HEIGHT: &str = "height";
    pub const CREATED_AT: &str = "created_at";
}

/// Fields of an image hash ([`image_key`]): each variant's bytes, its ETag and its size in
/// pixels (decimal), all written by one `HSET` so the sync daemon never decodes an image to
/// learn its size. Hashes written before the size fields existed have bytes and ETags only.
pub mod image_field {
    pub const FULL: &str = "full";
    pub const THUMB: &str = "thumb";
    pub const FULL_ETAG: &str = "full_etag";
    pub const THUMB_ETAG: &str = "thumb_etag";
    pub const FULL_WIDTH: &str = "full_width";
    pub const FULL_HEIGHT: &str = "full_height";
    pub const THUMB_WIDTH: &str = "thumb_width";
    pub const THUMB_HEIGHT: &str = "thumb_height";
}

/// The hash holding an image's variants. Images are content-addressed and immutable; the key
/// carries no tag, so images spread over every node of a cluster by their own hash.
pub fn image_key(image_id: &str) -> String {
    format!("img:{image_id}")
}

/// The counter of one subject's hits in one rate-limit window (see `rate.rs`, `lua/rate.lua`).
/// No hash tag: each counter is its own slot, touched alone.
pub fn rate_key(scope: &str, subject: &crate::rate::Subject) -> String {
    format!("rate:{scope}:{subject}")
}

/// The shard a post belongs to.
pub fn shard_of(post: PostId) -> u16 {
    (post.get() % u64::from(SHARDS)) as u16
}

/// The keys of one post shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard(pub u16);

impl Shard {
    /// The shard of `post`.
    pub fn of(post: PostId) -> Self {
        Self(shard_of(post))
    }

    /// Every shard, for consumers that read all streams.
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..SHARDS).map(Shard)
    }

    /// The shard's event stream, consumed by the sync daemon.
    pub fn stream(self) -> String {
        format!("{{s{}}}:events", self.0)
    }

    /// The shard's sorted set of post ids scored by id (`sort=new`).
    pub fn new_index(self) -> String {
        format!("{{s{}}}:new", self.0)
    }

    /// The shard's sorted set of post ids by like count (`sort=top`).
    pub fn top(self) -> String {
        format!("{{s{}}}:top", self.0)
    }

    /// The shard's sharded Pub/Sub channel of `kind` (see [`Channel`]).
    pub fn channel(self, kind: Channel) -> String {
        format!("{{s{}}}:{}", self.0, kind.kind())
    }
}

/// The kinds of a post's own keys, `{s<shard>}:<kind>:<post id>`. `feed.lua` derives a post's
/// keys from its shard index's tag and gets these as arguments, so they are spelled only here.
pub mod post_key {
    /// The record hash (with the `likes` count).
    pub const RECORD: &str = "post";
    /// The roaring structure of who likes the post.
    pub const LIKERS: &str = "likers";
    /// The capped list of recent likers.
    pub const RECENT: &str = "recent";
}

/// The keys of one post, all under its shard's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostKeys {
    /// Hash with the post record and its `likes` count.
    pub post: String,
    /// Hash of roaring containers: who likes the post (see `lua/roaring.lua`).
    pub likers: String,
    /// List of the most recent likers' ids, newest first, capped.
    pub recent: String,
    /// The shard's event stream.
    pub stream: String,
    /// The shard's `top` index.
    pub top: String,
    /// The shard's `new` index.
    pub new_index: String,
    /// The shard's channel of like count changes.
    pub like_channel: String,
    /// The shard's channel of new posts.
    pub post_channel: String,
}

impl PostKeys {
    /// The keys for `post`.
    pub fn new(post: PostId) -> Self {
        let shard = Shard::of(post);
        let tag = format!("{{s{}}}", shard.0);
        let id = post.get();
        Self {
            post: format!("{tag}:{}:{id}", post_key::RECORD),
            likers: format!("{tag}:{}:{id}", post_key::LIKERS),
            recent: format!("{tag}:{}:{id}", post_key::RECENT),
            stream: shard.stream(),
            top: shard.top(),
            new_index: shard.new_index(),
            like_channel: shard.channel(Channel::Like),
            post_channel: shard.channel(Channel::Post),
        }
    }
}

/// Every stream the sync daemon consumes.
pub fn all_streams() -> Vec<String> {
    std::iter::once(USER_STREAM.to_owned())
        .chain(Shard::all().map(Shard::stream))
        .collect()
}

/// The hash tag of a key (the text between the first `{` and the next `}`), as Redis Cluster
/// computes it; the whole key when there is no non-empty tag.
pub fn hash_tag(key: &str) -> &str {
    let Some(open) = key.find('{') else {
        return key;
    };
    match key[open + 1..].find('}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// The user id as stored in Redis (`HMGET {users}:names 42`).
pub fn user_field(user: UserId) -> String {
    user.get().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_post_shares_one_hash_tag() {
        for raw in [1, 2, 15, 16, 17, 1_000_003] {
            let post = PostId::new(raw).expect("nonzero");
            let k = PostKeys::new(post);
            let tag = hash_tag(&k.post);
            for key in [
                &k.likers,
                &k.recent,
                &k.stream,
                &k.top,
                &k.new_index,
                &k.like_channel,
                &k.post_channel,
            ] {
                assert_eq!(hash_tag(key), tag, "{key} vs {}", k.post);
            }
        }
    }

    #[test]
    fn posts_spread_over_all_shards() {
        let mut seen = std::collections::HashSet::new();
        for raw in 1..=u64::from(SHARDS) * 4 {
            seen.insert(shard_of(PostId::new(raw).expect("nonzero")));
        }
        assert_eq!(seen.len(), usize::from(SHARDS));
        assert_eq!(all_streams().len(), usize::from(SHARDS) + 1);
    }

    #[test]
    fn shard_channels_parse_back_and_nothing_else_does() {
        let all = all_channels();
        assert_eq!(all.len(), 2 * usize::from(SHARDS));
        for name in &all {
            let (kind, shard) = Channel::parse(name).expect(name);
            assert_eq!(&shard.channel(kind), name);
        }
        assert_eq!(
            Channel::parse("{s3}:like_event"),
            Some((Channel::Like, Shard(3)))
        );
        for bad in [
            "like_event",
            "{s16}:like_event",
            "{s03}:like_event",
            "{s}:like_event",
            "{s3}:likes",
            "{s3}like_event",
            "{users}:post_event",
        ] {
            assert_eq!(Channel::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_keys_share_the_users_tag() {
        assert_eq!(hash_tag(USER_SEQ), "users");
        assert_eq!(hash_tag(USER_NAMES), "users");
        assert_eq!(hash_tag(USER_STREAM), "users");
        assert_eq!(hash_tag("plain"), "plain");
        assert_eq!(hash_tag("a{}b"), "a{}b");
    }
}

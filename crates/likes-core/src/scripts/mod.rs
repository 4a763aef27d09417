//! The Lua scripts, with their SHA-1 computed at build time for `EVALSHA`.

use crate::api;
use crate::events;
use crate::ids::{PostId, UserId};
use crate::keys::{self, PostKeys};

/// A Redis Lua script and its SHA-1 (what `SCRIPT LOAD` would return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub name: &'static str,
    pub source: &'static str,
    pub sha1: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/scripts.rs"));

mod feed;

pub use feed::{FeedCall, FeedError, FeedPost, FeedRead, FeedReply};

/// How many recent likers a post keeps (the feed shows three; the rest absorbs unlikes).
pub const RECENT_LIKERS_CAP: u32 = 8;

/// One call of the [`LIKE`] script: its calling convention lives here, next to the script, so
/// every caller (the component, the native reference, benchmarks, tests) passes the same keys
/// and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikeCall {
    pub post: PostId,
    pub user: UserId,
    /// `true` to like, `false` to unlike.
    pub on: bool,
    /// RFC 3339 timestamp written into the event.
    pub ts: String,
    /// Refuse (`NOPOST`) when the post was never created.
    pub require_post: bool,
}

impl LikeCall {
    /// `KEYS`, in the order `like.lua` reads them.
    pub fn keys(&self) -> [String; 5] {
        let k = PostKeys::new(self.post);
        [k.post, k.likers, k.recent, k.stream, k.top]
    }

    /// `ARGV`, in the order `like.lua` reads them.
    pub fn args(&self) -> [String; 9] {
        [
            if self.on { "like" } else { "unlike" }.to_owned(),
            self.post.get().to_string(),
            self.user.get().to_string(),
            self.ts.clone(),
            if self.require_post { "1" } else { "0" }.to_owned(),
            events::SCHEMA_VERSION.to_string(),
            RECENT_LIKERS_CAP.to_string(),
            PostKeys::new(self.post).like_channel,
            self.post.to_string(),
        ]
    }
}

/// When a like is acknowledged (`like_durability`): once the primary has it (`memory`, Redis's
/// AOF fsync'd each second, so a lost primary may take its last second of likes), or once a
/// replica has it too (`replicated`: `WAIT 1` after the script; no replica in time is a 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeDurability {
    Memory,
    Replicated,
}

impl LikeDurability {
    /// Parses the variable; empty is `memory`, anything unknown is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "" | "memory" => Some(Self::Memory),
            "replicated" => Some(Self::Replicated),
            _ => None,
        }
    }

    /// The `WAIT` arguments (replicas, timeout in ms) to send after the like script, if any.
    pub fn wait_args(self, timeout_ms: u64) -> Option<[i64; 2]> {
        match self {
            Self::Memory => None,
            Self::Replicated => Some([1, i64::try_from(timeout_ms).unwrap_or(i64::MAX)]),
        }
    }
}

/// One call of the [`LIKERS`] script: a page of `post`'s likers with ids above `after`, at most
/// `limit` (callers ask for one more than they show, to learn whether another page exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikersCall {
    pub post: PostId,
    pub after: u64,
    pub limit: u32,
}

impl LikersCall {
    /// `KEYS`, in the order `likers.lua` reads them.
    pub fn keys(&self) -> [String; 2] {
        let k = PostKeys::new(self.post);
        [k.likers, k.post]
    }

    /// `ARGV`, in the order `likers.lua` reads them.
    pub fn args(&self) -> [String; 2] {
        [self.after.to_string(), self.limit.to_string()]
    }
}

/// One call of the [`SESSION`] script, which creates a user (see `lua/session.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCall<'a> {
    /// The validated display name.
    pub name: &'a str,
    /// RFC 3339 timestamp written into the `user` event.
    pub ts: &'a str,
}

impl SessionCall<'_> {
    /// `KEYS`, in the order `session.lua` reads them.
    pub fn keys(&self) -> [String; 3] {
        [keys::USER_SEQ, keys::USER_NAMES, keys::USER_STREAM].map(str::to_owned)
    }

    /// `ARGV`, in the order `session.lua` reads them.
    pub fn args(&self) -> [String; 3] {
        [
            self.name.to_owned(),
            self.ts.to_owned(),
            events::SCHEMA_VERSION.to_string(),
        ]
    }
}

/// One call of the [`CONTAINS`] script: whether `user` likes `post` (1 or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainsCall {
    pub post: PostId,
    pub user: UserId,
}

impl ContainsCall {
    /// `KEYS`, in the order `contains.lua` reads them.
    pub fn keys(&self) -> [String; 1] {
        [PostKeys::new(self.post).likers]
    }

    /// `ARGV`, in the order `contains.lua` reads them.
    pub fn args(&self) -> [String; 1] {
        [self.user.get().to_string()]
    }
}

/// One call of the [`CARDINALITY`] script: how many users like `post`, counted from the
/// dedupe structure rather than the counter (reconciliation, memory checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardinalityCall {
    pub post: PostId,
}

impl CardinalityCall {
    /// `KEYS`, in the order `cardinality.lua` reads them (it takes no `ARGV`).
    pub fn keys(&self) -> [String; 1] {
        [PostKeys::new(self.post).likers]
    }
}

/// One call of the [`RESTORE`] script: adds `users` to `post`'s likers in one pass (rehydrate,
/// reconciliation repairs); returns how many were not there before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreCall<'a> {
    pub post: PostId,
    pub users: &'a [UserId],
}

impl RestoreCall<'_> {
    /// `KEYS`, in the order `restore.lua` reads them.
    pub fn keys(&self) -> [String; 1] {
        [PostKeys::new(self.post).likers]
    }

    /// `ARGV`: the user ids, bare integers.
    pub fn args(&self) -> impl ExactSizeIterator<Item = String> + '_ {
        self.users.iter().map(|u| u.get().to_string())
    }
}

/// One call of the [`POST`] script, which creates a post (see `lua/post.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCall<'a> {
    pub post: PostId,
    pub author: &'a api::User,
    pub caption: &'a str,
    pub image: &'a str,
    pub width: u32,
    pub height: u32,
    pub created_at: &'a str,
}

impl PostCall<'_> {
    /// `KEYS`, in the order `post.lua` reads them.
    pub fn keys(&self) -> [String; 4] {
        let k = PostKeys::new(self.post);
        [k.post, k.new_index, k.top, k.stream]
    }

    /// The post as it is published on its shard's `post_event` channel (and relayed as
    /// `posts:created`).
    pub fn announcement(&self) -> api::Post {
        api::Post {
            id: self.post,
            author: self.author.clone(),
            caption: self.caption.to_owned(),
            image: api::PostImage::new(self.image.to_owned(), self.width, self.height),
            likes: 0,
            liked_by_me: None,
            recent_likers: Vec::new(),
            created_at: self.created_at.to_owned(),
        }
    }

    /// `ARGV`, in the order `post.lua` reads them.
    pub fn args(&self) -> [String; 11] {
        let message = serde_json::to_string(&self.announcement()).unwrap_or_default();
        [
            self.post.get().to_string(),
            self.author.id.get().to_string(),
            self.author.name.clone(),
            self.caption.to_owned(),
            self.image.to_owned(),
            self.width.to_string(),
            self.height.to_string(),
            self.created_at.to_owned(),
            events::SCHEMA_VERSION.to_string(),
            PostKeys::new(self.post).post_channel,
            message,
        ]
    }
}

/// Whether a Redis error message says the script cache does not know the SHA (after a restart
/// or `SCRIPT FLUSH`), so the caller must fall back to `EVAL` with the source.
pub fn is_noscript(message: &str) -> bool {
    message.to_ascii_lowercase().contains("noscript")
}

/// Whether a Redis error message is the like or likers script's "unknown post".
pub fn is_no_post(message: &str) -> bool {
    message.contains("NOPOST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_its_two_modes_and_nothing_else() {
        assert_eq!(LikeDurability::parse(""), Some(LikeDurability::Memory));
        assert_eq!(
            LikeDurability::parse("memory"),
            Some(LikeDurability::Memory)
        );
        assert_eq!(
            LikeDurability::parse(" replicated "),
            Some(LikeDurability::Replicated)
        );
        assert_eq!(LikeDurability::parse("fsync"), None);
        assert_eq!(LikeDurability::Memory.wait_args(200), None);
        assert_eq!(LikeDurability::Replicated.wait_args(200), Some([1, 200]));
    }

    #[test]
    fn digests_match_the_sources() {
        for s in ALL {
            assert_eq!(
                s.sha1,
                sha1_smol::Sha1::from(s.source).digest().to_string(),
                "{}",
                s.name
            );
        }
        assert!(
            LIKE.source.contains("local function r_add"),
            "like carries the prelude"
        );
        assert!(!SESSION.source.contains("r_add"));
        assert!(FEED.source.contains("local function r_contains"));
        for name in ["like", "likers", "feed", "post", "rate", "session"] {
            assert!(ALL.iter().any(|s| s.name == name), "{name} is in ALL");
        }
    }

    #[test]
    fn like_script_writes_the_fields_the_event_decoder_reads() {
        for field in crate::events::LIKE_FIELDS {
            assert!(
                LIKE.source.contains(&format!("'{field}'")),
                "like.lua must write `{field}`"
            );
        }
        for field in crate::events::POST_FIELDS {
            assert!(
                POST.source.contains(&format!("'{field}'")),
                "post.lua must write `{field}`"
            );
        }
        for field in crate::events::USER_FIELDS {
            assert!(
                SESSION.source.contains(&format!("'{field}'")),
                "session.lua must write `{field}`"
            );
        }
    }
}

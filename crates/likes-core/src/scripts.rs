//! The Lua scripts, with their SHA-1 computed at build time for `EVALSHA`.

use crate::api;
use crate::events;
use crate::ids::{PostId, UserId};
use crate::keys::{self, PostKeys, Shard};

/// A Redis Lua script and its SHA-1 (what `SCRIPT LOAD` would return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub name: &'static str,
    pub source: &'static str,
    pub sha1: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/scripts.rs"));

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
            keys::LIKE_CHANNEL.to_owned(),
            self.post.to_string(),
        ]
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

    /// The post as it is published on `post_event` (and relayed as `posts:created`).
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
            keys::POST_CHANNEL.to_owned(),
            message,
        ]
    }
}

/// One call of the [`FEED`] script: a feed page, or a single post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCall {
    Page(api::FeedQuery),
    One(PostId),
}

impl FeedCall {
    /// `KEYS`: every shard's index for a page (one Redis), the post's shard index for one post.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Page(q) => Shard::all()
                .map(|s| match q.sort {
                    api::FeedSort::New => s.new_index(),
                    api::FeedSort::Top => s.top(),
                })
                .collect(),
            Self::One(post) => vec![Shard::of(*post).new_index()],
        }
    }

    /// `ARGV` for a caller `viewer` (`None` = anonymous).
    pub fn args(&self, viewer: Option<UserId>) -> [String; 8] {
        let (mode, limit, cursor) = match self {
            Self::Page(q) => (q.sort.as_str(), q.limit, q.cursor.script_arg()),
            Self::One(post) => ("one", 1, post.get().to_string()),
        };
        let cursor = if cursor.is_empty() && mode == "new" {
            "0".to_owned()
        } else {
            cursor
        };
        [
            mode.to_owned(),
            limit.to_string(),
            viewer.map_or(0, UserId::get).to_string(),
            api::RECENT_LIKERS_SHOWN.to_string(),
            cursor,
            keys::post_key::RECORD.to_owned(),
            keys::post_key::LIKERS.to_owned(),
            keys::post_key::RECENT.to_owned(),
        ]
    }
}

/// A post as the feed script returns it: recent likers are ids, to be named with one `HMGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPost {
    pub id: PostId,
    pub author: api::User,
    pub caption: String,
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub created_at: String,
    pub likes: u64,
    pub liked: bool,
    pub recent: Vec<UserId>,
}

impl FeedPost {
    /// The post as clients see it; `names` resolves recent likers (a liker whose name is
    /// missing is skipped). `liked_by_me` is `false` for an anonymous caller.
    pub fn into_post(self, names: &dyn Fn(UserId) -> Option<String>) -> api::Post {
        api::Post {
            id: self.id,
            author: self.author,
            caption: self.caption,
            image: api::PostImage::new(self.image, self.width, self.height),
            likes: self.likes,
            liked_by_me: Some(self.liked),
            recent_likers: self.recent.into_iter().filter_map(names).collect(),
            created_at: self.created_at,
        }
    }
}

/// The feed script's reply: the posts and the script's `next` value (see [`api::FeedCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedReply {
    pub next: String,
    pub posts: Vec<FeedPost>,
}

/// Why a feed reply could not be read (a script/caller version mismatch, never user input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feed script reply is malformed at item {0}")]
pub struct ReplyError(pub usize);

impl FeedReply {
    /// Decodes the flat reply; `None` items are Redis nils.
    pub fn decode(items: &[Option<String>]) -> Result<Self, ReplyError> {
        let mut r = Reader { items, at: 0 };
        let next = r.text()?;
        let count = r.num()?;
        let mut posts = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(64));
        for _ in 0..count {
            let id = r.id(PostId::new)?;
            let author = api::User {
                id: r.id(UserId::new)?,
                name: r.text()?,
            };
            let caption = r.text()?;
            let image = r.text()?;
            let width = r.small()?;
            let height = r.small()?;
            let created_at = r.text()?;
            let likes = r.num()?;
            let liked = r.num()? == 1;
            let mut recent = Vec::new();
            for _ in 0..r.num()? {
                recent.push(r.id(UserId::new)?);
            }
            posts.push(FeedPost {
                id,
                author,
                caption,
                image,
                width,
                height,
                created_at,
                likes,
                liked,
                recent,
            });
        }
        Ok(Self { next, posts })
    }

    /// Every distinct user id whose name the page needs.
    pub fn recent_likers(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self
            .posts
            .iter()
            .flat_map(|p| p.recent.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

struct Reader<'a> {
    items: &'a [Option<String>],
    at: usize,
}

impl Reader<'_> {
    fn text(&mut self) -> Result<String, ReplyError> {
        let item = self.items.get(self.at).ok_or(ReplyError(self.at))?;
        self.at += 1;
        Ok(item.clone().unwrap_or_default())
    }

    fn num(&mut self) -> Result<u64, ReplyError> {
        let at = self.at;
        self.text()?.parse().map_err(|_| ReplyError(at))
    }

    fn small(&mut self) -> Result<u32, ReplyError> {
        let at = self.at;
        u32::try_from(self.num()?).map_err(|_| ReplyError(at))
    }

    fn id<T>(&mut self, new: fn(u64) -> Option<T>) -> Result<T, ReplyError> {
        let at = self.at;
        new(self.num()?).ok_or(ReplyError(at))
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

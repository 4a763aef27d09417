//! The Lua scripts, with their SHA-1 computed at build time for `EVALSHA`.

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

/// Every script, for `SCRIPT LOAD` at start-up and for tests.
pub const ALL: &[Script] = &[LIKE, LIKERS, CARDINALITY, CONTAINS, SESSION];

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

/// Whether a Redis error message says the script cache does not know the SHA (after a restart
/// or `SCRIPT FLUSH`), so the caller must fall back to `EVAL` with the source.
pub fn is_noscript(message: &str) -> bool {
    message.to_ascii_lowercase().contains("noscript")
}

/// Whether a Redis error message is the like script's "unknown post".
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
    }

    #[test]
    fn like_script_writes_the_fields_the_event_decoder_reads() {
        for field in crate::events::LIKE_FIELDS {
            assert!(
                LIKE.source.contains(&format!("'{field}'")),
                "like.lua must write `{field}`"
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

//! The Lua scripts, with their SHA-1 computed at build time for `EVALSHA`.

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

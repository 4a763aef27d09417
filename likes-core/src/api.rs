//! Request and response bodies of the edge HTTP API (`shared/api.md`), shared by the edge
//! components, the app and the load generator so no DTO is written twice.

use serde::{Deserialize, Serialize};

use crate::ids::{PostId, UserId};

/// Longest display name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Default and maximum page size of `GET /api/posts/{id}/likers`.
pub const LIKERS_PAGE_DEFAULT: u32 = 50;
pub const LIKERS_PAGE_MAX: u32 = 200;

/// `POST /api/session` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub name: String,
}

/// A user as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
}

/// `POST /api/session` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    pub token: String,
    pub user: User,
}

/// `PUT`/`DELETE /api/posts/{id}/like` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeResponse {
    pub post_id: PostId,
    pub likes: u64,
    pub liked: bool,
}

/// `GET /api/posts/{id}/likers` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LikersPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// `GET /api/config` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub realtime_url: String,
}

/// The Socket.IO contract between the realtime hub and its clients (namespace `/`).
pub mod realtime {
    use serde::{Deserialize, Serialize};

    use crate::ids::PostId;

    /// Client → hub: join the rooms of `{"posts": [ids]}`; the ack carries current counts.
    pub const SUBSCRIBE: &str = "subscribe";
    /// Client → hub: leave the rooms of `{"posts": [ids]}`.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Hub → subscribed clients: a post's newest count ([`LikesUpdated`]).
    pub const LIKES_UPDATED: &str = "likes:updated";
    /// Hub → every client: a new post.
    pub const POSTS_CREATED: &str = "posts:created";
    /// Most posts one socket may subscribe to.
    pub const MAX_POSTS_PER_SOCKET: usize = 500;

    /// Payload of [`LIKES_UPDATED`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LikesUpdated {
        pub post_id: PostId,
        pub likes: u64,
    }
}

/// A display name: 1 to [`MAX_NAME_CHARS`] characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("the name contains control characters")]
    Control,
}

impl DisplayName {
    /// Trims and validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page request for likers: ids strictly after `after` (0 = from the start), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikersQuery {
    pub after: u64,
    pub limit: u32,
}

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`limit` must be an integer from 1 to {0}")]
    Limit(u32),
    #[error("`cursor` is not a cursor this API returned")]
    Cursor,
}

impl LikersQuery {
    /// Parses `limit` and `cursor` from a raw query string; unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut out = Self {
            after: 0,
            limit: LIKERS_PAGE_DEFAULT,
        };
        for (key, value) in query_pairs(query) {
            match key {
                "limit" => {
                    out.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=LIKERS_PAGE_MAX).contains(n))
                        .ok_or(QueryError::Limit(LIKERS_PAGE_MAX))?;
                }
                "cursor" => {
                    out.after = value
                        .parse::<UserId>()
                        .map_err(|_| QueryError::Cursor)?
                        .get()
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The cursor that continues after `last` (the last user of a full page).
pub fn likers_cursor(last: UserId) -> String {
    last.to_string()
}

/// Splits `a=1&b=2` into pairs. Values in this API are ids and integers, which never need
/// percent-decoding, so none is done: an encoded value simply fails validation.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  ann ").expect("valid").as_str(), "ann");
        assert_eq!(DisplayName::parse("   "), Err(NameError::Empty));
        assert_eq!(
            DisplayName::parse(&"é".repeat(32)).map(|n| n.as_str().chars().count()),
            Ok(32)
        );
        assert_eq!(DisplayName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(DisplayName::parse("a\u{7}b"), Err(NameError::Control));
    }

    #[test]
    fn likers_query_defaults_and_limits() {
        assert_eq!(
            LikersQuery::parse(""),
            Ok(LikersQuery {
                after: 0,
                limit: 50
            })
        );
        assert_eq!(
            LikersQuery::parse("limit=200&cursor=u_9"),
            Ok(LikersQuery {
                after: 9,
                limit: 200
            })
        );
        assert_eq!(LikersQuery::parse("limit=0"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("limit=201"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("cursor=zz"), Err(QueryError::Cursor));
        assert_eq!(
            LikersQuery::parse("x=1&limit=5"),
            Ok(LikersQuery { after: 0, limit: 5 })
        );
    }
}

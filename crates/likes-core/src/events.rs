//! The event schema: stream entries the sync daemon consumes and Pub/Sub messages the realtime
//! hub relays. Every stream entry carries a schema version (`v`) so consumers can refuse what
//! they do not understand instead of misreading it.

use serde::{Deserialize, Serialize};

use crate::ids::{PostId, UserId};

/// Version written into every stream entry.
pub const SCHEMA_VERSION: u32 = 1;

/// Fields of a like/unlike stream entry, in the order `like.lua` writes them.
pub const LIKE_FIELDS: &[&str] = &["v", "kind", "post", "user", "likes", "ts"];
/// Fields of a user creation stream entry, in the order `session.lua` writes them.
pub const USER_FIELDS: &[&str] = &["v", "kind", "user", "name", "ts"];
/// Fields of a post creation stream entry, in the order `post.lua` writes them. The image bytes
/// are not in the stream: the daemon reads them from [`crate::keys::image_key`].
pub const POST_FIELDS: &[&str] = &[
    "v", "kind", "post", "user", "name", "caption", "image", "width", "height", "ts",
];

/// One decoded stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `user` now likes `post`; `likes` is the count right after.
    Like {
        post: PostId,
        user: UserId,
        likes: u64,
        ts: String,
    },
    /// `user` no longer likes `post`; `likes` is the count right after.
    Unlike {
        post: PostId,
        user: UserId,
        likes: u64,
        ts: String,
    },
    /// A new user.
    User {
        user: UserId,
        name: String,
        ts: String,
    },
    /// A new post by `user` (whose display name is `name`), showing image `image`.
    Post(NewPost),
}

/// A post creation, as the stream carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub post: PostId,
    pub user: UserId,
    pub name: String,
    pub caption: String,
    /// Content hash of the `full` variant; the bytes live under [`crate::keys::image_key`].
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub ts: String,
}

/// Why a stream entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("stream entry has no `{0}` field")]
    Missing(&'static str),
    #[error("stream entry field `{0}` is malformed")]
    Malformed(&'static str),
    #[error("stream entry has schema version {0}; this build understands {SCHEMA_VERSION}")]
    Version(u32),
    #[error("stream entry has unknown kind `{0}`")]
    Kind(String),
}

impl StreamEvent {
    /// Decodes an entry from its field/value pairs (as `XREADGROUP` returns them).
    pub fn decode<K: AsRef<str>, V: AsRef<[u8]>>(fields: &[(K, V)]) -> Result<Self, EventError> {
        let get = |name: &'static str| -> Result<&str, EventError> {
            let (_, v) = fields
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .ok_or(EventError::Missing(name))?;
            std::str::from_utf8(v.as_ref()).map_err(|_| EventError::Malformed(name))
        };
        let int = |name: &'static str| -> Result<u64, EventError> {
            get(name)?.parse().map_err(|_| EventError::Malformed(name))
        };
        let version = int("v")?;
        if version != u64::from(SCHEMA_VERSION) {
            return Err(EventError::Version(
                u32::try_from(version).unwrap_or(u32::MAX),
            ));
        }
        let user = UserId::new(int("user")?).ok_or(EventError::Malformed("user"))?;
        let ts = get("ts")?.to_owned();
        match get("kind")? {
            kind @ ("like" | "unlike") => {
                let post = PostId::new(int("post")?).ok_or(EventError::Malformed("post"))?;
                let likes = int("likes")?;
                Ok(if kind == "like" {
                    Self::Like {
                        post,
                        user,
                        likes,
                        ts,
                    }
                } else {
                    Self::Unlike {
                        post,
                        user,
                        likes,
                        ts,
                    }
                })
            }
            "user" => Ok(Self::User {
                user,
                name: get("name")?.to_owned(),
                ts,
            }),
            "post" => {
                let dim = |name: &'static str| -> Result<u32, EventError> {
                    u32::try_from(int(name)?).map_err(|_| EventError::Malformed(name))
                };
                Ok(Self::Post(NewPost {
                    post: PostId::new(int("post")?).ok_or(EventError::Malformed("post"))?,
                    user,
                    name: get("name")?.to_owned(),
                    caption: get("caption")?.to_owned(),
                    image: get("image")?.to_owned(),
                    width: dim("width")?,
                    height: dim("height")?,
                    ts,
                }))
            }
            other => Err(EventError::Kind(other.chars().take(32).collect())),
        }
    }
}

/// Published on the post's shard channel ([`crate::keys::Channel::Like`]) after every like or
/// unlike that changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeMessage {
    pub post_id: PostId,
    pub likes: u64,
    pub ts: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn decodes_likes_unlikes_and_users() {
        let like = entry(&[
            ("v", "1"),
            ("kind", "like"),
            ("post", "7"),
            ("user", "3"),
            ("likes", "12"),
            ("ts", "t"),
        ]);
        assert!(matches!(
            StreamEvent::decode(&like),
            Ok(StreamEvent::Like { likes: 12, .. })
        ));
        let unlike = entry(&[
            ("v", "1"),
            ("kind", "unlike"),
            ("post", "7"),
            ("user", "3"),
            ("likes", "11"),
            ("ts", "t"),
        ]);
        assert!(matches!(
            StreamEvent::decode(&unlike),
            Ok(StreamEvent::Unlike { likes: 11, .. })
        ));
        let user = entry(&[
            ("v", "1"),
            ("kind", "user"),
            ("user", "3"),
            ("name", "ann"),
            ("ts", "t"),
        ]);
        assert_eq!(
            StreamEvent::decode(&user),
            Ok(StreamEvent::User {
                user: UserId::new(3).expect("nonzero"),
                name: "ann".into(),
                ts: "t".into()
            })
        );
    }

    #[test]
    fn decodes_posts() {
        let post = entry(&[
            ("v", "1"),
            ("kind", "post"),
            ("post", "9"),
            ("user", "3"),
            ("name", "ann"),
            ("caption", "sunset"),
            ("image", "ab12"),
            ("width", "1080"),
            ("height", "720"),
            ("ts", "t"),
        ]);
        let Ok(StreamEvent::Post(p)) = StreamEvent::decode(&post) else {
            panic!("not a post: {:?}", StreamEvent::decode(&post));
        };
        assert_eq!(
            (p.post.get(), p.user.get(), p.width, p.height),
            (9, 3, 1080, 720)
        );
        assert_eq!(
            (p.name.as_str(), p.caption.as_str(), p.image.as_str()),
            ("ann", "sunset", "ab12")
        );
        let mut bad = post.clone();
        bad[7].1 = b"-1".to_vec();
        assert_eq!(
            StreamEvent::decode(&bad),
            Err(EventError::Malformed("width"))
        );
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let v2 = entry(&[
            ("v", "2"),
            ("kind", "like"),
            ("post", "7"),
            ("user", "3"),
            ("likes", "1"),
            ("ts", "t"),
        ]);
        assert_eq!(StreamEvent::decode(&v2), Err(EventError::Version(2)));
        let bad = entry(&[
            ("v", "1"),
            ("kind", "like"),
            ("post", "x"),
            ("user", "3"),
            ("likes", "1"),
            ("ts", "t"),
        ]);
        assert_eq!(
            StreamEvent::decode(&bad),
            Err(EventError::Malformed("post"))
        );
        let missing = entry(&[("v", "1"), ("kind", "like")]);
        assert_eq!(
            StreamEvent::decode(&missing),
            Err(EventError::Missing("user"))
        );
    }

    #[test]
    fn like_message_uses_wire_ids() {
        let json = r#"{"post_id":"p_7","likes":3,"ts":"2026-01-01T00:00:00Z"}"#;
        let m: LikeMessage = serde_json::from_str(json).expect("valid");
        assert_eq!(m.post_id.get(), 7);
    }
}

//! The Socket.IO contract between the realtime hub and its clients (namespace `/`): event
//! names, payloads and acks, written once for the hub, the app and the load generator.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::PostId;

/// Client → hub: join the rooms of a [`PostsRequest`]; the ack ([`PostsAck`]) carries current
/// counts.
pub const SUBSCRIBE: &str = "subscribe";
/// Client → hub: leave the rooms of a [`PostsRequest`]; the ack is an empty [`PostsAck`].
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

/// Payload of [`SUBSCRIBE`] and [`UNSUBSCRIBE`]: `{"posts": [ids]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostsRequest {
    pub posts: Vec<PostId>,
}

/// The posts of a [`PostsRequest`] payload, deduplicated in their first-seen order: what
/// the hub joins or leaves.
pub fn parse_posts(payload: serde_json::Value) -> Result<Vec<PostId>, serde_json::Error> {
    let req: PostsRequest = serde_json::from_value(payload)?;
    let mut seen = std::collections::HashSet::with_capacity(req.posts.len());
    Ok(req.posts.into_iter().filter(|p| seen.insert(*p)).collect())
}

/// Why the hub refused a request: `{"title", "detail"}`, as in every Socket.IO error ack of
/// this system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub title: String,
    pub detail: String,
}

/// The ack of [`SUBSCRIBE`] (`{"counts": {"p_1": 3, …}}`) and [`UNSUBSCRIBE`] (`{}`), or of
/// either when refused (`{"error": {…}}`, and nothing was joined or left).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostsAck {
    /// The current count of every post just subscribed to (0 for a post without a count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<PostId, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl PostsAck {
    /// A subscribe's answer: each post's current count.
    pub fn with_counts(counts: BTreeMap<PostId, u64>) -> Self {
        Self {
            counts: Some(counts),
            error: None,
        }
    }

    /// A refusal, with the reason a client can show.
    pub fn refused(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            counts: None,
            error: Some(ErrorBody {
                title: title.into(),
                detail: detail.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(n: u64) -> PostId {
        PostId::new(n).expect("nonzero")
    }

    #[test]
    fn requests_and_acks_have_their_wire_forms() {
        let req = PostsRequest {
            posts: vec![post(1), post(2)],
        };
        assert_eq!(
            serde_json::to_string(&req).ok().as_deref(),
            Some(r#"{"posts":["p_1","p_2"]}"#)
        );
        let counts = PostsAck::with_counts(BTreeMap::from([(post(7), 3), (post(8), 0)]));
        assert_eq!(
            serde_json::to_value(&counts).ok(),
            Some(serde_json::json!({"counts": {"p_7": 3, "p_8": 0}}))
        );
        assert_eq!(
            serde_json::to_string(&PostsAck::with_counts(BTreeMap::new())).ok(),
            Some(r#"{"counts":{}}"#.to_owned())
        );
        assert_eq!(
            serde_json::to_string(&PostsAck::default()).ok(),
            Some("{}".to_owned())
        );
        let refused = PostsAck::refused("Too many posts", "at most 500");
        assert_eq!(
            serde_json::to_value(&refused).ok(),
            Some(
                serde_json::json!({"error": {"title": "Too many posts", "detail": "at most 500"}})
            )
        );
        let back: PostsAck =
            serde_json::from_str(r#"{"error":{"title":"x","detail":"y"}}"#).expect("decodes");
        assert_eq!(
            (back.counts, back.error.map(|e| e.title)),
            (None, Some("x".into()))
        );
    }

    #[test]
    fn requests_are_deduplicated_in_first_seen_order() {
        let posts = parse_posts(serde_json::json!({"posts": ["p_2", "p_1", "p_2"]}));
        assert_eq!(posts.ok(), Some(vec![post(2), post(1)]));
        assert!(parse_posts(serde_json::json!({"posts": ["u_1"]})).is_err());
    }
}

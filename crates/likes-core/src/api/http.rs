//! The JSON bodies of the edge HTTP API: what each endpoint takes and answers.

use serde::{Deserialize, Serialize};

use super::query::{ImageSize, image_url};
use crate::ids::{PostId, UserId};

/// Largest JSON request body (`POST /api/session`), in bytes: a name of 32 characters needs
/// far less, and the limit holds on every runtime, whatever body limit the host has (Spin has
/// none of its own).
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024;
/// How many recent likers' names a post carries.
pub const RECENT_LIKERS_SHOWN: u32 = 3;

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

/// A post as clients see it (`GET /api/posts/{id}`, the feed, `posts:created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: PostId,
    pub author: User,
    pub caption: String,
    pub image: PostImage,
    pub likes: u64,
    /// Whether the caller likes the post; absent in `posts:created`, which goes to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liked_by_me: Option<bool>,
    /// Display names of up to [`RECENT_LIKERS_SHOWN`] recent likers, newest first.
    pub recent_likers: Vec<String>,
    pub created_at: String,
}

/// The image of a post: the `full` variant's size and where to fetch each variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostImage {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub thumb_url: String,
    pub full_url: String,
}

impl PostImage {
    /// The image `id` of `width`×`height`, with the URLs this API serves it at.
    pub fn new(id: String, width: u32, height: u32) -> Self {
        Self {
            thumb_url: image_url(&id, ImageSize::Thumb),
            full_url: image_url(&id, ImageSize::Full),
            id,
            width,
            height,
        }
    }
}

/// `GET /api/feed` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPage {
    pub posts: Vec<Post>,
    pub next_cursor: Option<String>,
}

/// `GET /api/config` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub realtime_url: String,
    /// Where the load lab's control endpoint is; absent unless the deployment enables the lab
    /// (on in `cargo xtask up`, off by default elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_url: Option<String>,
    /// The key a Socket.IO connection to the lab presents (`auth: { key }`); given only with
    /// `lab_url`. Served without CORS, so only the app's own pages can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_for_everyone_carry_no_liked_by_me() {
        let mut post = Post {
            id: PostId::new(1).expect("nonzero"),
            author: User {
                id: UserId::new(2).expect("nonzero"),
                name: "ann".into(),
            },
            caption: String::new(),
            image: PostImage::new("ab".repeat(16), 10, 10),
            likes: 0,
            liked_by_me: None,
            recent_likers: vec![],
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&post).expect("serialize");
        assert!(json.get("liked_by_me").is_none());
        post.liked_by_me = Some(false);
        let json = serde_json::to_value(&post).expect("serialize");
        assert_eq!(json["liked_by_me"], serde_json::json!(false));
    }

    #[test]
    fn post_images_carry_the_urls_of_their_variants() {
        let img = PostImage::new("ab".repeat(16), 1080, 720);
        assert_eq!(
            img.thumb_url,
            format!("/api/images/{}?size=thumb", "ab".repeat(16))
        );
    }
}

//! Request and response bodies of the edge HTTP API (`shared/api.md`) and the realtime hub's
//! Socket.IO contract, shared by the edge components, the hub, the app and the load generator
//! so no DTO is written twice.
//!
//! Split by job: `http.rs` bodies, `query.rs` query strings, `fields.rs` validated request
//! fields, and [`realtime`] the Socket.IO protocol. The first three are re-exported flat, at the
//! paths their users name (`likes_core::api::Post`).

mod fields;
mod http;
mod query;
pub mod realtime;

pub use fields::{
    Caption, CaptionError, DisplayName, MAX_CAPTION_CHARS, MAX_NAME_CHARS, NameError, is_image_id,
};
pub use http::{
    ClientConfig, FeedPage, LikeResponse, LikersPage, MAX_JSON_BODY_BYTES, Post, PostImage,
    RECENT_LIKERS_SHOWN, SessionRequest, SessionResponse, User,
};
pub use query::{
    FEED_PAGE_DEFAULT, FEED_PAGE_MAX, FeedCursor, FeedQuery, FeedSort, ImageSize,
    LIKERS_PAGE_DEFAULT, LIKERS_PAGE_MAX, LikersQuery, QueryError, image_url, likers_cursor,
    query_pairs,
};

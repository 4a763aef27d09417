//! Socket.IO handlers of namespace `/`: `subscribe` and `unsubscribe`, with acks.
//!
//! Each post is a room named by its wire id (`p_7`), so `likes:updated` for a post reaches only
//! the sockets subscribed to it. A request is validated whole before any room is joined: a bad
//! one gets an error ack, joins nothing, and the socket stays connected.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use likes_core::PostId;
use likes_core::api::realtime::{self, PostsAck};
use serde_json::Value;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use crate::counts::read_counts;
use crate::hub::{Hub, SharedHub};
use crate::metrics::inc;
use crate::rate::TokenBucket;

/// Why a client request was refused; sent back as `{"error":{"title","detail"}}`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Malformed(String),
    #[error(
        "a socket may be subscribed to at most {limit} posts; this request would make {would_be}"
    )]
    TooManyPosts { limit: usize, would_be: usize },
    #[error("more than {0} events per second; slow down")]
    RateLimited(u32),
    #[error("current counts are unavailable right now; updates will follow once they are")]
    Unavailable,
}

impl RequestError {
    fn title(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "Malformed payload",
            Self::TooManyPosts { .. } => "Too many posts",
            Self::RateLimited(_) => "Too many requests",
            Self::Unavailable => "Service unavailable",
        }
    }

    /// The ack body for this error.
    pub fn to_ack(&self) -> PostsAck {
        PostsAck::refused(self.title(), self.to_string())
    }
}

/// Decodes a request's posts (`{"posts": [ids]}`), deduplicated in their first-seen order.
fn parse_posts(data: Result<Value, impl std::fmt::Display>) -> Result<Vec<PostId>, RequestError> {
    let value = data.map_err(|e| RequestError::Malformed(format!("unreadable payload: {e}")))?;
    realtime::parse_posts(value)
        .map_err(|e| RequestError::Malformed(format!("expected {{\"posts\": [\"p_1\", …]}}: {e}")))
}

/// The connect handler: runs after the client already got its connect packet.
pub async fn on_connect(s: SocketRef) {
    tracing::debug!(sid = %s.id, "socket connected");
}

/// Registers the event handlers of a connecting socket. This is a connect *middleware* on
/// purpose: socketioxide sends the connect packet before it spawns the connect handler, so
/// handlers registered there can miss events that a client emits right after connecting (the
/// JS client flushes its buffered emits at that moment). Middlewares run before the packet.
pub async fn register(s: SocketRef, State(hub): State<SharedHub>) -> Result<(), Infallible> {
    let bucket = Arc::new(Mutex::new(TokenBucket::new(
        hub.config.events_per_second,
        Instant::now(),
    )));
    let b = Arc::clone(&bucket);
    s.on(
        realtime::SUBSCRIBE,
        move |s: SocketRef,
              State(hub): State<SharedHub>,
              TryData(data): TryData<Value>,
              ack: AckSender| {
            let b = Arc::clone(&b);
            async move {
                let reply = match admit(&hub, &b) {
                    Ok(()) => subscribe(&s, &hub, data.map_err(|e| e.to_string())).await,
                    Err(e) => Err(e),
                };
                answer(&hub, ack, reply);
            }
        },
    );
    s.on(
        realtime::UNSUBSCRIBE,
        move |s: SocketRef,
              State(hub): State<SharedHub>,
              TryData(data): TryData<Value>,
              ack: AckSender| {
            let b = Arc::clone(&bucket);
            async move {
                let reply =
                    admit(&hub, &b).and_then(|()| unsubscribe(&s, data.map_err(|e| e.to_string())));
                answer(&hub, ack, reply);
            }
        },
    );
    Ok(())
}

/// Counts the event and applies the socket's rate limit.
fn admit(hub: &Hub, bucket: &Mutex<TokenBucket>) -> Result<(), RequestError> {
    inc(&hub.metrics.client_events_in);
    let allowed = bucket
        .lock()
        .map(|mut b| b.try_take(Instant::now()))
        .unwrap_or(true);
    if allowed {
        Ok(())
    } else {
        Err(RequestError::RateLimited(hub.config.events_per_second))
    }
}

/// Sends the ack (a no-op when the client asked for none).
fn answer(hub: &Hub, ack: AckSender, reply: Result<PostsAck, RequestError>) {
    let body = reply.unwrap_or_else(|e| {
        inc(&hub.metrics.client_errors);
        tracing::debug!(error = %e, "client request refused");
        e.to_ack()
    });
    if let Err(e) = ack.send(&body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}

/// The post rooms a socket is in.
fn post_rooms(s: &SocketRef) -> HashSet<PostId> {
    s.rooms().iter().filter_map(|r| r.parse().ok()).collect()
}

/// Joins the posts' rooms, then answers their current counts. Joining first means no change
/// between the read and the join can be missed.
async fn subscribe(
    s: &SocketRef,
    hub: &Hub,
    data: Result<Value, String>,
) -> Result<PostsAck, RequestError> {
    let posts = parse_posts(data)?;
    let current = post_rooms(s);
    let would_be = current.len() + posts.iter().filter(|p| !current.contains(p)).count();
    let limit = hub.config.max_posts_per_socket;
    if would_be > limit {
        return Err(RequestError::TooManyPosts { limit, would_be });
    }
    s.join(posts.iter().map(ToString::to_string).collect::<Vec<_>>());
    let counts = read_counts(&hub.redis, &posts).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read counts for a subscribe ack");
        RequestError::Unavailable
    })?;
    let counts: BTreeMap<PostId, u64> = posts.iter().copied().zip(counts).collect();
    Ok(PostsAck::with_counts(counts))
}

/// Leaves the posts' rooms.
fn unsubscribe(s: &SocketRef, data: Result<Value, String>) -> Result<PostsAck, RequestError> {
    let posts = parse_posts(data)?;
    s.leave(posts.iter().map(ToString::to_string).collect::<Vec<_>>());
    Ok(PostsAck::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<PostId>, RequestError> {
        parse_posts(Ok::<_, String>(v))
    }

    #[test]
    fn parses_and_dedupes_posts() {
        let posts = parse(json!({"posts": ["p_2", "p_1", "p_2"]})).expect("valid");
        assert_eq!(posts.iter().map(|p| p.get()).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn refuses_malformed_payloads() {
        for bad in [
            json!(null),
            json!([]),
            json!({"post": ["p_1"]}),
            json!({"posts": "p_1"}),
            json!({"posts": ["u_1"]}),
            json!({"posts": [7]}),
        ] {
            let err = parse(bad.clone()).expect_err("malformed");
            let ack = serde_json::to_value(err.to_ack()).expect("an ack is JSON");
            assert_eq!(ack["error"]["title"], "Malformed payload", "{bad}");
            assert!(
                ack["error"]["detail"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
    }
}

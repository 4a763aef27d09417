//! The one task per hub that subscribes to Redis Pub/Sub and bridges it into Socket.IO
//! (socketioxide's "background task" pattern: it owns a `SocketIo` clone).
//!
//! It subscribes to every shard's channels (`SSUBSCRIBE`; on a cluster each on the node that
//! owns its slot). `like_event` changes go to the emitter (coalescing); `post_event` payloads
//! are broadcast as `posts:created`. Whenever messages may have been missed (the connection
//! lost, a cluster node gone, a slot moved to another node) it subscribes again, with
//! exponential backoff, and then pushes the current count of every post room that has sockets,
//! so clients converge even if messages were published while the hub was not subscribed.

use std::sync::Arc;
use std::time::Duration;

use likes_core::PostId;
use likes_core::events::LikeMessage;
use likes_core::keys::{self, Channel};
use serde_json::Value;
use service_kit::redis::{Event, Options, Redis};
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use crate::counts::read_counts;
use crate::hub::Hub;
use crate::metrics::inc;

pub use likes_core::api::realtime::POSTS_CREATED;

/// Longest wait for connecting and subscribing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts whose counts are read per pipeline during a resync.
const RESYNC_CHUNK: usize = 500;

/// Why one Pub/Sub session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("messages may have been missed: {0}")]
    Lost(&'static str),
    #[error("no PING answer within {0:?}")]
    PingTimeout(Duration),
    #[error("the emitter stopped")]
    EmitterGone,
}

/// Runs forever (the caller aborts it at shutdown).
pub async fn run(redis: Redis, io: SocketIo, hub: Arc<Hub>, changes: mpsc::Sender<(PostId, u64)>) {
    let min = hub.config.reconnect_min;
    let max = hub.config.reconnect_max.max(min);
    let mut backoff = min;
    let mut connected_before = false;
    loop {
        let ended = session(
            &redis,
            &io,
            &hub,
            &changes,
            &mut connected_before,
            &mut backoff,
        )
        .await;
        hub.set_redis_up(false);
        match ended {
            SessionEnd::EmitterGone => return,
            e => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Redis Pub/Sub lost; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
    }
}

/// One subscription: subscribe, resync, then pump messages until something fails or messages
/// may have been missed (on a cluster: a node's connection dropped, or a slot changed hands).
async fn session(
    redis: &Redis,
    io: &SocketIo,
    hub: &Hub,
    changes: &mpsc::Sender<(PostId, u64)>,
    connected_before: &mut bool,
    backoff: &mut Duration,
) -> SessionEnd {
    // Bounded, so a blackholed Redis (no RST) is retried instead of hanging on TCP timeouts.
    let options = Options::default().with_response_timeout(CONNECT_TIMEOUT);
    let channels = keys::all_channels();
    let subscribe = redis.subscribe_shards(&channels, &options);
    let mut subscription = match tokio::time::timeout(CONNECT_TIMEOUT, subscribe).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return e.into(),
        Err(_) => return SessionEnd::ConnectTimeout(CONNECT_TIMEOUT),
    };
    if *connected_before {
        inc(&hub.metrics.redis_reconnects);
        tracing::info!("Redis Pub/Sub subscribed again");
    } else {
        tracing::info!("Redis Pub/Sub subscribed");
    }
    *connected_before = true;
    *backoff = hub.config.reconnect_min;
    hub.set_redis_up(true);

    if let Err(e) = resync(io, hub, changes).await {
        // The messages that follow still flow; the counts are retried at the next reconnect.
        tracing::warn!(error = %e, "could not push current counts after connecting");
    }
    let ping_every = hub.config.redis_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            event = subscription.next() => match event {
                Event::Lost(why) => return SessionEnd::Lost(why),
                Event::Message(msg) => {
                    if let Err(end) = relay(io, hub, changes, &msg).await {
                        return end;
                    }
                }
            },
            _ = ping.tick() => {
                match tokio::time::timeout(ping_every, subscription.check()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return e.into(),
                    Err(_) => return SessionEnd::PingTimeout(ping_every),
                }
            }
        }
    }
}

/// Handles one Pub/Sub message. Undecodable messages are counted and dropped.
async fn relay(
    io: &SocketIo,
    hub: &Hub,
    changes: &mpsc::Sender<(PostId, u64)>,
    msg: &redis::Msg,
) -> Result<(), SessionEnd> {
    let payload = msg.get_payload_bytes();
    match Channel::parse(msg.get_channel_name()).map(|(kind, _)| kind) {
        Some(Channel::Like) => {
            inc(&hub.metrics.like_messages_in);
            match serde_json::from_slice::<LikeMessage>(payload) {
                Ok(m) => changes
                    .send((m.post_id, m.likes))
                    .await
                    .map_err(|_| SessionEnd::EmitterGone)?,
                Err(e) => {
                    inc(&hub.metrics.bad_messages_in);
                    tracing::warn!(error = %e, "undecodable like_event message dropped");
                }
            }
        }
        Some(Channel::Post) => {
            inc(&hub.metrics.post_messages_in);
            match serde_json::from_slice::<Value>(payload) {
                Ok(Value::Object(mut post)) => {
                    // The contract: `posts:created` carries the post without `liked_by_me`.
                    post.remove("liked_by_me");
                    if let Some(ns) = io.of("/") {
                        match ns.emit(POSTS_CREATED, &post).await {
                            Ok(()) => inc(&hub.metrics.post_emits_out),
                            Err(e) => {
                                tracing::debug!(error = %e, "posts:created not delivered to every socket")
                            }
                        }
                    }
                }
                _ => {
                    inc(&hub.metrics.bad_messages_in);
                    tracing::warn!("post_event message that is not a JSON object dropped");
                }
            }
        }
        None => tracing::debug!(
            channel = msg.get_channel_name(),
            "message on an unexpected channel ignored"
        ),
    }
    Ok(())
}

/// Pushes the current count of every post room that has sockets through the emitter.
async fn resync(
    io: &SocketIo,
    hub: &Hub,
    changes: &mpsc::Sender<(PostId, u64)>,
) -> anyhow::Result<()> {
    let Some(ns) = io.of("/") else { return Ok(()) };
    let rooms = ns.rooms().await?;
    let posts: Vec<PostId> = rooms.iter().filter_map(|r| r.parse().ok()).collect();
    for chunk in posts.chunks(RESYNC_CHUNK) {
        let counts = read_counts(&hub.redis, chunk).await?;
        for (post, likes) in chunk.iter().zip(counts) {
            changes
                .send((*post, likes))
                .await
                .map_err(|_| anyhow::anyhow!("the emitter stopped"))?;
        }
    }
    if !posts.is_empty() {
        tracing::info!(
            rooms = posts.len(),
            "pushed current counts after connecting"
        );
    }
    Ok(())
}

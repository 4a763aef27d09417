//! The task that turns count changes into coalesced `likes:updated` emits to post rooms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use likes_core::PostId;
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use crate::coalesce::Coalescer;
use crate::hub::Hub;
use crate::metrics::inc;

pub use likes_core::api::realtime::{LIKES_UPDATED, LikesUpdated};

/// Runs until every sender of `changes` is gone: offers each change to the coalescer, emits
/// what it lets through, and wakes at the next window end to emit what it held.
pub async fn run(
    io: SocketIo,
    hub: Arc<Hub>,
    window: Duration,
    mut changes: mpsc::Receiver<(PostId, u64)>,
) {
    let mut coalescer = Coalescer::new(window);
    loop {
        let deadline = coalescer.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = changes.recv() => {
                let Some((post, likes)) = change else { break };
                let now = Instant::now();
                for (post, likes) in coalescer.due(now) {
                    emit(&io, &hub, post, likes).await;
                }
                match coalescer.offer(post, likes, now) {
                    Some(likes) => emit(&io, &hub, post, likes).await,
                    None => inc(&hub.metrics.coalesced),
                }
            }
            () = sleep => {
                for (post, likes) in coalescer.due(Instant::now()) {
                    emit(&io, &hub, post, likes).await;
                }
            }
        }
    }
    tracing::debug!("emitter stopped");
}

async fn emit(io: &SocketIo, hub: &Hub, post: PostId, likes: u64) {
    let Some(ns) = io.of("/") else { return };
    let payload = LikesUpdated {
        post_id: post,
        likes,
    };
    match ns.to(post.to_string()).emit(LIKES_UPDATED, &payload).await {
        Ok(()) => inc(&hub.metrics.like_emits_out),
        Err(e) => tracing::debug!(error = %e, %post, "likes:updated not delivered to every socket"),
    }
}

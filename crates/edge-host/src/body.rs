//! Request bodies: buffered up to the configured limit, counted on the bytes actually received,
//! with or without `Content-Length`.
//!
//! A body that turns out too large is answered with 413 at once, while a spawned task keeps
//! reading (and discarding) the rest for a bounded number of bytes and time. That way a client
//! still uploading receives the 413 instead of a connection reset.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

/// Most bytes discarded after an early answer before the connection is dropped.
pub const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest time spent discarding after an early answer.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// Why a body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than `limit` bytes were declared or sent.
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// Reading failed (client went away, malformed chunking...).
    #[error("cannot read the request body: {0}")]
    Read(#[from] hyper::Error),
}

/// Reads the whole body if it fits in `limit` bytes. On [`BodyError::TooLarge`] the rest of the
/// body is drained in the background (see [`discard`]).
///
/// A declared length over the limit is refused before anything is read; if the client asked for
/// `Expect: 100-continue` the body is then never requested at all (no `100 Continue` is sent).
pub async fn read_limited(
    mut body: Incoming,
    limit: u64,
    expects_continue: bool,
) -> Result<Bytes, BodyError> {
    let hint = body.size_hint().lower();
    if hint > limit {
        if !expects_continue {
            discard(body);
        }
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = usize::try_from(hint.min(limit)).unwrap_or(0);
    let mut buffer = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() as u64 + data.len() as u64 > limit {
                discard(body);
                return Err(BodyError::TooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// Reads and drops what is left of `body` in a spawned task, at most [`DRAIN_MAX_BYTES`] for at
/// most [`DRAIN_MAX_TIME`], so an early response reaches a client that is still sending.
pub fn discard(mut body: Incoming) {
    if body.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut seen: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            }
            seen
        };
        match tokio::time::timeout(DRAIN_MAX_TIME, drain).await {
            Ok(seen) => tracing::debug!(bytes = seen, "discarded the rest of a refused body"),
            Err(_) => tracing::debug!("gave up discarding a refused body"),
        }
    });
}

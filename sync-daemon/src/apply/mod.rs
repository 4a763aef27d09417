//! Applying one batch of stream entries to PostgreSQL in ONE transaction: like rows inserted or
//! deleted idempotently, per-post counts moved only by rows that really changed, recent likers
//! lists moved forward, users upserted, posts inserted with their images (read from Redis,
//! content-addressed), undecodable entries parked, and the stream checkpoint written — all
//! committed together.
//!
//! Idempotence comes from two layers. The checkpoint (locked for the transaction) drops entries
//! already applied; and even without it (checkpoint lost, replay from the start) the like rows
//! are set-like (`ON CONFLICT DO NOTHING`, `DELETE` of what is there), the counts follow the
//! rows actually inserted/deleted, and posts and images are immutable (`ON CONFLICT DO
//! NOTHING`), so a replay changes none of them. (The recent likers lists are the exception: a
//! replay moves the replayed likers to the front again.)
//!
//! [`apply_batch`] orchestrates; each job has its file: `contiguity` (which entries continue
//! the stream), `park` (which entries cannot be stored), `fold` (the batch's net effect),
//! `sql` (the statements and writes) and `images` (copying images from Redis). All but `sql`
//! and `images` are pure.

mod contiguity;
pub mod fold;
pub(crate) mod images;
mod park;
mod sql;

use anyhow::Context;
use deadpool_postgres::Pool;
use likes_core::events::{EventError, StreamEvent};
use service_kit::redis::Conn;

use crate::checkpoint::{self, StreamPos};

pub use fold::{Folded, PostRow, fits, fold, replay_recent};

/// One stream entry as read from Redis, decoded (or not).
#[derive(Debug, Clone)]
pub struct Entry {
    pub pos: StreamPos,
    pub event: Result<StreamEvent, BadEntry>,
}

/// An entry that could not be decoded: kept verbatim so it can be parked, not lost.
#[derive(Debug, Clone)]
pub struct BadEntry {
    pub fields: String,
    pub error: String,
}

impl BadEntry {
    /// Wraps a decoding error with a readable rendering of the entry's fields.
    pub fn new(fields: &[(String, Vec<u8>)], error: &EventError) -> Self {
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            fields,
            error: error.to_string(),
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Entries at or below the checkpoint, dropped as already applied.
    pub skipped: usize,
    /// Entries applied (including parked ones).
    pub applied: usize,
    /// Like rows really inserted / deleted.
    pub inserted: u64,
    pub deleted: u64,
    /// Entries parked as undecodable.
    pub parked: usize,
    /// Every entry of the batch at or below this position is applied (or was before) and may
    /// be acknowledged; later ones were not applied (see `gap`).
    pub upto: StreamPos,
    /// The stream holds an entry, between the checkpoint and the end of this batch, that is
    /// not in it (pending at another consumer): only the part before it was applied (maybe
    /// nothing), since committing past it would skip it forever.
    pub gap: bool,
}

/// Applies `entries` (in stream order) of `stream` in one transaction and commits it.
///
/// Only entries that continue the stream right after the checkpoint are applied: at an entry
/// Redis holds but the batch lacks (delivered to another consumer, not applied yet) the batch
/// is cut and [`Applied::gap`] is set. Together with the locked checkpoint this makes any number of
/// consumers on one stream safe: none skips what another has not applied, none applies twice.
///
/// `reader` is the `(group, consumer)` that read `entries`: when no other consumer of the group
/// has anything pending, the batch is contiguous by construction and the stream is not read a
/// second time to prove it.
pub async fn apply_batch(
    pool: &Pool,
    redis: &mut Conn,
    stream: &str,
    reader: Option<(&str, &str)>,
    entries: &[Entry],
) -> anyhow::Result<Applied> {
    let Some(last) = entries.iter().map(|e| e.pos).max() else {
        return Ok(Applied::default());
    };
    let mut client = pool
        .get()
        .await
        .context("getting a PostgreSQL connection")?;
    let tx = client.transaction().await.context("BEGIN")?;
    let checkpoint = checkpoint::lock(&tx, stream).await?;
    let mut fresh = contiguity::after_checkpoint(entries, checkpoint);
    let skipped = entries.len() - fresh.len();
    if fresh.is_empty() {
        // Everything was applied before (a crash between COMMIT and XACK); nothing to write.
        tx.commit().await.context("COMMIT")?;
        return Ok(Applied {
            skipped,
            upto: last,
            ..Applied::default()
        });
    }

    // Apply the longest prefix that continues the stream; the rest waits (still pending with
    // us) until whoever holds the missing entry commits it, or until we claim it.
    let contiguous =
        contiguity::contiguous_len(redis, stream, reader, checkpoint, &fresh, last).await?;
    let gap = contiguous < fresh.len();
    fresh.truncate(contiguous);
    let Some(upto) = fresh.last().map(|e| e.pos) else {
        return Ok(Applied {
            skipped,
            upto: checkpoint.unwrap_or_default(),
            gap: true,
            ..Applied::default()
        });
    };

    let triage = park::triage(&fresh);
    let folded = fold(triage.good.iter().copied());
    let (inserted, deleted) = sql::apply_likes(&tx, &folded).await?;
    sql::upsert_users(&tx, &folded.users).await?;
    sql::upsert_posts(&tx, &folded.posts).await?;
    images::copy_images(&tx, redis, &folded.posts).await?;
    sql::park(&tx, stream, &triage.parked).await?;
    checkpoint::write(&tx, stream, upto).await?;
    tx.commit().await.context("COMMIT")?;
    Ok(Applied {
        skipped,
        applied: fresh.len(),
        inserted,
        deleted,
        parked: triage.parked.len(),
        upto,
        gap,
    })
}

/// An image run through the real upload pipeline, for the unit tests of image handling.
#[cfg(test)]
pub(crate) fn sample_image(w: u32, h: u32) -> likes_images::Processed {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 3]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a PNG");
    likes_images::process(&png, &likes_images::Limits::default()).expect("pipeline")
}

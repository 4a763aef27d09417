//! Copying posts' images from Redis (`img:<id>`) into `images`: both variants with their ETags
//! and sizes, as the upload stored them. The daemon never decodes an image: the sizes are
//! fields of the hash, and only a hash written before they were (see [`size`]) has its sizes
//! read from the JPEG header instead.

use std::collections::HashMap;

use anyhow::Context;
use deadpool_postgres::Transaction;
use likes_core::keys::{self, image_field as f};
use service_kit::redis::Conn;

use super::fold::PostRow;
use super::sql;

/// The content type of every variant: the upload pipeline re-encodes every image as JPEG
/// (`likes_images::CONTENT_TYPE`, which a test pins this to).
pub const CONTENT_TYPE: &str = "image/jpeg";

/// Where one variant lives in an image hash, and its name in `images.variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantFields {
    pub name: &'static str,
    pub bytes: &'static str,
    pub etag: &'static str,
    pub width: &'static str,
    pub height: &'static str,
}

/// The `full` variant.
pub const FULL: VariantFields = VariantFields {
    name: "full",
    bytes: f::FULL,
    etag: f::FULL_ETAG,
    width: f::FULL_WIDTH,
    height: f::FULL_HEIGHT,
};

/// The `thumb` variant.
pub const THUMB: VariantFields = VariantFields {
    name: "thumb",
    bytes: f::THUMB,
    etag: f::THUMB_ETAG,
    width: f::THUMB_WIDTH,
    height: f::THUMB_HEIGHT,
};

/// Copies the posts' images from Redis into `images`, skipping those PostgreSQL already has
/// (content-addressed, so a stored image never changes). A missing Redis key does not hold the
/// post back: it is logged and counted in `sync_missing_images_total`.
pub async fn copy_images(
    tx: &Transaction<'_>,
    redis: &mut Conn,
    posts: &[PostRow],
) -> anyhow::Result<()> {
    if posts.is_empty() {
        return Ok(());
    }
    let mut wanted: Vec<&str> = posts.iter().map(|p| p.image.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let known = sql::known_images(tx, &wanted).await?;
    wanted.retain(|id| !known.contains(*id));
    // A few at a time: each image is up to a few hundred KB.
    for chunk in wanted.chunks(16) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.hgetall(keys::image_key(id));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = pipe
            .query_async(redis)
            .await
            .context("reading images from Redis")?;
        let mut rows = ImageRows::default();
        for (id, fields) in chunk.iter().zip(hashes) {
            rows.push_image(id, &fields);
        }
        sql::insert_images(tx, CONTENT_TYPE, &rows).await?;
    }
    Ok(())
}

/// Image variants as columns for one `UNNEST` insert.
#[derive(Debug, Default)]
pub struct ImageRows {
    pub ids: Vec<String>,
    pub variants: Vec<&'static str>,
    pub etags: Vec<String>,
    pub widths: Vec<i32>,
    pub heights: Vec<i32>,
    pub bytes: Vec<Vec<u8>>,
}

impl ImageRows {
    /// Adds both variants of image `id` from its Redis hash, or logs why it cannot.
    fn push_image(&mut self, id: &str, fields: &HashMap<String, Vec<u8>>) {
        let found: Vec<(VariantFields, &Vec<u8>)> = [FULL, THUMB]
            .into_iter()
            .filter_map(|v| fields.get(v.bytes).map(|bytes| (v, bytes)))
            .collect();
        if found.len() < 2 {
            metrics::counter!("sync_missing_images_total").increment(1);
            tracing::error!(
                image = id,
                variants = found.len(),
                "image missing in Redis; post persisted without it"
            );
            return;
        }
        for (v, bytes) in found {
            let etag = fields
                .get(v.etag)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .unwrap_or_else(|| content_hash(bytes));
            let (width, height) = match size(fields, &v, bytes) {
                Some((w, h)) => (i32::try_from(w).unwrap_or(0), i32::try_from(h).unwrap_or(0)),
                None => {
                    tracing::warn!(image = id, variant = v.name, "image header unreadable");
                    (0, 0)
                }
            };
            self.ids.push(id.to_owned());
            self.variants.push(v.name);
            self.etags.push(etag);
            self.widths.push(width);
            self.heights.push(height);
            self.bytes.push(bytes.clone());
        }
    }
}

/// A variant's `(width, height)`: the fields stored with it.
///
/// A hash written by a component older than the size fields (or one with a size that is not a
/// number) still syncs with its true size: it is read from the image's header (`imagesize`),
/// which costs no decode, as the daemon always did before. `None`
/// (stored as 0×0, as before) only when that header is unreadable too.
fn size(fields: &HashMap<String, Vec<u8>>, v: &VariantFields, bytes: &[u8]) -> Option<(u32, u32)> {
    let stored =
        |field: &str| -> Option<u32> { std::str::from_utf8(fields.get(field)?).ok()?.parse().ok() };
    match (stored(v.width), stored(v.height)) {
        (Some(w), Some(h)) => Some((w, h)),
        _ => imagesize::blob_size(bytes)
            .ok()
            .and_then(|s| Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))),
    }
}

/// The ETag the upload gives `bytes` (`likes_images::content_hash`: the first 128 bits of
/// SHA-256 in hex), for a variant stored without one.
fn content_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(32);
    for byte in Sha256::digest(bytes).iter().take(16) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::sample_image;

    /// The hash as an older component wrote it: bytes and ETags only.
    fn legacy_hash(p: &likes_images::Processed) -> HashMap<String, Vec<u8>> {
        HashMap::from([
            (f::FULL.to_owned(), p.full.bytes.clone()),
            (f::FULL_ETAG.to_owned(), p.full.hash.clone().into_bytes()),
            (f::THUMB.to_owned(), p.thumb.bytes.clone()),
            (f::THUMB_ETAG.to_owned(), p.thumb.hash.clone().into_bytes()),
        ])
    }

    fn with_sizes(
        mut h: HashMap<String, Vec<u8>>,
        full: (u32, u32),
        thumb: (u32, u32),
    ) -> HashMap<String, Vec<u8>> {
        for (field, n) in [
            (f::FULL_WIDTH, full.0),
            (f::FULL_HEIGHT, full.1),
            (f::THUMB_WIDTH, thumb.0),
            (f::THUMB_HEIGHT, thumb.1),
        ] {
            h.insert(field.to_owned(), n.to_string().into_bytes());
        }
        h
    }

    fn sizes(rows: &ImageRows) -> Vec<(&str, i32, i32)> {
        (0..rows.ids.len())
            .map(|i| (rows.variants[i], rows.widths[i], rows.heights[i]))
            .collect()
    }

    #[test]
    fn what_the_daemon_assumes_of_the_pipeline_holds() {
        assert_eq!(CONTENT_TYPE, likes_images::CONTENT_TYPE);
        let p = sample_image(50, 40);
        assert_eq!(
            content_hash(&p.full.bytes),
            likes_images::content_hash(&p.full.bytes)
        );
        assert_eq!(content_hash(&p.thumb.bytes), p.thumb.hash);
    }

    #[test]
    fn stored_sizes_are_copied_without_reading_the_bytes() {
        let p = sample_image(400, 300);
        // Sizes the bytes do not have: only the fields can be where they came from.
        let mut rows = ImageRows::default();
        rows.push_image("a", &with_sizes(legacy_hash(&p), (7, 9), (3, 4)));
        assert_eq!(sizes(&rows), vec![("full", 7, 9), ("thumb", 3, 4)]);
        assert_eq!(rows.etags, vec![p.full.hash.clone(), p.thumb.hash.clone()]);
        assert_eq!(
            rows.bytes,
            vec![p.full.bytes.clone(), p.thumb.bytes.clone()]
        );
    }

    #[test]
    fn an_older_hash_without_sizes_gets_them_from_the_jpeg_header() {
        let p = sample_image(400, 300);
        let (full, thumb) = (&p.full, &p.thumb);
        let expected = |rows: &ImageRows| {
            assert_eq!(
                sizes(rows),
                vec![
                    ("full", full.width as i32, full.height as i32),
                    ("thumb", thumb.width as i32, thumb.height as i32)
                ]
            );
        };
        let mut rows = ImageRows::default();
        rows.push_image("a", &legacy_hash(&p));
        expected(&rows);
        let mut malformed = with_sizes(legacy_hash(&p), (1, 1), (1, 1));
        malformed.insert(f::FULL_WIDTH.to_owned(), b"wide".to_vec());
        malformed.remove(f::THUMB_HEIGHT);
        let mut rows = ImageRows::default();
        rows.push_image("a", &malformed);
        expected(&rows);
    }

    #[test]
    fn missing_etags_are_computed_and_unreadable_sizes_are_zero() {
        let p = sample_image(64, 48);
        let mut h = legacy_hash(&p);
        h.remove(f::THUMB_ETAG);
        h.insert(f::FULL.to_owned(), b"not a jpeg".to_vec());
        let mut rows = ImageRows::default();
        rows.push_image("a", &h);
        assert_eq!(rows.etags[1], p.thumb.hash);
        assert_eq!(
            sizes(&rows),
            vec![
                ("full", 0, 0),
                ("thumb", p.thumb.width as i32, p.thumb.height as i32)
            ]
        );
    }

    #[test]
    fn an_image_lacking_a_variant_is_not_copied() {
        let p = sample_image(64, 48);
        let mut h = legacy_hash(&p);
        h.remove(f::THUMB);
        let mut rows = ImageRows::default();
        rows.push_image("a", &h);
        rows.push_image("b", &HashMap::new());
        assert!(rows.ids.is_empty());
    }
}

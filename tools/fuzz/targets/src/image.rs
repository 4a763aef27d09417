//! The upload pipeline (`likes_images::probe` and `process`) on arbitrary bytes.
//!
//! Properties: the header check and the pipeline agree; an accepted image is within the limits
//! and comes out as two JPEGs of exactly the documented sizes, named by a valid image id; a
//! refusal is never our 500; and no call holds more memory than the decode budget plus what the
//! accepted pixels themselves need.

use likes_images::{FULL_MAX_SIDE, ImageError, Limits, THUMB_MAX_SIDE, Variant};

use crate::alloc;

/// Limits small enough that an accepted image costs about a millisecond, so the fuzzer spends
/// its time in headers and decoders rather than in resizing.
pub const LIMITS: Limits = Limits {
    max_pixels: 512 * 512,
    max_side: 4096,
    max_alloc: 8 << 20,
};

/// Bytes per accepted source pixel the pipeline may hold beyond the decoder's budget: the
/// decoded image converted to 8-bit RGBA (4), the `full` variant and its resize buffers (≤ 12),
/// with headroom for the JPEG encoder's working memory.
const PIPELINE_BYTES_PER_PIXEL: u64 = 32;
/// Fixed working memory of the decoders and encoders (tables, line buffers).
const FIXED_BYTES: u64 = 2 << 20;

pub fn run(data: &[u8]) {
    let probed = likes_images::probe(data, &LIMITS);
    let (processed, peak) = alloc::peak_during(|| likes_images::process(data, &LIMITS));

    let pixels = match &probed {
        Ok(p) => {
            assert!(p.width >= 1 && p.height >= 1, "{p:?}");
            assert!(
                p.width <= LIMITS.max_side && p.height <= LIMITS.max_side,
                "{p:?}"
            );
            assert!(u64::from(p.width) * u64::from(p.height) <= LIMITS.max_pixels);
            u64::from(p.width) * u64::from(p.height)
        }
        Err(e) => {
            // `process` starts with exactly the header check.
            assert_eq!(
                processed.as_ref().err(),
                Some(e),
                "probe and process disagree"
            );
            if let ImageError::TooLarge { width, height } = *e {
                assert!(
                    width > LIMITS.max_side
                        || height > LIMITS.max_side
                        || u64::from(width) * u64::from(height) > LIMITS.max_pixels,
                    "{width}×{height} refused as too large"
                );
            }
            0
        }
    };
    if let Some(peak) = peak {
        let budget = LIMITS.max_alloc + PIPELINE_BYTES_PER_PIXEL * pixels + FIXED_BYTES;
        assert!(
            peak <= budget,
            "held {peak} bytes at once, over the budget of {budget} ({pixels} px)"
        );
    }

    match processed {
        Ok(out) => {
            let probe = probed.expect("an image the pipeline accepted passes the header check");
            let (w, h) = (probe.width, probe.height);
            let full_turned = check_variant(&out.full, fit(w, h, FULL_MAX_SIDE));
            let thumb_turned = check_variant(&out.thumb, fit(w, h, THUMB_MAX_SIDE));
            if let (Some(full), Some(thumb)) = (full_turned, thumb_turned) {
                assert_eq!(full, thumb, "one orientation for both variants");
            }
            assert_eq!(out.image_id(), out.full.hash);
            assert!(
                likes_core::api::is_image_id(out.image_id()),
                "the images route would refuse id {:?}",
                out.image_id()
            );
        }
        Err(e) => assert!(
            e.status() != 500,
            "client input made the pipeline fail as our bug: {e}"
        ),
    }
}

/// A variant is a metadata-free JPEG of `expected` (width, height), possibly turned a quarter by
/// the EXIF orientation, and its hash names its bytes. Returns whether it was turned, when a
/// square does not make that unknowable.
fn check_variant(v: &Variant, expected: (u32, u32)) -> Option<bool> {
    let turned = (v.height, v.width) == expected;
    assert!(
        (v.width, v.height) == expected || turned,
        "variant is {}×{}, expected {expected:?}",
        v.width,
        v.height
    );
    assert_eq!(v.content_type, likes_images::CONTENT_TYPE);
    assert_eq!(v.hash, likes_images::content_hash(&v.bytes));
    let reread = likes_images::probe(&v.bytes, &Limits::default()).expect("our JPEG reads back");
    assert_eq!(
        (reread.mime, reread.width, reread.height),
        ("image/jpeg", v.width, v.height)
    );
    (expected.0 != expected.1).then_some(turned)
}

/// The documented sizing (longest side at most `max_side`, aspect kept, rounded, at least
/// 1 px, never upscaled), computed independently of the pipeline's own code.
fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        let exact = f64::from(side) * f64::from(max_side) / f64::from(longest);
        (exact.round() as u32).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

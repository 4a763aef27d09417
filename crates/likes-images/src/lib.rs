//! The upload image pipeline: bytes in, two re-encoded JPEG variants out.
//!
//! Pure and I/O-free so it runs the same inside the `wasm32-wasip2` upload component and natively
//! (tests, benchmarks). One call, [`process`], does the whole contract of `POST /api/posts`:
//!
//! 1. **Sniff** the real format from the magic bytes — the part's filename and declared content
//!    type are never consulted. JPEG, PNG, WebP and GIF (first frame) are accepted; another image
//!    format we recognise is [`ImageError::Unsupported`] (415); anything else is
//!    [`ImageError::NotAnImage`] (422).
//! 2. **Read the header only** and refuse dimensions over [`Limits`] ([`ImageError::TooLarge`],
//!    422) before a single pixel is decoded, so a 30000×30000 PNG of a few KB costs nothing.
//! 3. **Decode with `image::Limits`** (dimensions and an allocation budget), so a decompression
//!    bomb that slips past the header check still fails fast with bounded memory.
//! 4. **Flatten** transparency onto white, in place, then **resize** to `full` (longest side ≤
//!    [`FULL_MAX_SIDE`]) and `thumb` (≤ [`THUMB_MAX_SIDE`]) with a Lanczos3 filter, never
//!    upscaling.
//! 5. **Apply the EXIF orientation** (to the small variants: rotation and scaling commute, and
//!    rotating 1 MP is far cheaper than rotating 12 MP).
//! 6. **Re-encode as JPEG**, which drops every piece of metadata (EXIF with GPS, XMP, IPTC, ICC):
//!    the encoder only writes what we give it, and we give it pixels.
//! 7. **Hash** each variant's bytes (SHA-256, hex); the image id is the `full` variant's hash.

#[cfg(feature = "form")]
pub mod form;
#[cfg(feature = "samples")]
pub mod samples;

use std::io::Cursor;

use fast_image_resize as fir;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, metadata::Orientation};
use sha2::{Digest, Sha256};

/// Longest side of the `full` variant, in pixels (contract: ≤ 1080).
pub const FULL_MAX_SIDE: u32 = 1080;
/// Longest side of the `thumb` variant, in pixels (contract: ≤ 320).
pub const THUMB_MAX_SIDE: u32 = 320;
/// JPEG quality of both variants: visually clean for photos at about a tenth of the raw size.
pub const JPEG_QUALITY: u8 = 82;
/// The content type of every variant we produce.
pub const CONTENT_TYPE: &str = "image/jpeg";
/// Length of a variant hash in hex characters: the first 128 bits of SHA-256, plenty to name
/// content without collisions while keeping URLs and Redis keys short.
pub const HASH_HEX_LEN: usize = 32;

/// What an upload may cost us. Checked from the header before any pixel is decoded
/// (`max_pixels`, `max_side`) and while decoding (`max_alloc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width × height) an image may have. Contract default: 50 MP.
    pub max_pixels: u64,
    /// Longest width or height in pixels. Contract default: 16,384.
    pub max_side: u32,
    /// Most bytes the decoded image may take, with its conversion to 8-bit RGB(A) and the
    /// decoder's working buffers; checked from the header, see [`decode_bytes`]. Default 256 MiB:
    /// every 8-bit gray, RGB or RGBA image within the pixel limit fits (50 MP RGBA is 200 MB,
    /// flattened in place); gray with alpha fits up to 44 MP, and 16-bit-per-channel images up
    /// to 50 MP (gray), 33 MP (gray + alpha), 29 MP (RGB) or 22 MP (RGBA). Beyond,
    /// [`ImageError::MemoryLimit`] (422), before any pixel is decoded.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_side: 16_384,
            max_alloc: 256 * 1024 * 1024,
        }
    }
}

/// Why an upload was refused. Every variant but [`ImageError::Encode`] is the client's fault and
/// maps to a 4xx via [`ImageError::status`]; none of them is ever a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A real image, but in a format we do not accept (BMP, TIFF, AVIF, …). Holds its MIME type.
    #[error("{0} is not accepted; upload a JPEG, PNG, WebP or GIF")]
    Unsupported(&'static str),
    /// The bytes are no image format we recognise (text, a PDF, random bytes, an empty part).
    #[error("the upload is not an image")]
    NotAnImage,
    /// The header declares more pixels or a longer side than [`Limits`] allow.
    #[error("the image is {width}×{height} px, over the limits")]
    TooLarge {
        /// Width declared in the header.
        width: u32,
        /// Height declared in the header.
        height: u32,
    },
    /// Decoding would need more memory than [`Limits::max_alloc`].
    #[error("the image needs more memory to decode than allowed")]
    MemoryLimit,
    /// The format was recognised but the data is truncated, corrupt or uses a feature the decoder
    /// does not support (e.g. a 12-bit JPEG). The detail is for logs, not for clients.
    #[error("the image could not be decoded: {0}")]
    Undecodable(String),
    /// Our own encoding failed. Not the client's fault; should not happen.
    #[error("encoding the image failed: {0}")]
    Encode(String),
}

impl ImageError {
    /// The HTTP status of the contract (`shared/api.md`): 415 for an image format we do not
    /// accept, 422 for bytes that are no image or an image over the limits, 500 for our bugs.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unsupported(_) => 415,
            Self::NotAnImage | Self::TooLarge { .. } | Self::MemoryLimit | Self::Undecodable(_) => {
                422
            }
            Self::Encode(_) => 500,
        }
    }
}

/// One re-encoded rendition of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The JPEG file, with no metadata.
    pub bytes: Vec<u8>,
    /// Width in pixels, after orientation.
    pub width: u32,
    /// Height in pixels, after orientation.
    pub height: u32,
    /// Always [`CONTENT_TYPE`].
    pub content_type: &'static str,
    /// Hex SHA-256 of `bytes`, truncated to [`HASH_HEX_LEN`] characters: the variant's `ETag`
    /// and storage name.
    pub hash: String,
}

/// Both renditions of an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Longest side ≤ [`FULL_MAX_SIDE`]; its size is the post's `image.width`/`height`.
    pub full: Variant,
    /// Longest side ≤ [`THUMB_MAX_SIDE`], for the feed.
    pub thumb: Variant,
}

impl Processed {
    /// The image id: by contract, the hash of the `full` variant's bytes.
    pub fn image_id(&self) -> &str {
        &self.full.hash
    }
}

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// MIME type of the sniffed (accepted) format.
    pub mime: &'static str,
    /// Width in pixels as stored (before EXIF orientation).
    pub width: u32,
    /// Height in pixels as stored (before EXIF orientation).
    pub height: u32,
}

/// Sniffs the format and reads the dimensions from the header, enforcing `max_side` and
/// `max_pixels`; decodes no pixels. [`process`] starts with exactly this check.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, ImageError> {
    let format = sniff(bytes)?;
    let decoder = open_decoder(bytes, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    Ok(Probe {
        mime: format.to_mime_type(),
        width,
        height,
    })
}

/// Runs the whole pipeline (see the crate docs) on an uploaded file's bytes.
pub fn process(bytes: &[u8], limits: &Limits) -> Result<Processed, ImageError> {
    let format = sniff(bytes)?;
    let mut decoder = open_decoder(bytes, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;

    // The decoded buffer (and its 8-bit copy, when one is needed) is the big allocation: refuse
    // it up front, then hand the decoder only what is left of the budget for its own working
    // memory.
    let total = decode_bytes(decoder.color_type(), width, height);
    if total > limits.max_alloc {
        return Err(ImageError::MemoryLimit);
    }
    let mut decode_limits = image_limits(limits);
    decode_limits.max_alloc = Some(limits.max_alloc - total);
    decoder.set_limits(decode_limits).map_err(decode_error)?;

    // A broken EXIF block is no reason to refuse a photo: show it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder).map_err(decode_error)?;

    let source = Pixels::from_image(decoded);
    let (full_w, full_h) = fit(width, height, FULL_MAX_SIDE);
    let (thumb_w, thumb_h) = fit(width, height, THUMB_MAX_SIDE);
    let mut resizer = fir::Resizer::new();
    let full = source.resize(&mut resizer, full_w, full_h)?;
    // The thumb comes from the full variant: same filter, a twelfth of the work.
    let thumb = full.resize(&mut resizer, thumb_w, thumb_h)?;
    drop(source);

    Ok(Processed {
        full: full.encode(orientation)?,
        thumb: thumb.encode(orientation)?,
    })
}

/// The bytes the decoded pixels of a `width`×`height` image in `color` take on their way to the
/// 8-bit RGB the resizer gets: the decoder's buffer, plus the 8-bit RGB(A) copy the conversion
/// makes unless the decoder's layout already is 8-bit RGB or RGBA (those are used in place).
pub fn decode_bytes(color: image::ColorType, width: u32, height: u32) -> u64 {
    use image::ColorType;
    let pixels = u64::from(width) * u64::from(height);
    let decoded = pixels * u64::from(color.bytes_per_pixel());
    let copy = match color {
        ColorType::Rgb8 | ColorType::Rgba8 => 0,
        c if c.has_alpha() => pixels * 4,
        _ => pixels * 3,
    };
    decoded + copy
}

/// The format from the magic bytes alone; accepted formats pass, others are sorted into 415/422.
fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    match image::guess_format(bytes) {
        Ok(
            format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif),
        ) => Ok(format),
        Ok(other) => Err(ImageError::Unsupported(other.to_mime_type())),
        Err(_) => Err(ImageError::NotAnImage),
    }
}

/// The `image` crate's limits for ours.
fn image_limits(limits: &Limits) -> image::Limits {
    let mut out = image::Limits::default();
    out.max_image_width = Some(limits.max_side);
    out.max_image_height = Some(limits.max_side);
    out.max_alloc = Some(limits.max_alloc);
    out
}

/// A decoder that has parsed the header and nothing more. Dimension limits are left off here so
/// that [`check_dimensions`] can report the header's size as [`ImageError::TooLarge`].
fn open_decoder<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<impl ImageDecoder + 'a, ImageError> {
    let mut header_limits = image_limits(limits);
    header_limits.max_image_width = None;
    header_limits.max_image_height = None;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(header_limits);
    reader.into_decoder().map_err(decode_error)
}

fn check_dimensions(width: u32, height: u32, limits: &Limits) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(ImageError::TooLarge { width, height });
    }
    if pixels == 0 {
        return Err(ImageError::Undecodable("the image has no pixels".into()));
    }
    Ok(())
}

fn decode_error(err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Limits(_) => ImageError::MemoryLimit,
        other => ImageError::Undecodable(other.to_string()),
    }
}

/// `(width, height)` scaled so the longest side is at most `max_side`, keeping the aspect ratio
/// (rounded, never below 1 px) and never upscaling.
fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

/// 8-bit RGB pixels, transparency already flattened onto white. Compositing is linear, so
/// flattening before the (linear) resize gives what resizing with premultiplied alpha and then
/// flattening would, without the resizer's premultiplied copy of the whole source (another
/// 200 MB at 50 MP, which took a 50 MP RGBA upload over the instance's memory).
struct Pixels {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Pixels {
    fn from_image(image: DynamicImage) -> Self {
        let (width, height) = (image.width(), image.height());
        // `into_rgb8`/`into_rgba8` on an image already in that layout (every JPEG, most PNGs)
        // move the buffer instead of copying it.
        let data = if image.color().has_alpha() {
            let mut rgba = image.into_rgba8().into_raw();
            flatten_on_white(&mut rgba);
            rgba
        } else {
            image.into_rgb8().into_raw()
        };
        Self {
            width,
            height,
            data,
        }
    }

    /// Lanczos3 down to `width`×`height`; a copy when the size is unchanged.
    fn resize(
        &self,
        resizer: &mut fir::Resizer,
        width: u32,
        height: u32,
    ) -> Result<Pixels, ImageError> {
        if (width, height) == (self.width, self.height) {
            return Ok(Pixels {
                width,
                height,
                data: self.data.clone(),
            });
        }
        let internal = |e: &dyn std::fmt::Display| ImageError::Encode(format!("resize: {e}"));
        let src =
            fir::images::ImageRef::new(self.width, self.height, &self.data, fir::PixelType::U8x3)
                .map_err(|e| internal(&e))?;
        let mut dst = fir::images::Image::new(width, height, fir::PixelType::U8x3);
        let options = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3));
        resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| internal(&e))?;
        Ok(Pixels {
            width,
            height,
            data: dst.into_vec(),
        })
    }

    /// Applies the orientation and encodes a metadata-free JPEG.
    fn encode(self, orientation: Orientation) -> Result<Variant, ImageError> {
        let internal = |what: &str| ImageError::Encode(what.to_owned());
        let buffer = image::RgbImage::from_raw(self.width, self.height, self.data)
            .ok_or_else(|| internal("pixel buffer has the wrong length"))?;
        let mut image = DynamicImage::ImageRgb8(buffer);
        image.apply_orientation(orientation);

        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&image)
            .map_err(|e| internal(&e.to_string()))?;
        let hash = content_hash(&bytes);
        Ok(Variant {
            width: image.width(),
            height: image.height(),
            bytes,
            content_type: CONTENT_TYPE,
            hash,
        })
    }
}

/// RGBA (straight alpha) → RGB composited over white, as a browser shows a transparent PNG on a
/// white page, in place: the buffer ends up `len / 4 * 3` long, with no second allocation. JPEG
/// has no alpha; dropping it instead would turn transparent areas black.
fn flatten_on_white(buf: &mut Vec<u8>) {
    let pixels = buf.len() / 4;
    for i in 0..pixels {
        // Pixel i is read from 4i before 3i..3i+3 is written, and 3i+2 < 4i+3, so no later
        // pixel's bytes are overwritten before they are read.
        let alpha = u32::from(buf[4 * i + 3]);
        for c in 0..3 {
            let channel = u32::from(buf[4 * i + c]);
            let blended = (channel * alpha + 255 * (255 - alpha) + 127) / 255;
            buf[3 * i + c] = u8::try_from(blended).unwrap_or(u8::MAX);
        }
    }
    buf.truncate(pixels * 3);
}

/// Hex SHA-256 of `bytes`, truncated to [`HASH_HEX_LEN`] characters.
pub fn content_hash(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(HASH_HEX_LEN);
    for byte in digest.iter().take(HASH_HEX_LEN / 2) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_scales_the_longest_side_and_never_upscales() {
        assert_eq!(fit(4000, 3000, 1080), (1080, 810));
        assert_eq!(fit(3000, 4000, 320), (240, 320));
        assert_eq!(fit(200, 100, 1080), (200, 100));
        assert_eq!(fit(1080, 1080, 1080), (1080, 1080));
        assert_eq!(fit(16_384, 1, 320), (320, 1));
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ImageError::Unsupported("image/bmp").status(), 415);
        assert_eq!(ImageError::NotAnImage.status(), 422);
        assert_eq!(
            ImageError::TooLarge {
                width: 1,
                height: 1
            }
            .status(),
            422
        );
        assert_eq!(ImageError::MemoryLimit.status(), 422);
        assert_eq!(ImageError::Undecodable(String::new()).status(), 422);
    }

    #[test]
    fn flattening_blends_onto_white_in_place() {
        let mut buf = vec![0, 0, 0, 0, 10, 20, 30, 255, 0, 0, 0, 128];
        let before = buf.as_ptr();
        flatten_on_white(&mut buf);
        assert_eq!(buf, vec![255, 255, 255, 10, 20, 30, 127, 127, 127]);
        assert_eq!(buf.as_ptr(), before, "no second buffer");
    }

    #[test]
    fn the_decode_budget_counts_the_8_bit_copy_only_where_one_is_made() {
        use image::ColorType;
        let mp50 = (7_071, 7_071);
        assert_eq!(
            decode_bytes(ColorType::Rgba8, mp50.0, mp50.1),
            7_071 * 7_071 * 4
        );
        assert_eq!(decode_bytes(ColorType::Rgb8, 10, 10), 300);
        assert_eq!(decode_bytes(ColorType::L8, 10, 10), 100 + 300);
        assert_eq!(decode_bytes(ColorType::La8, 10, 10), 200 + 400);
        assert_eq!(decode_bytes(ColorType::Rgba16, 10, 10), 800 + 400);
        // Every 8-bit gray, RGB or RGBA image within 50 MP fits the default budget.
        let budget = Limits::default().max_alloc;
        for color in [ColorType::L8, ColorType::Rgb8, ColorType::Rgba8] {
            assert!(decode_bytes(color, mp50.0, mp50.1) <= budget, "{color:?}");
        }
        assert!(decode_bytes(ColorType::Rgba16, mp50.0, mp50.1) > budget);
    }

    #[test]
    fn hashes_are_truncated_hex_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}

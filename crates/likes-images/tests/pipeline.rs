//! The pipeline end to end on images generated here: formats, sizes, orientation, metadata,
//! refusals, determinism, and no panic on damaged input.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use image::{ImageDecoder, ImageFormat, metadata::Orientation};
use likes_images::samples::*;
use likes_images::{
    CONTENT_TYPE, HASH_HEX_LEN, ImageError, Limits, Processed, Variant, content_hash, probe,
    process,
};

fn decode(variant: &Variant) -> image::DynamicImage {
    assert_eq!(variant.content_type, CONTENT_TYPE);
    assert_eq!(
        image::guess_format(&variant.bytes).unwrap(),
        ImageFormat::Jpeg
    );
    let img = image::load_from_memory_with_format(&variant.bytes, ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (variant.width, variant.height));
    img
}

fn assert_sizes(out: &Processed, full: (u32, u32), thumb: (u32, u32)) {
    assert_eq!((out.full.width, out.full.height), full, "full");
    assert_eq!((out.thumb.width, out.thumb.height), thumb, "thumb");
    decode(&out.full);
    decode(&out.thumb);
    for v in [&out.full, &out.thumb] {
        assert_eq!(v.hash.len(), HASH_HEX_LEN);
        assert_eq!(v.hash, content_hash(&v.bytes));
        assert_no_metadata(&v.bytes);
    }
    assert_eq!(out.image_id(), out.full.hash);
}

/// Only the segments a plain JPEG needs: no APP1 (EXIF/XMP), APP2 (ICC), APP13 (IPTC), COM.
fn assert_no_metadata(jpeg: &[u8]) {
    let markers = jpeg_header_markers(jpeg);
    for marker in markers {
        assert!(
            matches!(marker, 0xE0 | 0xDB | 0xC0..=0xC2 | 0xC4 | 0xDD | 0xDA),
            "unexpected marker FF{marker:02X} in output"
        );
    }
    assert!(
        !jpeg.windows(4).any(|w| w == b"Exif"),
        "Exif left in output"
    );
}

#[test]
fn twelve_megapixel_jpeg_gives_1080_and_320() {
    let jpeg = encode(&gradient(4000, 3000), ImageFormat::Jpeg);
    let out = process(&jpeg, &Limits::default()).unwrap();
    assert_sizes(&out, (1080, 810), (320, 240));
}

/// The largest phone photos (48 MP) fit the default budget: the accounting is not too strict.
#[test]
fn forty_eight_megapixel_jpeg_fits_the_default_limits() {
    let jpeg = encode(&gradient(8000, 6000), ImageFormat::Jpeg);
    let out = process(&jpeg, &Limits::default()).unwrap();
    assert_sizes(&out, (1080, 810), (320, 240));
}

#[test]
fn png_is_accepted() {
    let png = encode(&gradient(1600, 1200), ImageFormat::Png);
    let out = process(&png, &Limits::default()).unwrap();
    assert_sizes(&out, (1080, 810), (320, 240));
}

#[test]
fn webp_is_accepted() {
    let webp = encode(&gradient(1200, 1600), ImageFormat::WebP);
    let out = process(&webp, &Limits::default()).unwrap();
    assert_sizes(&out, (810, 1080), (240, 320));
}

#[test]
fn gif_first_frame_is_accepted() {
    let gif = encode(&gradient(640, 480), ImageFormat::Gif);
    let out = process(&gif, &Limits::default()).unwrap();
    assert_sizes(&out, (640, 480), (320, 240));
}

#[test]
fn small_images_are_never_upscaled() {
    let jpeg = encode(&gradient(200, 100), ImageFormat::Jpeg);
    let out = process(&jpeg, &Limits::default()).unwrap();
    assert_sizes(&out, (200, 100), (200, 100));
}

#[test]
fn transparency_is_flattened_onto_white() {
    let png = encode(&half_transparent(400, 200), ImageFormat::Png);
    let out = process(&png, &Limits::default()).unwrap();
    let img = decode(&out.full).to_rgb8();
    let left = img.get_pixel(50, 100).0;
    let right = img.get_pixel(350, 100).0;
    assert!(
        left.iter().all(|&c| c > 245),
        "transparent → white, got {left:?}"
    );
    assert!(
        right[1] > 180 && right[0] < 40 && right[2] < 40,
        "green, got {right:?}"
    );
}

#[test]
fn exif_orientation_6_is_applied_and_exif_is_dropped() {
    let plain = encode(&red_left_blue_right(400, 200), ImageFormat::Jpeg);
    let rotated = with_exif_orientation(&plain, 6);
    // The test input really carries the tag, as a phone would write it.
    let mut decoder =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&rotated)).unwrap();
    assert_eq!(decoder.orientation().unwrap(), Orientation::Rotate90);
    assert!(jpeg_header_markers(&rotated).contains(&0xE1));

    let out = process(&rotated, &Limits::default()).unwrap();
    assert_sizes(&out, (200, 400), (160, 320));
    // Orientation 6 = rotate 90° clockwise to display: the left (red) half ends up on top.
    let img = decode(&out.full).to_rgb8();
    let top = img.get_pixel(100, 50).0;
    let bottom = img.get_pixel(100, 350).0;
    assert!(
        top[0] > 200 && top[2] < 60,
        "top should be red, got {top:?}"
    );
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom should be blue, got {bottom:?}"
    );
    // And the output says nothing about orientation any more.
    let mut out_decoder =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&out.full.bytes)).unwrap();
    assert_eq!(
        out_decoder.orientation().unwrap(),
        Orientation::NoTransforms
    );
    assert_eq!(out_decoder.exif_metadata().unwrap(), None);
}

#[test]
fn text_renamed_to_jpg_is_not_an_image() {
    for bytes in [
        &b"hello, I am a text file called cat.jpg\n"[..],
        b"",
        b"\xFF",
        b"%PDF-1.7\n",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    ] {
        let err = process(bytes, &Limits::default()).unwrap_err();
        assert_eq!(err, ImageError::NotAnImage, "{bytes:?}");
        assert_eq!(err.status(), 422);
    }
}

#[test]
fn other_image_formats_are_unsupported() {
    let err = process(&tiny_bmp(), &Limits::default()).unwrap_err();
    assert_eq!(err, ImageError::Unsupported("image/bmp"));
    assert_eq!(err.status(), 415);
    let err = process(b"II*\x00\x08\x00\x00\x00", &Limits::default()).unwrap_err();
    assert_eq!(err, ImageError::Unsupported("image/tiff"));
}

#[test]
fn png_claiming_30000_squared_is_refused_from_the_header() {
    let bomb = png_claiming(30_000, 30_000);
    assert!(bomb.len() < 4096);
    let started = Instant::now();
    let err = process(&bomb, &Limits::default()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err,
        ImageError::TooLarge {
            width: 30_000,
            height: 30_000
        }
    );
    assert_eq!(err.status(), 422);
    // Over the pixel limit only (10000² = 100 MP, each side under 16,384).
    let err = probe(&png_claiming(10_000, 10_000), &Limits::default()).unwrap_err();
    assert!(matches!(err, ImageError::TooLarge { .. }));
    // Over the side limit only.
    let err = probe(&png_claiming(20_000, 10), &Limits::default()).unwrap_err();
    assert!(matches!(err, ImageError::TooLarge { .. }));
}

#[test]
fn within_header_limits_but_over_the_allocation_budget() {
    let png = encode(&gradient(1000, 1000), ImageFormat::Png);
    let limits = Limits {
        max_alloc: 1024 * 1024,
        ..Limits::default()
    };
    assert_eq!(process(&png, &limits).unwrap_err(), ImageError::MemoryLimit);
}

#[test]
fn a_png_whose_data_stops_short_is_undecodable_not_a_panic() {
    let err = process(&png_claiming(100, 100), &Limits::default()).unwrap_err();
    assert!(matches!(err, ImageError::Undecodable(_)), "{err:?}");
    assert_eq!(err.status(), 422);
}

#[test]
fn probe_reads_the_header() {
    let jpeg = encode(&gradient(640, 480), ImageFormat::Jpeg);
    let p = probe(&jpeg, &Limits::default()).unwrap();
    assert_eq!((p.mime, p.width, p.height), ("image/jpeg", 640, 480));
}

#[test]
fn output_is_deterministic() {
    let jpeg = with_exif_orientation(&encode(&gradient(1500, 1000), ImageFormat::Jpeg), 6);
    let a = process(&jpeg, &Limits::default()).unwrap();
    let b = process(&jpeg, &Limits::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.image_id(), b.image_id());
    assert_ne!(a.full.hash, a.thumb.hash);
}

/// Truncations and byte flips of every accepted format: any result is fine, a panic is not.
#[test]
fn damaged_inputs_never_panic() {
    let img = gradient(96, 64);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ] {
        let good = encode(&img, format);
        let good = if format == ImageFormat::Jpeg {
            with_exif_orientation(&good, 6)
        } else {
            good
        };
        for cut in (0..good.len()).step_by(7) {
            let _ = process(&good[..cut], &Limits::default());
        }
        for _ in 0..300 {
            let mut bad = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bad.len();
                bad[at] = next() as u8;
            }
            let _ = process(&bad, &Limits::default());
        }
    }
}

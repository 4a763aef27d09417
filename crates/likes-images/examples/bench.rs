//! Times `process` on a generated 12 MP (4000×3000) JPEG and prints p50/p90 over N runs, plus a
//! breakdown (decode alone, and the resize step with `fast_image_resize` against the `image`
//! crate's own Lanczos3) that justifies the resizer choice.
//!
//! `cargo run --release -p likes-images --example bench -- [runs]` (default 15). Builds for
//! `wasm32-wasip2` too, so the same numbers can be taken under a wasm runtime.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, imageops::FilterType};
use likes_images::{Limits, process};

fn photo_like(width: u32, height: u32) -> DynamicImage {
    // Smooth gradients plus fine texture: compresses like a photo rather than a flat colour.
    let img = RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
        Rgb([
            ((x * 255 / width) as u8).wrapping_add(noise as u8),
            ((y * 255 / height) as u8).wrapping_add(noise as u8),
            (((x + y) / 16) as u8).wrapping_add(noise as u8),
        ])
    });
    DynamicImage::ImageRgb8(img)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .collect();
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.9))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(15)
        .max(1);

    let mut jpeg = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&photo_like(4000, 3000))?;
    let jpeg = jpeg.into_inner();
    let limits = Limits::default();
    let out = process(&jpeg, &limits)?;
    println!(
        "input: 4000x3000 JPEG, {} KiB -> full {}x{} {} KiB, thumb {}x{} {} KiB, id {}",
        jpeg.len() / 1024,
        out.full.width,
        out.full.height,
        out.full.bytes.len() / 1024,
        out.thumb.width,
        out.thumb.height,
        out.thumb.bytes.len() / 1024,
        out.image_id()
    );

    let (p50, p90) = time(runs, || process(&jpeg, &limits));
    println!("process           p50 {p50:>9.1?}  p90 {p90:>9.1?}  ({runs} runs)");

    let (p50, p90) = time(runs, || {
        image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).map(|i| i.width())
    });
    println!("  decode only     p50 {p50:>9.1?}  p90 {p90:>9.1?}");

    let decoded = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg)?.into_rgb8();
    let (p50, p90) = time(runs.min(5), || {
        image::imageops::resize(&decoded, 1080, 810, FilterType::Lanczos3)
    });
    println!("  image Lanczos3  p50 {p50:>9.1?}  p90 {p90:>9.1?}  (12 MP -> 1080, alternative)");

    let mut resizer = fast_image_resize::Resizer::new();
    let options = fast_image_resize::ResizeOptions::new().resize_alg(
        fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Lanczos3),
    );
    let src = fast_image_resize::images::ImageRef::new(
        4000,
        3000,
        decoded.as_raw(),
        fast_image_resize::PixelType::U8x3,
    )?;
    let (p50, p90) = time(runs, || {
        let mut dst =
            fast_image_resize::images::Image::new(1080, 810, fast_image_resize::PixelType::U8x3);
        resizer.resize(&src, &mut dst, &options).map(|()| dst)
    });
    println!("  fir Lanczos3    p50 {p50:>9.1?}  p90 {p90:>9.1?}  (12 MP -> 1080, used)");
    Ok(())
}

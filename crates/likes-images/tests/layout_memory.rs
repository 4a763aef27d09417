//! Every 8-bit image within the pixel limit is accepted within the memory budget, whatever its
//! channel layout, and a layout over the budget is refused from its header. A counting
//! allocator records the peak bytes live while `process` runs; one test in this binary, so no
//! other test allocates concurrently.
#![allow(clippy::unwrap_used)]

use image::{ImageFormat, RgbaImage};
use likes_images::samples::png_claiming_layout;
use likes_images::samples::{Counting, peak_during};
use likes_images::{ImageError, Limits, process};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What the resizer and the variants may add to the decoded image: the horizontal pass of the
/// `full` variant (1080 × 7071 × 3 B ≈ 23 MB) and the variants themselves.
const WORKING_MARGIN: usize = 48 * 1024 * 1024;

#[test]
fn rgba_at_the_pixel_limit_is_accepted_within_the_budget_and_heavier_layouts_are_refused_early() {
    // 7071×7071 = 50.0 MP of 8-bit RGBA: 200 MB decoded. Half transparent, so flattening matters.
    let (w, h) = (7_071, 7_071);
    let png = {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([
                (x % 251) as u8,
                (y % 241) as u8,
                90,
                if x < w / 2 { 255 } else { 0 },
            ])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let limits = Limits::default();
    let (out, peak) = peak_during(|| process(&png, &limits));
    let out = out.expect("a 50 MP RGBA PNG is within the documented limits");
    assert_eq!((out.full.width, out.full.height), (1080, 1080));
    let budget = usize::try_from(limits.max_alloc).unwrap();
    eprintln!("50 MP RGBA PNG: peak {} MiB", peak >> 20);
    assert!(
        peak <= budget + WORKING_MARGIN,
        "peak {} MiB for a budget of {} MiB",
        peak >> 20,
        budget >> 20
    );

    // 50 MP of 16-bit RGBA (400 MB decoded) or gray + alpha (100 MB, then a 200 MB RGBA copy)
    // is over the budget: refused from the header, before the pixel buffer exists.
    for (depth, color) in [(16, 6), (8, 4)] {
        let header_only = png_claiming_layout(w, h, depth, color);
        let (err, peak) = peak_during(|| process(&header_only, &limits).unwrap_err());
        assert_eq!(
            err,
            ImageError::MemoryLimit,
            "depth {depth}, color type {color}"
        );
        assert!(peak < 1024 * 1024, "peak {peak} bytes while refusing");
    }
}

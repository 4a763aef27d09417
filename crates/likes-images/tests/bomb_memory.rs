//! A decompression bomb is refused from its header with bounded memory: a counting allocator
//! records the peak bytes live while `process` runs. One test in this binary, so no other test
//! allocates concurrently.
#![allow(clippy::unwrap_used)]

use likes_images::samples::{Counting, peak_during};
use likes_images::{ImageError, Limits, process};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn bombs_are_refused_with_bounded_memory() {
    // 30000×30000 RGB would be 2.7 GB decoded.
    let bomb = likes_images::samples::png_claiming(30_000, 30_000);
    let (err, peak) = peak_during(|| process(&bomb, &Limits::default()).unwrap_err());
    assert_eq!(
        err,
        ImageError::TooLarge {
            width: 30_000,
            height: 30_000
        }
    );
    assert!(
        peak < 1024 * 1024,
        "peak {peak} bytes while refusing a bomb"
    );

    // Within the header limits (7000×7000 = 49 MP, 147 MB decoded) but over a small budget:
    // refused before the pixel buffer exists.
    let big = likes_images::samples::png_claiming(7_000, 7_000);
    let limits = Limits {
        max_alloc: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let (err, peak) = peak_during(|| process(&big, &limits).unwrap_err());
    assert_eq!(err, ImageError::MemoryLimit);
    assert!(peak < 1024 * 1024, "peak {peak} bytes while refusing");
}

//! A decompression bomb is refused from its header with bounded memory: a counting allocator
//! records the peak bytes live while `process` runs. One test in this binary, so no other test
//! allocates concurrently.
#![allow(unsafe_code)] // the counting allocator; test-only
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use likes_images::{ImageError, Limits, process};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

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

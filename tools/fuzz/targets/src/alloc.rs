//! A global allocator that tracks the bytes each thread holds, so a target can assert that a
//! call stayed within a memory budget. Binaries opt in with
//! `#[global_allocator] static A: fuzz_targets::alloc::Counting = fuzz_targets::alloc::Counting;`.

// A `GlobalAlloc` is unsafe by definition; this one only forwards to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Counts live bytes per thread on top of the system allocator.
pub struct Counting;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Signed: memory freed here may have been allocated by another thread or before a
    // measurement started. Const-initialised cells without drop glue never allocate.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes as i64;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - bytes as i64));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as if old and new coexist, as they do when the block moves.
            grow(new_size);
            shrink(layout.size());
        }
        new
    }
}

/// Runs `f` and returns its result with the most bytes this thread held at once during the
/// call beyond what it held before; `None` when [`Counting`] is not the global allocator.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, Option<u64>) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    let installed = INSTALLED.load(Ordering::Relaxed);
    (out, installed.then(|| u64::try_from(peak).unwrap_or(0)))
}

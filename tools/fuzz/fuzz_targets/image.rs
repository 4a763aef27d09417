#![no_main]

// The target checks its memory budget only under the counting allocator.
#[global_allocator]
static ALLOC: fuzz_targets::alloc::Counting = fuzz_targets::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::image::run(data));

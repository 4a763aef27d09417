#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::stream_event::run(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::hub_payload::run(data));

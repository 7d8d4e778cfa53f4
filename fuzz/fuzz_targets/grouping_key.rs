#![no_main]
//! See `pushkit_fuzz::grouping_key`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushkit_fuzz::grouping_key(data));

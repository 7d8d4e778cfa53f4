#![no_main]
//! See `pushkit_fuzz::text_parser`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushkit_fuzz::text_parser(data));

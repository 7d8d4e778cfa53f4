#![no_main]
//! See `pushkit_fuzz::body_decoder`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushkit_fuzz::body_decoder(data));

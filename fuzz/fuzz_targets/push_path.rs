#![no_main]
//! See `pushkit_fuzz::push_path`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushkit_fuzz::push_path(data));

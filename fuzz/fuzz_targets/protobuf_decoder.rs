#![no_main]
//! See `pushkit_fuzz::protobuf_decoder`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushkit_fuzz::protobuf_decoder(data));

//! Fuzz target: see `kite::fuzzing::sockjs_payload` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kite::fuzzing::sockjs_payload(data));

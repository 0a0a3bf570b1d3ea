//! Fuzz target: see `kite::fuzzing::jwt` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kite::fuzzing::jwt(data));

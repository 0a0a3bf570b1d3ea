//! Fuzz target: see `kite::fuzzing::kontrol_query` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kite::fuzzing::kontrol_query(data));

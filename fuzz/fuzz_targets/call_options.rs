//! Fuzz target: see `kite::fuzzing::call_options` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kite::fuzzing::call_options(data));

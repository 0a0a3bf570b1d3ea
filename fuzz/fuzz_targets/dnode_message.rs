//! Fuzz target: see `kite::fuzzing::dnode_message` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kite::fuzzing::dnode_message(data));

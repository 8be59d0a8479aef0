//! cargo-fuzz target: see the entry it calls for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spuff_agent::fuzzing::http(data);
});

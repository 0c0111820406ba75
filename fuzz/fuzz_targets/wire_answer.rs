//! Fuzz target: arbitrary bytes as a request answered from the wire cache, or read as a cached response, must never make it panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_agent::fuzz::wire_answer(data);
});

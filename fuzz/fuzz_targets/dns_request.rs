//! Fuzz target: arbitrary bytes as a DNS request to the resolver must never make it panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_agent::fuzz::dns_request(data);
});

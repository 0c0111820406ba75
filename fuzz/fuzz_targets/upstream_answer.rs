//! Fuzz target: arbitrary bytes as an upstream resolver's datagram judged against the forwarder's query and read as an answer, and as a DNS over HTTPS `dns` parameter, must never make it panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_agent::fuzz::upstream_answer(data);
});

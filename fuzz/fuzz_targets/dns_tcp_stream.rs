//! Fuzz target: arbitrary bytes as a DNS-over-TCP stream, cut into pieces, must come apart
//! into exactly the messages framed in it, and none may make the resolver panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_agent::fuzz::dns_tcp_stream(data);
});

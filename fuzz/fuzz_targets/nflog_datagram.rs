//! Fuzz target: arbitrary bytes as an NFLOG netlink datagram (and as a logged packet) must
//! never make the reader panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_agent::fuzz::nflog_datagram(data);
});

//! Fuzz target: arbitrary bytes as a QUIC client datagram and as the input of every tunnel
//! signature, HTTP and DNS reader, the fully-encrypted rules, STUN and RTP, and an ICMP echo
//! stream must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_inspect::fuzz::datagram(data));

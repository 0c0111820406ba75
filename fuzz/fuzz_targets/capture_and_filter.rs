//! Fuzz target: arbitrary bytes as a pcap or pcapng file (`replay`), and each frame through
//! the kernel filter's program as the kernel runs it, must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_inspect::fuzz::capture_and_filter(data));

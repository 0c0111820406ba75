//! Fuzz target: arbitrary bytes as a journal segment from a rotted or torn disk: scanning
//! must never panic, and what it finds must re-encode and scan back whole.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_agent::fuzz::journal_segment(data));

//! Fuzz target: arbitrary bytes as a list feed (plain, hosts, AdBlock, a UT1 archive or
//! Onionoo JSON, the first byte choosing) must never panic, and every entry read must be a
//! line a list file can hold.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_agent::fuzz::list_feed(data));

//! Fuzz target: arbitrary bytes as a school's roster export: reading never panics, and every
//! person read is found again by their username, in their role's group.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_people::fuzz::roster(data));

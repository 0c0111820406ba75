//! Fuzz target: arbitrary bytes as a RADIUS accounting packet, and as the attributes of one
//! signed with the client's secret: reading never panics, and what is read is answered under
//! its own identifier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_people::fuzz::radius(data));

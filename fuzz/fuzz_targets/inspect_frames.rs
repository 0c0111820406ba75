//! Fuzz target: arbitrary bytes as a run of frames of every link type through the whole
//! inspector (packet views, flow table, classifiers) must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_inspect::fuzz::frames(data);
});

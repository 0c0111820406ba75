//! Fuzz target: arbitrary bytes as the exceptions a gateway adds from the console's approved
//! requests, read beside a fixed policy, must never make the loader or the decision panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_engine::fuzz::added_exceptions(data);
});

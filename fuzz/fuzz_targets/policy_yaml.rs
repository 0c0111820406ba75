//! Fuzz target: arbitrary bytes as `policy.yaml` (and as every list file it names) must never
//! make the loader or the decision function panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_engine::fuzz::policy_yaml(data);
});

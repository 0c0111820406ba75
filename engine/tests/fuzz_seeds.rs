//! Replays the fuzz seed corpus through the fuzz body, so every seed (and every crash found
//! and fixed, once added) stays a regression test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

#[test]
fn policy_yaml_seeds_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/policy_yaml");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        schoolgate_engine::fuzz::policy_yaml(&data);
        n += 1;
    }
    assert!(n >= 4, "expected the checked-in seeds in {}", dir.display());
}

//! Fuzzing entry points, shared by `fuzz/` and the tests that replay its seeds.

use crate::roster;

/// Bytes as a roster file: reading never panics, every person read is found again by their
/// username, and each is in their role's group.
#[allow(
    clippy::panic,
    reason = "an assertion a fuzzer reports as a crash: what the roster read does not hold"
)]
pub fn roster(data: &[u8]) {
    let Ok(directory) = roster::parse(data) else {
        return;
    };
    for person in directory.iter() {
        let Some(found) = directory.find(person.username.as_str()) else {
            panic!("{} is not found by their username", person.username);
        };
        if found != person || !person.in_group(person.role.group()) {
            panic!("{} is read inconsistently", person.username);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checked-in fuzz seeds replayed through the fuzz body, so every crash once found
    //! stays fixed.
    #![allow(clippy::unwrap_used)]

    #[test]
    fn roster_fuzz_seeds_do_not_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/roster");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            super::roster(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
    }
}

//! Fuzzing entry points, shared by `fuzz/` and the tests that replay its seeds.

use crate::{radius, roster};

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

/// Bytes as a RADIUS accounting packet from a client with a known secret, and as the
/// attributes of a request signed with it (which reach the attribute reader, as forged bytes
/// never do): reading never panics, and a request read is answered under its identifier.
#[allow(
    clippy::panic,
    reason = "an assertion a fuzzer reports as a crash: an answer to the wrong request"
)]
pub fn radius(data: &[u8]) {
    const SECRET: &[u8] = b"testing123";
    let _ = radius::parse_request(data, SECRET);
    let signed = radius::signed_request(9, data, SECRET);
    if let Ok(request) = radius::parse_request(&signed, SECRET) {
        let answer = radius::response(&request, SECRET);
        if answer.get(1) != Some(&9) {
            panic!("the answer does not carry the request's identifier");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checked-in fuzz seeds replayed through the fuzz body, so every crash once found
    //! stays fixed.
    #![allow(clippy::unwrap_used)]

    /// Runs every checked-in seed of fuzz target `target` through `body`; at least 7 must be
    /// there.
    fn replay_seeds(target: &str, body: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            body(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
    }

    #[test]
    fn roster_fuzz_seeds_do_not_panic() {
        replay_seeds("roster", super::roster);
    }

    #[test]
    fn radius_fuzz_seeds_do_not_panic() {
        replay_seeds("radius", super::radius);
    }
}

//! Fuzzing entry points, shared by `fuzz/` (cargo-fuzz) and the tests that replay the seed
//! corpus, so both exercise the same code.

use std::io;
use std::path::Path;

use jiff::Timestamp;

use crate::{Client, Policy, decide, explain};

/// Loads arbitrary bytes as a policy whose every list file holds the same bytes, and, when it
/// loads, asks it a few questions. Must never panic.
pub fn policy_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lists = |_: &Path| -> io::Result<String> { Ok(text.to_string()) };
    let Ok(policy) = Policy::from_yaml(&text, Path::new("fuzz/policy.yaml"), &lists) else {
        return;
    };
    let clients = [
        Client::new(
            "10.10.3.7"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            None,
        ),
        Client::new(
            std::net::Ipv6Addr::LOCALHOST.into(),
            "52:54:00:12:34:56".parse().ok(),
        ),
    ];
    let instants = [
        Timestamp::UNIX_EPOCH,
        Timestamp::from_second(1_795_600_800).unwrap_or_default(),
        Timestamp::MAX,
    ];
    for client in &clients {
        for now in instants {
            for name in [
                "facebook.com",
                "www.dbprimary.com",
                text.lines().next().unwrap_or(""),
            ] {
                for quarantined in [false, true] {
                    let d = decide(&policy, client, None, name, now, quarantined);
                    let _ = explain::sentence(&policy, &d, client, None, name, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checked-in seed corpus replayed through the fuzz body, so every seed (and every
    //! crash found and fixed, once added) stays a regression test.

    use std::path::Path;

    #[test]
    fn policy_yaml_seeds_do_not_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/policy_yaml");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            super::policy_yaml(&data);
            n += 1;
        }
        assert!(n >= 4, "expected the checked-in seeds in {}", dir.display());
    }
}

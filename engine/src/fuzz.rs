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
                    let d = decide(&policy, client, name, now, quarantined);
                    let _ = explain::sentence(&policy, &d, client, name, now);
                }
            }
        }
    }
}

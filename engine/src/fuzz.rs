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

/// The policy the added exceptions are read beside: a video category kept from pupils,
/// which teachers may ask to open for any class.
const BESIDE: &str = r#"version: 1
school: { name: Fuzz Primary, timezone: Europe/London }
schedules:
  lessons: { days: [mon, tue, wed, thu, fri], times: ["09:00-10:00"] }
categories:
  video: { label: online video, domains: [video.example] }
groups:
  pupils: { directory: [Pupils], networks: [10.10.0.0/16] }
rules:
  - { name: No video for pupils, groups: [pupils], block: [video], when: lessons }
requests:
  - { name: Lesson video, allow: [video], classes: [all], longest_minutes: 60 }
"#;

/// Loads arbitrary bytes as the exceptions a gateway adds from the console's approved
/// requests (`console-exceptions.json`) beside a fixed policy, and asks the result a few
/// questions. A bad document leaves the policy as it was, with errors at the document's
/// place; nothing may panic.
pub fn added_exceptions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let no_lists = |_: &Path| -> io::Result<String> { Ok(String::new()) };
    let Ok((policy, _errors)) = Policy::from_yaml_with(
        BESIDE,
        Path::new("fuzz/policy.yaml"),
        &no_lists,
        Some((&text, Path::new("fuzz/console-exceptions.json"))),
    ) else {
        return;
    };
    let client = Client::new(std::net::Ipv4Addr::new(10, 10, 3, 7).into(), None);
    for now in [
        Timestamp::UNIX_EPOCH,
        Timestamp::from_second(1_795_600_800).unwrap_or_default(),
        Timestamp::MAX,
    ] {
        let d = decide(&policy, &client, None, "video.example", now, false);
        let _ = explain::sentence(&policy, &d, &client, None, "video.example", now);
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

    #[test]
    fn added_exceptions_seeds_do_not_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/added_exceptions");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            super::added_exceptions(&data);
            n += 1;
        }
        assert!(n >= 3, "expected the checked-in seeds in {}", dir.display());
    }

    /// The fixed policy loads, and a well-formed added exception opens video for 6B: the
    /// fuzz body reaches past the loader.
    #[test]
    fn the_fuzz_bodys_policy_takes_an_added_exception() {
        let seed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/seeds/added_exceptions/one_exception.json"),
        )
        .unwrap();
        let no_lists = |_: &Path| -> std::io::Result<String> { Ok(String::new()) };
        let (policy, errors) = crate::Policy::from_yaml_with(
            super::BESIDE,
            Path::new("policy.yaml"),
            &no_lists,
            Some((&seed, Path::new("console-exceptions.json"))),
        )
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy.exceptions().len(), 1);
    }
}

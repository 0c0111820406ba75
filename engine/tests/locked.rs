//! A locked category (`locked: true`, for the illegal-content lists a school receives): blocked
//! for everyone at every moment, and nothing the policy, a teacher's request or the console adds
//! may open it, by its name or by a name or address it lists.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

mod common;

use common::lists;
use schoolgate_engine::{Action, Client, Policy, decide};

const POLICY: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
calendar:
  terms:
    - { name: Autumn, from: 2026-09-03, to: 2026-12-18 }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
categories:
  social: { domains: [instagram.com] }
  illegal: { locked: true, lists: [lists/illegal.txt] }
groups:
  staff: { networks: [10.20.0.0/16] }
  pupils: { networks: [10.10.0.0/16] }
rules:
  - { name: Staff see everything, groups: [staff], allow: [social, example.org], when: always }
  - { name: Pupils off social, groups: [pupils], block: [social], when: school_day }
exceptions:
  - { name: Art lesson, groups: [pupils], allow: [social], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head }
requests:
  - { name: Lesson video, allow: [social], groups: [pupils], longest_minutes: 60 }
"#;

const LIST: &str = "abuse.example\n198.51.100.0/24\n";

fn load(yaml: &str, added: Option<&str>) -> Result<(Policy, Vec<String>), Vec<String>> {
    Policy::from_yaml_with(
        yaml,
        Path::new("/school/policy.yaml"),
        &lists(&[("lists/illegal.txt", LIST)]),
        added.map(|a| (a, Path::new("/state/console-exceptions.yaml"))),
    )
    .map(|(p, skipped)| (p, skipped.iter().map(|e| e.to_string()).collect()))
    .map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

#[test]
fn a_locked_category_is_blocked_for_everyone_at_every_moment() {
    let (policy, _) = load(POLICY, None).unwrap();
    // Staff in a rule that allows all it names; pupils in their exception's hour; a device in
    // no group at midnight on a Sunday.
    for (ip, when) in [
        ("10.20.0.5", "2026-11-24T13:30:00Z"),
        ("10.10.0.5", "2026-11-24T13:30:00Z"),
        ("192.0.2.7", "2026-11-29T00:00:00Z"),
    ] {
        let client = Client::new(ip.parse().unwrap(), None);
        let now = when.parse().unwrap();
        for name in ["abuse.example", "www.abuse.example", "198.51.100.9"] {
            let d = decide(&policy, &client, None, name, now, false);
            assert_eq!(d.action, Action::Block, "{name} from {ip}: {d:?}");
            assert_eq!(d.rule_name(&policy), Some("Locked category illegal"));
            assert_eq!(d.category(&policy), Some("illegal"));
            assert_eq!(d.until, None, "it never changes");
        }
        // What is not locked is decided as before.
        let d = decide(&policy, &client, None, "example.org", now, false);
        assert_ne!(d.rule_name(&policy), Some("Locked category illegal"));
    }
}

#[test]
fn nothing_in_the_policy_may_open_a_locked_category() {
    let yaml = POLICY
        .replace(
            "allow: [social, example.org], when: always",
            "allow: [social, illegal, www.abuse.example], when: always",
        )
        .replace(
            "allow: [social], from: 2026-11-24T13:00",
            "allow: [198.51.100.7], from: 2026-11-24T13:00",
        )
        .replace(
            "allow: [social], groups: [pupils], longest_minutes",
            "allow: [illegal], groups: [pupils], longest_minutes",
        )
        + "bypass:\n  quarantine_allow: [abuse.example]\n";
    let errors = load(&yaml, None).unwrap_err();
    let has = |at: &str, text: &str| {
        assert!(
            errors.iter().any(|e| e.starts_with(at) && e.contains(text)),
            "{at} {text}: {errors:#?}"
        );
    };
    has(
        "/school/policy.yaml:15:68:",
        "`illegal` is in the locked category `illegal`: no rule may open it",
    );
    has(
        "/school/policy.yaml:15:77:",
        "`www.abuse.example` is in the locked category `illegal`: no rule may open it",
    );
    has(
        "/school/policy.yaml:18:51:",
        "`198.51.100.7` is in the locked category `illegal`: no exception may open it",
    );
    has(
        "/school/policy.yaml:20:35:",
        "`illegal` is in the locked category `illegal`: no request may open it",
    );
    has(
        "/school/policy.yaml:22:22:",
        "`abuse.example` is in the locked category `illegal`: no quarantine_allow may open it",
    );
    // Blocking it again, or naming what it does not list, is no error.
    let fine = POLICY.replace(
        "block: [social], when: school_day",
        "block: [social, illegal, abuse.example.net], when: school_day",
    );
    load(&fine, None).unwrap();
}

#[test]
fn an_exception_the_console_adds_cannot_open_one() {
    let added = "exceptions:\n  \
        - { name: Asked, groups: [pupils], allow: [illegal], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head }\n  \
        - { name: Site, groups: [pupils], allow: [abuse.example], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head }\n  \
        - { name: Fine, groups: [pupils], allow: [social], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head }\n";
    let (policy, skipped) = load(POLICY, Some(added)).unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(
        skipped
            .iter()
            .all(|e| e.starts_with("/state/console-exceptions.yaml:") && e.contains("locked")),
        "{skipped:#?}"
    );
    let names: Vec<&str> = policy
        .exceptions()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["Art lesson", "Fine"]);
    let client = Client::new("10.10.0.5".parse().unwrap(), None);
    let now = "2026-11-24T13:30:00Z".parse().unwrap();
    let d = decide(&policy, &client, None, "abuse.example", now, false);
    assert_eq!(d.action, Action::Block);
}

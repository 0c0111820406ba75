//! A category's feeds in `policy.yaml`: what is checked where it is written, where the last
//! good copy is read from, and that a locked category's feed holds against an exception.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schoolgate_engine::policy::feed::{FeedFormat, Pin, cache_name};
use schoolgate_engine::{Action, Client, Policy, decide};

const POLICY: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
categories:
  gambling:
    feeds:
      - { url: "https://lists.example/gambling.txt", refresh: 6h }
  adult:
    feeds:
      - { url: "https://lists.example/blacklists.tar.gz", format: ut1, section: adult, max_size: 200MB,
          sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 }
  illegal:
    locked: true
    feeds:
      - { url: "https://lists.example/illegal.txt", minisign_key: RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 }
groups:
  pupils: { networks: [10.10.0.0/16] }
rules:
  - { name: Pupils off gambling, groups: [pupils], block: [gambling, adult] }
gateway:
  state_dir: /state
  dns: { block_response: nxdomain }
"#;

/// Files held in memory by their full path.
fn files(found: &[(PathBuf, &str)]) -> impl Fn(&Path) -> io::Result<String> {
    let map: HashMap<PathBuf, String> = found
        .iter()
        .map(|(p, t)| (p.clone(), t.to_string()))
        .collect();
    move |p: &Path| {
        map.get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn copy(category: &str, url: &str, section: Option<&str>) -> PathBuf {
    Path::new("/state/feeds").join(cache_name(category, url, section))
}

fn load(yaml: &str, found: &[(PathBuf, &str)]) -> Result<Policy, Vec<String>> {
    Policy::from_yaml_with(yaml, Path::new("/school/policy.yaml"), &files(found), None)
        .map(|(p, _)| p)
        .map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

fn pupil_asks(policy: &Policy, name: &str) -> Action {
    let client = Client::new("10.10.1.2".parse().unwrap(), None);
    let now = "2026-11-24T10:00:00Z".parse().unwrap();
    decide(policy, &client, None, name, now, false).action
}

#[test]
fn feeds_are_read_from_their_copies_and_none_yet_is_no_error() {
    // Nothing fetched yet: the policy loads, and its feeds list nothing.
    let policy = load(POLICY, &[]).unwrap();
    assert_eq!(pupil_asks(&policy, "bet.example"), Action::Allow);
    let feeds = policy.feeds();
    assert_eq!(feeds.len(), 3);
    assert_eq!(feeds[0].category, "gambling");
    assert_eq!(feeds[0].format, FeedFormat::Domains);
    assert_eq!(feeds[0].refresh, Duration::from_secs(6 * 3600));
    assert_eq!(feeds[0].max_bytes, 64 << 20);
    assert_eq!(feeds[0].pin, Pin::None);
    assert_eq!(
        feeds[0].cache,
        copy("gambling", "https://lists.example/gambling.txt", None)
    );
    assert_eq!(feeds[1].format, FeedFormat::Ut1);
    assert_eq!(feeds[1].section.as_deref(), Some("adult"));
    assert_eq!(feeds[1].max_bytes, 200 << 20);
    assert!(matches!(feeds[1].pin, Pin::Sha256(d) if d[0] == 0xe3));
    assert!(matches!(&feeds[2].pin, Pin::Minisign(k) if k.starts_with("RWQf")));

    // Fetched: the copies are list files.
    let policy = load(
        POLICY,
        &[
            (
                copy("gambling", "https://lists.example/gambling.txt", None),
                "# 2 entries\nbet.example\ncasino.example\n",
            ),
            (
                copy(
                    "adult",
                    "https://lists.example/blacklists.tar.gz",
                    Some("adult"),
                ),
                "adult.example\n",
            ),
        ],
    )
    .unwrap();
    assert_eq!(pupil_asks(&policy, "www.bet.example"), Action::Block);
    assert_eq!(pupil_asks(&policy, "adult.example"), Action::Block);
    assert_eq!(pupil_asks(&policy, "bbc.co.uk"), Action::Allow);
}

#[test]
fn a_locked_categorys_feed_holds_against_an_exception() {
    let illegal = copy("illegal", "https://lists.example/illegal.txt", None);
    let with_exception = POLICY.replace(
        "gateway:",
        "exceptions:\n  - { name: Research, groups: [pupils], allow: [abuse.example], from: 2026-11-24T09:00, to: 2026-11-24T11:00, approved_by: Head }\ngateway:",
    );
    let errors = load(&with_exception, &[(illegal.clone(), "abuse.example\n")]).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`abuse.example` is in the locked category `illegal`")),
        "{errors:?}"
    );
    let policy = load(POLICY, &[(illegal, "abuse.example\n")]).unwrap();
    assert_eq!(pupil_asks(&policy, "abuse.example"), Action::Block);
}

#[test]
fn what_a_feed_says_is_checked_where_it_is_written() {
    let bad = r#"version: 1
school: { name: Test School, timezone: Europe/London }
categories:
  a:
    feeds:
      - { url: "http://lists.example/a.txt" }
      - { url: "https://lists.example/b.txt", format: csv }
      - { url: "https://lists.example/c.tar.gz", format: ut1 }
      - { url: "https://lists.example/d.txt", section: adult }
      - { url: "https://lists.example/e.txt", refresh: 5m }
      - { url: "https://lists.example/f.txt", max_size: 2GB }
      - { url: "https://lists.example/g.txt", sha256: abc }
      - { url: "https://lists.example/h.txt", minisign_key: not-a-key }
      - { url: "https://lists.example/i.txt", sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855, minisign_key: RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 }
"#;
    let errors = load(bad, &[]).unwrap_err();
    let expect = [
        "policy.yaml:6:",
        "`http://lists.example/a.txt` is not a feed address",
        "policy.yaml:7:",
        "unknown feed format `csv`",
        "a `ut1` feed needs `section`",
        "`section` is for `ut1` archives only",
        "`5m` is not a refresh interval",
        "`2GB` is not a size",
        "`abc` is not a SHA-256",
        "`not-a-key` is not a minisign public key",
        "not both",
    ];
    let all = errors.join("\n");
    for e in expect {
        assert!(all.contains(e), "missing {e:?} in:\n{all}");
    }
}

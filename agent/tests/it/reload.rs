//! Hot reload: a good edit is applied, a broken one is refused and the old policy kept, and
//! an editor's save by rename is picked up — as is an edit to a list file.

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use jiff::Timestamp;
use schoolgate_agent::reload::{LivePolicy, Outcome};
use schoolgate_engine::{Action, Client, decide};

use super::repo;

/// A copy of the shipped policy and lists in a temporary directory.
fn school() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("lists")).unwrap();
    fs::copy(repo().join("policy.yaml"), dir.path().join("policy.yaml")).unwrap();
    for entry in fs::read_dir(repo().join("lists")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            dir.path().join("lists").join(entry.file_name()),
        )
        .unwrap();
    }
    dir
}

fn pupil_may_reach(live: &LivePolicy, name: &str) -> bool {
    let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    let client = Client::new("10.10.3.7".parse().unwrap(), None);
    decide(&live.current(), &client, None, name, now, false).action == Action::Allow
}

/// Writes `text` as an editor that saves by rename does: a new file, renamed over the old.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.swp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The next reload that did something. One save can reach the watcher as more than one batch
/// of events; the reloads after the first find nothing new, or the same errors again.
fn next(rx: &mpsc::Receiver<String>, last: &mut String) -> String {
    loop {
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no reload within 10 s");
        if got != "unchanged" && got != *last {
            *last = got.clone();
            return got;
        }
    }
}

/// Waits until no reload has happened for `quiet`; fails if reloads never stop (a reload
/// that triggers itself).
fn settle(rx: &mpsc::Receiver<String>, quiet: Duration) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rx.recv_timeout(quiet).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "reloads keep happening with no edits"
        );
    }
}

#[test]
fn edits_are_applied_broken_edits_refused_and_renames_seen() {
    let dir = school();
    let path = dir.path().join("policy.yaml");
    let live = LivePolicy::load(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    let _watch = live
        .watch(Duration::from_millis(100), move |o| {
            let what = match o {
                Outcome::Applied(p) => format!("applied {}", p.rules().len()),
                Outcome::Unchanged => "unchanged".to_owned(),
                Outcome::Restored => "restored".to_owned(),
                Outcome::Rejected(e) => format!("rejected {e}"),
                _ => "other".to_owned(),
            };
            let _ = tx.send(what);
        })
        .unwrap();
    assert!(!pupil_may_reach(&live, "www.facebook.com"));
    assert!(pupil_may_reach(&live, "www.bbc.co.uk"));
    let original = fs::read_to_string(&path).unwrap();
    let mut last = String::new();

    // A good edit written in place: a new rule blocks the BBC for pupils.
    let edited = original.replace(
        "rules:\n",
        "rules:\n  - { name: No BBC, groups: [pupils], block: [bbc.co.uk] }\n",
    );
    fs::write(&path, &edited).unwrap();
    assert_eq!(next(&rx, &mut last), "applied 7");
    assert!(!pupil_may_reach(&live, "www.bbc.co.uk"));

    // A broken edit is refused with its errors; the last good policy stays.
    fs::write(
        &path,
        edited.replace("when: school_day }", "when: school_dya }"),
    )
    .unwrap();
    let said = next(&rx, &mut last);
    assert!(said.starts_with("rejected "), "{said}");
    assert!(said.contains("unknown schedule `school_dya`"), "{said}");
    assert!(said.contains("policy.yaml:"), "{said}");
    assert_eq!(live.current().rules().len(), 7);
    assert!(!pupil_may_reach(&live, "www.bbc.co.uk"));

    // The broken edit undone, back to the policy in force: reported as restored, once.
    fs::write(&path, &edited).unwrap();
    assert_eq!(next(&rx, &mut last), "restored");
    assert_eq!(live.current().rules().len(), 7);

    // An editor's save by rename is picked up.
    save_by_rename(&path, &original);
    assert_eq!(next(&rx, &mut last), "applied 6");
    assert!(pupil_may_reach(&live, "www.bbc.co.uk"));

    // So is an edit to a list file.
    let list = dir.path().join("lists/social_networking.txt");
    let mut text = fs::read_to_string(&list).unwrap();
    text.push_str("bbc.co.uk\n");
    save_by_rename(&list, &text);
    last.clear();
    assert_eq!(next(&rx, &mut last), "applied 6");
    assert!(!pupil_may_reach(&live, "www.bbc.co.uk"));

    // Touching a file without changing it is not a new policy.
    settle(&rx, Duration::from_millis(500));
    fs::write(&path, fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "unchanged"
    );
    assert!(!pupil_may_reach(&live, "www.bbc.co.uk"));

    // Other files in the directory do not cause reloads.
    settle(&rx, Duration::from_millis(500));
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let extra = rx.recv_timeout(Duration::from_millis(800));
    assert!(extra.is_err(), "{extra:?}");
}

#[test]
fn a_bad_policy_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    fs::write(&path, "version: 1\n").unwrap();
    let err = LivePolicy::load(&path).unwrap_err();
    assert!(err.to_string().contains("missing field `school`"), "{err}");
}

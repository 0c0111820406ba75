//! The agent's journal reaches the console exactly once, whatever happens on the way: the
//! console down while events are made, the agent killed with SIGKILL while it ships, the
//! console killed and started again, and a torn journal tail. The console and the agent run
//! on the lab's gateway, talking HTTPS over its loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use schoolgate_tests::lab::{GATEWAY, Lab, PUPIL, eventually};
use schoolgate_tests::{console, require_lab};

const CONSOLE: &str = "127.0.0.1:18443";

/// The ids the console holds.
fn console_ids(lab: &Lab) -> Vec<String> {
    console::query(lab, "SELECT id FROM events WHERE agent = 'gw1' ORDER BY id")
}

fn journal_ids(lab: &Lab) -> BTreeSet<String> {
    lab.events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn cursor(lab: &Lab) -> u64 {
    std::fs::read_to_string(lab.path("state/journal/cursor"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Asks `count` blocked names from the pupil, one `dig` batch.
fn ask_blocked(lab: &Lab, tag: &str, count: usize) {
    let names: String = (0..count)
        .map(|i| format!("{tag}{i}.instagram.com A +tries=1 +time=2\n"))
        .collect();
    let file = lab.path(&format!("{tag}.names"));
    std::fs::write(&file, names).unwrap();
    let out = lab.exec(
        PUPIL.name,
        &[
            "dig",
            &format!("@{GATEWAY}"),
            "-f",
            file.to_str().unwrap(),
            "+short",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_journaled_event_reaches_the_console_exactly_once() {
    require_lab!();
    let mut lab = Lab::up();
    console::prepare(&lab, &["127.0.0.1"]);
    let policy_file = lab.path("policy.yaml");
    std::fs::write(
        &policy_file,
        console::agent_policy(&lab, CONSOLE, &lab.path("state")),
    )
    .unwrap();

    // 1. The console is down: the agent journals 1,500 blocked names (flushed at its stop),
    //    and its shipper keeps retrying.
    lab.spawn_agent("agent1", &policy_file, &[]);
    assert!(eventually(10, || lab
        .log("agent1")
        .contains("sending events to the console")));
    ask_blocked(&lab, "a", 1500);
    lab.stop_cleanly("agent1");
    assert!(
        lab.log("agent1")
            .contains("cannot send events to the console")
    );
    let first = journal_ids(&lab);
    assert!(first.len() >= 1502, "{} events journaled", first.len());
    assert_eq!(
        cursor(&lab),
        0,
        "nothing acknowledged while the console is down"
    );

    // 2. The console comes up; the agent starts shipping in batches of 1,000 and is killed
    //    with SIGKILL as soon as the first is acknowledged.
    console::start(&mut lab, "console1", CONSOLE);
    lab.spawn_agent("agent2", &policy_file, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cursor(&lab) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    lab.signal("agent2", "KILL");
    lab.wait("agent2", Duration::from_secs(5));
    let after_kill = cursor(&lab);
    assert!(after_kill > 0, "{}", lab.log("agent2"));

    // 3. The console is killed too, a torn write is left at the end of the journal, and
    //    the agent comes back while the console is still down: it skips the damage and
    //    records it, and journals more.
    lab.signal("console1", "KILL");
    lab.wait("console1", Duration::from_secs(5));
    let journal = lab.path("state/journal");
    let mut segments: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(b"SG\x40\x00\x00\x00torn");
    std::fs::write(last, bytes).unwrap();
    let before_restart = journal_ids(&lab);
    lab.spawn_agent("agent3", &policy_file, &[]);
    assert!(
        eventually(10, || lab.log("agent3").contains("journal damage skipped")),
        "{}",
        lab.log("agent3")
    );
    ask_blocked(&lab, "b", 300);
    std::thread::sleep(Duration::from_secs(1));

    // 4. The console is back: everything is shipped, and the agent stops cleanly.
    console::start(&mut lab, "console2", CONSOLE);
    assert!(
        eventually(30, || lab.log("agent3").contains("events shipped")
            || console_ids(&lab).len() > before_restart.len()),
        "{}",
        lab.log("agent3")
    );
    lab.stop_cleanly("agent3");
    // Every id journaled at any point: the snapshot taken before anything was sent, the
    // one before the last start, and what the journal holds now.
    let mut journaled = first.clone();
    journaled.extend(before_restart);
    journaled.extend(journal_ids(&lab));
    assert!(
        eventually(10, || console_ids(&lab).len() >= journaled.len()),
        "the console has {} of {} events; missing: {:?}",
        console_ids(&lab).len(),
        journaled.len(),
        {
            let have: BTreeSet<String> = console_ids(&lab).into_iter().collect();
            let missing: Vec<_> = journaled.difference(&have).cloned().collect();
            lab.events()
                .into_iter()
                .filter(|e| missing.iter().any(|m| e["id"] == m.as_str()))
                .collect::<Vec<_>>()
        }
    );
    let stored = console_ids(&lab);
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "an id stored twice");
    assert_eq!(
        unique, journaled,
        "the console holds exactly what was journaled"
    );
    // The damage was recorded, and that record reached the console too.
    let evidence = console::query(
        &lab,
        "SELECT evidence FROM events WHERE kind = 'journal_damaged'",
    )
    .join("\n");
    assert!(
        evidence.contains("its last write was cut short"),
        "no journal_damaged event: {evidence}"
    );
    eprintln!(
        "{} events journaled and stored once each; cursor {after_kill} when the agent was killed",
        unique.len()
    );
}

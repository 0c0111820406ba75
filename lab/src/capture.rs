//! Captures made in the lab and judged by `schoolgate-agent replay`: tcpdump started on a
//! host's interface and stopped once it has written what it saw, and the capture replayed,
//! with or without the kernel filter, into the observations `replay --json` prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Lab, eventually, json_lines, workspace_bin};

/// A policy for captures made on loopback: every address there is a pupil's.
pub const LOOPBACK_POLICY: &str = "version: 1
school: { name: Lab Primary School, timezone: UTC }
categories:
  social_networking: { domains: [instagram.com] }
groups:
  pupils: { networks: [127.0.0.0/8] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social_networking] }
";

/// The label tcpdump runs under.
const LABEL: &str = "tcpdump";

/// Starts tcpdump on `host`'s `interface`, writing packets matching `expression` to
/// `capture`; returns once it is listening.
pub fn start(lab: &mut Lab, host: &str, interface: &str, capture: &Path, expression: &str) {
    let capture = capture.to_str().expect("a UTF-8 path");
    lab.spawn(
        host,
        LABEL,
        &["tcpdump", "-U", "-i", interface, "-w", capture, expression],
    );
    assert!(
        eventually(5, || lab.log(LABEL).contains("listening on")),
        "tcpdump did not start: {}",
        lab.log(LABEL)
    );
}

/// Stops tcpdump after it has read what its socket holds: it stops at once on SIGINT,
/// leaving behind what it has not read yet.
pub fn stop(lab: &mut Lab) {
    std::thread::sleep(Duration::from_secs(1));
    lab.signal(LABEL, "INT");
    assert!(
        lab.wait(LABEL, Duration::from_secs(5)).is_some(),
        "tcpdump did not stop: {}",
        lab.log(LABEL)
    );
}

/// What `replay --json` makes of `capture` under `policy`, through the kernel filter's
/// program when `filter`.
pub fn replay(policy: &Path, capture: &Path, filter: bool) -> Vec<serde_json::Value> {
    let mut replay = Command::new(workspace_bin("schoolgate-agent"));
    replay
        .args(["replay", "--json", "--policy"])
        .arg(policy)
        .arg(capture);
    if filter {
        replay.arg("--filter");
    }
    json_lines(&mut replay)
}

//! DNS over QUIC captured on a loopback interface, as a capture made on a resolver's own host
//! or a developer's machine is: aioquic with ALPN `doq` to 127.0.0.1 on a port that is not
//! DoQ's, recorded by tcpdump on `lo` in a namespace, then judged by `schoolgate-agent
//! replay` (with and without the kernel filter). The ALPN tells it, whatever the port and
//! wherever the capture was made.
//!
//! Skipped, saying so, when tcpdump or aioquic is not installed (`.ci/run` installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use schoolgate_tests::lab::{self, Lab, eventually};
use schoolgate_tests::{require_lab, require_tools};

/// The Python with aioquic that runs `tests/scripts/h3.py`.
fn lab_python() -> String {
    std::env::var("SCHOOLGATE_LAB_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/../target/lab-venv/bin/python3",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

const POLICY: &str = "version: 1
school: { name: Lab Primary School, timezone: UTC }
categories:
  social_networking: { domains: [instagram.com] }
groups:
  pupils: { networks: [127.0.0.0/8] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social_networking] }
";

#[test]
fn dns_over_quic_on_loopback_on_any_port() {
    require_lab!();
    let aioquic = Command::new(lab_python())
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if aioquic {
        lab::missing_tool(&["tcpdump"])
    } else {
        Some("aioquic")
    };
    require_tools!(missing);
    let mut lab = Lab::up();
    let capture = lab.path("doq-lo.pcap");
    lab.spawn(
        "inet",
        "tcpdump",
        &[
            "tcpdump",
            "-U",
            "-i",
            "lo",
            "-w",
            capture.to_str().unwrap(),
            "udp",
            "port",
            "5353",
        ],
    );
    assert!(
        eventually(5, || lab.log("tcpdump").contains("listening on lo")),
        "tcpdump did not start: {}",
        lab.log("tcpdump")
    );
    // No server answers: the client's Initials are what the capture holds.
    let _ = lab.exec(
        "inet",
        &[
            "sh",
            "-c",
            &format!(
                "{} {}/scripts/h3.py get 127.0.0.1 5353 doq.lab doq",
                lab_python(),
                env!("CARGO_MANIFEST_DIR")
            ),
        ],
    );
    lab.signal("tcpdump", "INT");
    assert!(
        lab.wait("tcpdump", std::time::Duration::from_secs(5))
            .is_some()
    );

    std::fs::write(lab.path("policy.yaml"), POLICY).unwrap();
    for filter in [false, true] {
        let mut replay = Command::new(lab::workspace_bin("schoolgate-agent"));
        replay
            .args(["replay", "--json", "--policy"])
            .arg(lab.path("policy.yaml"))
            .arg(&capture);
        if filter {
            replay.arg("--filter");
        }
        let out = replay.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let doq = seen
            .iter()
            .find(|o| o["technique"] == "dns_over_quic")
            .unwrap_or_else(|| panic!("no DoQ (filter: {filter}): {seen:#?}"));
        assert_eq!(doq["server"], "127.0.0.1:5353", "{doq}");
        assert_eq!(doq["transport"], "quic");
        assert!(
            doq["evidence"]
                .as_str()
                .unwrap()
                .contains("QUIC Initial SNI doq.lab, ALPN doq"),
            "{doq}"
        );
    }
}

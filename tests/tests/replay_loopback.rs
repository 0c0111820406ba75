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

use schoolgate_tests::lab::{self, Lab, capture};
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
    capture::start(&mut lab, "inet", "lo", &capture, "udp port 5353");
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
    capture::stop(&mut lab);

    std::fs::write(lab.path("policy.yaml"), capture::LOOPBACK_POLICY).unwrap();
    for filter in [false, true] {
        let seen = capture::replay(&lab.path("policy.yaml"), &capture, filter);
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

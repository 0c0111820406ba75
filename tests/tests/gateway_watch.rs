//! `schoolgate-agent watch` on the gateway's LAN interface, through the kernel filter:
//! a pupil's device opens TLS and WireGuard flows, each followed by bulk data, at a steady
//! rate (`lab-flood`), and every flow start is printed, named, with the bulk kept in the
//! kernel. The rate here is modest, for a debug build on a shared machine; the rates the
//! capture keeps up with are measured by `bench/live.sh` (docs/PERFORMANCE.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;

use schoolgate_tests::lab::{self, Lab, PUPIL, eventually};
use schoolgate_tests::require_lab;

const POLICY: &str = r#"version: 1
school: { name: Lab Primary School, timezone: UTC }
categories:
  vpn: { domains: [vpn.example], technique: vpn_app }
groups:
  pupils: { networks: [10.77.0.0/28] }
rules:
  - { name: No VPNs, groups: [pupils], block: [vpn] }
bypass:
  response: { pupils: quarantine }
"#;

#[test]
fn watch_prints_every_flow_start_and_leaves_bulk_in_the_kernel() {
    require_lab!();
    let mut lab = Lab::up();
    std::fs::write(lab.path("policy.yaml"), POLICY).unwrap();
    let agent = lab::workspace_bin("schoolgate-agent");
    let seen = lab.path("seen.jsonl");
    lab.spawn(
        "gw",
        "watch",
        &[
            "sh",
            "-c",
            &format!(
                "exec {} watch --interface lan0 --json --seconds 8 --policy {} > {}",
                agent.display(),
                lab.path("policy.yaml").display(),
                seen.display()
            ),
        ],
    );
    assert!(
        eventually(5, || lab.log("watch").contains("watching lan0")),
        "{}",
        lab.log("watch")
    );
    let flood = schoolgate_tests::lab::workspace_bin("lab-flood");
    let flood = flood.to_str().unwrap();
    // 4,000 packets a second for 2 s: about 820 flow starts, each with 8 bulk packets.
    let out = lab.exec(
        PUPIL.name,
        &[flood, PUPIL.ip, "198.18.0.1", "4000", "2", "8"],
    );
    assert!(out.status.success(), "{out:?}");
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sent["errors"], 0, "{sent}");
    let starts = sent["flow_starts"].as_u64().unwrap();
    assert!(starts > 700, "{sent}");

    assert_eq!(
        lab.wait("watch", std::time::Duration::from_secs(15)),
        Some(0)
    );
    let log = lab.log("watch");
    let text = std::fs::read_to_string(&seen).unwrap();
    let mut flows = HashSet::new();
    for line in text.lines() {
        let o: serde_json::Value = serde_json::from_str(line).unwrap();
        if o["client"]
            .as_str()
            .is_some_and(|c| c.starts_with(PUPIL.ip))
            && (o["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(".bench.lab"))
                || o["technique"] == "wireguard")
        {
            flows.insert((o["client"].to_string(), o["server"].to_string()));
        }
    }
    assert_eq!(flows.len() as u64, starts, "{log}");
    // Only the flow starts, the TCP SYNs and the head of each TLS flow's one write (its last
    // segment has PSH) come up, and the odd ARP or ICMP frame; the rest of the bulk data,
    // seven packets in nine or ten, stays in the kernel.
    let frames: u64 = log
        .split_whitespace()
        .zip(log.split_whitespace().skip(1))
        .find(|(_, w)| *w == "frames,")
        .and_then(|(n, _)| n.trim_start_matches("lan0:").parse().ok())
        .unwrap_or_else(|| panic!("no frame count: {log}"));
    let packets = sent["packets"].as_u64().unwrap();
    assert!(
        frames >= starts && frames < packets * 3 / 10,
        "{frames} of {packets}: {log}"
    );
    // Judged by the policy: the TLS flows' names are allowed, WireGuard is a bypass attempt.
    for line in text.lines() {
        let o: serde_json::Value = serde_json::from_str(line).unwrap();
        if o["technique"] == "wireguard" {
            assert!(
                matches!(o["action"].as_str(), Some("quarantine" | "alert")),
                "{o}"
            );
        } else if o["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(".bench.lab"))
        {
            assert_eq!(o["action"], "allow", "{o}");
        }
    }
}

//! Flows that carry no name, known by what they are and judged by where they go, with the
//! shipped `policy.yaml` and lists: a messaging app's call set up with STUN, or joined
//! mid-call as RTP, to its operator's published network; DNS over QUIC of a version whose
//! Initial cannot be read, to a listed resolver. The packets are built from RFC 8489 (STUN),
//! RFC 3550 (RTP) and RFC 9000 (QUIC's long header), not taken from a capture.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

use etherparse::PacketBuilder;
use schoolgate_agent::policy_file;
use schoolgate_agent::replay::{Format, Options, replay};

/// A pcap file (raw IP frames) holding `packets`, a millisecond apart.
fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut file = Vec::new();
    file.extend(0xa1b2_c3d4u32.to_le_bytes());
    file.extend(2u16.to_le_bytes());
    file.extend(4u16.to_le_bytes());
    file.extend([0; 8]);
    file.extend(65535u32.to_le_bytes());
    file.extend(101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, p) in packets.iter().enumerate() {
        file.extend(1_796_000_000u32.to_le_bytes());
        file.extend((i as u32 * 1000).to_le_bytes());
        file.extend((p.len() as u32).to_le_bytes());
        file.extend((p.len() as u32).to_le_bytes());
        file.extend(p);
    }
    file
}

fn udp(from: [u8; 4], to: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(from, to, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A STUN Binding request with a SOFTWARE attribute (RFC 8489 §5, §14.14).
fn binding_request() -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    m.extend([0x5a; 12]);
    m.extend([0x80, 0x22, 0x00, 0x04, b'c', b'a', b'l', b'l']);
    m
}

/// An RTP packet (RFC 3550 §5.1) of Opus audio, SRTP-encrypted payload.
fn rtp(seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(0x1234_5678u32.to_be_bytes());
    p.extend((0..90u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    p
}

/// Each observation of the capture, judged at `at` with the shipped policy.
fn judged(packets: &[Vec<u8>], at: &str) -> Vec<serde_json::Value> {
    let policy = policy_file::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml"),
        None,
    )
    .unwrap()
    .policy;
    let mut out = Vec::new();
    let options = Options {
        at: Some(at.parse().unwrap()),
        format: Format::Json,
        filter: false,
    };
    replay(&policy, &pcap(packets), options, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const PUPIL: [u8; 4] = [10, 10, 3, 7];
/// In Telegram's published 149.154.160.0/20.
const TELEGRAM: [u8; 4] = [149, 154, 167, 91];
/// In Meta's 157.240.0.0/16.
const META: [u8; 4] = [157, 240, 221, 62];
/// A school day's morning, and a Saturday evening.
const LESSON: &str = "2026-11-24T10:00:00Z";
const SATURDAY: &str = "2026-11-28T20:00:00Z";

#[test]
fn a_call_set_up_with_stun_to_telegram_is_telegram() {
    let seen = judged(
        &[udp(PUPIL, TELEGRAM, 50_000, 596, &binding_request())],
        LESSON,
    );
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let call = &seen[0];
    assert_eq!(call["app"], "telegram", "{call}");
    assert_eq!(call["category"], "social_networking");
    assert_eq!(call["action"], "block");
    assert!(
        call["evidence"]
            .as_str()
            .unwrap()
            .starts_with("STUN Binding request to 149.154.167.91:596"),
        "{call}"
    );
    // Out of school the pupils' rule does not apply.
    assert_eq!(
        judged(
            &[udp(PUPIL, TELEGRAM, 50_000, 596, &binding_request())],
            SATURDAY
        )[0]["action"],
        "allow"
    );
}

#[test]
fn a_call_joined_mid_flow_is_known_by_its_rtp_and_its_address() {
    // The capture starts mid-call: no set-up, three RTP packets from the pupil's phone.
    let packets: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            udp(
                PUPIL,
                META,
                3478,
                3480,
                &rtp(40_000 + i, 960 * u32::from(i)),
            )
        })
        .collect();
    let seen = judged(&packets, LESSON);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["app"], "meta", "{}", seen[0]);
    assert_eq!(seen[0]["action"], "block");
    assert!(
        seen[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("RTP media (payload type 111, SSRC 0x12345678)"),
        "{}",
        seen[0]
    );
    // The same stream to an address in no list is a call, allowed.
    let elsewhere: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            udp(
                PUPIL,
                [203, 0, 113, 9],
                3478,
                3480,
                &rtp(7 + i, 960 * u32::from(i)),
            )
        })
        .collect();
    let seen = judged(&elsewhere, LESSON);
    assert_eq!(seen[0]["app"], serde_json::Value::Null);
    assert_eq!(seen[0]["action"], "allow");
}

/// A client's first QUIC datagram of a version no one reads (RFC 9000 §17.2: long header,
/// fixed bit, Initial type, version, connection IDs), padded to 1,200 bytes.
fn unreadable_initial(version: u32) -> Vec<u8> {
    let mut p = vec![0xc3];
    p.extend(version.to_be_bytes());
    p.push(8);
    p.extend([0x42; 8]);
    p.push(0);
    p.resize(1200, 0x5c);
    p
}

#[test]
fn dns_over_quic_to_a_listed_resolver_needs_no_readable_initial() {
    // AdGuard DNS (listed in encrypted_dns.txt) on DoQ's port.
    let seen = judged(
        &[udp(
            PUPIL,
            [94, 140, 14, 14],
            51_000,
            853,
            &unreadable_initial(0x1a2a_3a4a),
        )],
        LESSON,
    );
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["technique"], "dns_over_quic", "{}", seen[0]);
    assert_eq!(seen[0]["action"], "quarantine");
    assert!(
        seen[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("version 0x1a2a3a4a")
    );
    // The same to an address in no list is QUIC, nothing more.
    let seen = judged(
        &[udp(
            PUPIL,
            [203, 0, 113, 9],
            51_000,
            443,
            &unreadable_initial(0x1a2a_3a4a),
        )],
        LESSON,
    );
    assert_eq!(seen[0]["transport"], "quic");
    assert_eq!(seen[0]["technique"], serde_json::Value::Null);
    assert_eq!(seen[0]["action"], "allow");
}

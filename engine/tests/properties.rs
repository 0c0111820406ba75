//! Properties of the decision function over random devices, names and instants, on both the
//! shipped policy and the edge-case fixture:
//! - the same question always gets the same answer;
//! - `until` is always after `now`;
//! - the decision does not change between `now` and `until`, and does change at `until`;
//! - with no `until`, the decision holds for years.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use schoolgate_engine::{Client, Decision, MacAddr, Policy, Reason, decide};

fn load(rel: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    let lists = |p: &Path| std::fs::read_to_string(p);
    Policy::from_yaml(&text, &path, &lists).unwrap()
}

fn policies() -> &'static [Policy; 2] {
    static P: OnceLock<[Policy; 2]> = OnceLock::new();
    P.get_or_init(|| {
        [
            load("../policy.yaml"),
            load("tests/fixtures/edge_cases.yaml"),
        ]
    })
}

/// Instants from August 2026 to January 2028: two clock changes each way, terms, holidays.
fn instant() -> impl Strategy<Value = Timestamp> {
    let from = "2026-08-01T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let to = "2028-01-01T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    (from..to, 0i32..1_000_000_000).prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap())
}

fn client() -> impl Strategy<Value = Client> {
    let v4 = prop_oneof![
        (0u8..=255, 0u8..=255).prop_map(|(c, d)| Ipv4Addr::new(10, 10, c, d)),
        (0u8..=255, 0u8..=255).prop_map(|(c, d)| Ipv4Addr::new(10, 20, c, d)),
        (0u8..=255, 0u8..=255).prop_map(|(c, d)| Ipv4Addr::new(10, 30, c, d)),
        Just(Ipv4Addr::new(10, 0, 0, 99)),
        Just(Ipv4Addr::new(10, 20, 1, 50)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
    .prop_map(IpAddr::V4);
    let v6 = prop_oneof![
        any::<u16>().prop_map(|x| Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, x)),
        any::<u16>().prop_map(|x| Ipv6Addr::new(0x2001, 0xdb8, 0x10, 6, 0, 0, 0, x)),
        any::<u128>().prop_map(Ipv6Addr::from),
    ]
    .prop_map(IpAddr::V6);
    let mac = prop_oneof![
        Just(None),
        Just(Some("52:54:00:12:34:56")),
        Just(Some("52:54:00:aa:bb:cc")),
        Just(Some("02:00:00:00:00:01")),
        Just(Some("02:00:00:00:00:02")),
    ];
    (prop_oneof![v4, v6], mac)
        .prop_map(|(ip, mac)| Client::new(ip, mac.map(|m| m.parse::<MacAddr>().unwrap())))
}

fn name() -> impl Strategy<Value = String> {
    let listed = prop_oneof![
        Just("facebook.com"),
        Just("youtube.com"),
        Just("googlevideo.com"),
        Just("dbprimary.com"),
        Just("roblox.com"),
        Just("minecraft.net"),
        Just("example.org"),
        Just("instagram.com"),
        Just("dns.google"),
        Just("evil.example"),
        Just("bbc.co.uk"),
        Just("tiktok.com"),
    ];
    let prefix = prop_oneof![
        Just(""),
        Just("www."),
        Just("m."),
        Just("a.b."),
        Just("not")
    ];
    let random = "[a-z0-9.-]{0,30}";
    prop_oneof![
        4 => (prefix, listed, any::<bool>(), any::<bool>()).prop_map(|(p, l, upper, dot)| {
            let mut n = format!("{p}{l}");
            if upper { n = n.to_uppercase(); }
            if dot { n.push('.'); }
            n
        }),
        1 => random.prop_map(String::from),
    ]
}

fn key<'p>(d: &Decision<'p>) -> (schoolgate_engine::Action, Reason, Option<&'p str>) {
    (d.action, d.reason, d.matched.map(|m| m.domain))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decisions_hold_until_until(which in 0usize..2, client in client(), name in name(), now in instant(), quarantined in any::<bool>(), frac in 0.0f64..1.0) {
        let policy = &policies()[which];
        let d = decide(policy, &client, None, &name, now, quarantined);
        // Deterministic.
        prop_assert_eq!(d, decide(policy, &client, None, &name, now, quarantined));
        match d.until {
            Some(until) => {
                prop_assert!(until > now, "until {} is not after now {}", until, now);
                // Unchanged anywhere in [now, until).
                let span = until.duration_since(now).as_secs_f64();
                let inside = now + SignedDuration::from_secs_f64(span * frac);
                let last = until - SignedDuration::from_nanos(1);
                for t in [inside, last] {
                    if t >= now && t < until {
                        let later = decide(policy, &client, None, &name, t, quarantined);
                        prop_assert_eq!(key(&later), key(&d), "changed at {} before until {}", t, until);
                    }
                }
                // Changed at until.
                let at = decide(policy, &client, None, &name, until, quarantined);
                prop_assert_ne!((at.action, at.reason), (d.action, d.reason), "no change at until {}", until);
            }
            None => {
                let years = SignedDuration::from_hours(24 * 365 * 3);
                let later = now + SignedDuration::from_secs_f64(years.as_secs_f64() * frac);
                prop_assert_eq!(key(&decide(policy, &client, None, &name, later, quarantined)), key(&d));
            }
        }
    }

    #[test]
    fn any_text_as_a_name_is_decided_without_panicking(name in "\\PC{0,300}", now in instant()) {
        let policy = &policies()[0];
        let client = Client::new(IpAddr::V4(Ipv4Addr::new(10, 10, 1, 1)), None);
        let d = decide(policy, &client, None, &name, now, false);
        prop_assert!(d.until.is_none_or(|u| u > now));
    }
}

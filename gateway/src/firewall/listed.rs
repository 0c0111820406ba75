//! Addresses the policy lists (public resolvers, VPN endpoints, Tor relays): which each group
//! is refused now, as disjoint ranges for nftables interval sets. Pure: policy and instant in.
//!
//! Each listed address and network is judged by the decision engine, for each group, the way
//! a listed domain is. Networks may nest (a /24 inside a /16 of another category) and single
//! addresses may sit inside networks, so networks are first cut into pieces that every address
//! of which is listed by the same entries; each piece and each single address is judged once,
//! and an address the group may reach is cut out of any refused network around it.

use std::collections::BTreeMap;

use ipnet::IpNet;
use jiff::Timestamp;
use schoolgate_engine::{Action, Policy};

use super::learned::{Scope, Verdicts, earliest, scopes};
use super::placed::Placed;
use super::ranges::{self, Span};

/// Disjoint ranges per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    pub v4: Vec<Span>,
    pub v6: Vec<Span>,
}

impl Spans {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// What the firewall must hold for the listed addresses now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    /// Per scope, the listed ranges refused (scopes with nothing refused are left out).
    pub blocked: BTreeMap<Scope, Spans>,
    /// Listed ranges a quarantined device may still reach.
    pub quarantine_allow: Spans,
    /// When a decision behind these next changes.
    pub next_change: Option<Timestamp>,
}

/// One range judged: its family, and per scope whether it is refused.
struct Judged {
    span: Span,
    v4: bool,
    verdicts: Verdicts,
}

/// Judges every listed address and network at `now`, in every scope of `placed`.
pub fn enforce(policy: &Policy, placed: &Placed, now: Timestamp) -> Listed {
    let scopes = scopes(policy, placed);
    let (mut hosts, nets): (Vec<IpNet>, Vec<IpNet>) = policy
        .listed_addresses()
        .iter()
        .map(|e| e.net)
        .partition(|n| n.prefix_len() == n.max_prefix_len());
    hosts.sort();
    hosts.dedup();

    let judge = |span: Span, v4: bool| {
        let name = ranges::address(span.first, v4).to_string();
        Judged {
            span,
            v4,
            verdicts: Verdicts::of(policy, &scopes, &name, now),
        }
    };
    // Pieces of networks: within one, every address is held by the same networks.
    let mut pieces = Vec::new();
    for v4 in [true, false] {
        let family: Vec<Span> = nets
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(Span::of)
            .collect();
        let cut = nested_cut(&family);
        pieces.extend(cut.into_iter().map(|s| judge(s, v4)));
    }
    let singles: Vec<Judged> = hosts
        .iter()
        .map(|h| judge(Span::of(h), matches!(h, IpNet::V4(_))))
        .collect();

    let mut out = Listed::default();
    let mut next: Option<i64> = None;
    for j in pieces.iter().chain(&singles) {
        next = earliest(next, j.verdicts.next_change);
    }
    for (i, (scope, _, _)) in scopes.iter().enumerate() {
        let blocked = |j: &&Judged| matches!(j.verdicts.scopes.get(i), Some((Action::Block, _)));
        let spans = collect(&pieces, &singles, blocked);
        if !spans.is_empty() {
            out.blocked.insert(*scope, spans);
        }
    }
    out.quarantine_allow = collect(&pieces, &singles, |j| j.verdicts.quarantine_allow);
    out.next_change = next.and_then(|ms| Timestamp::from_millisecond(ms).ok());
    out
}

/// The ranges of the pieces and single addresses `wanted` picks, per family, with every
/// single address it does not pick cut out of the pieces around it.
fn collect(pieces: &[Judged], singles: &[Judged], wanted: impl Fn(&&Judged) -> bool) -> Spans {
    let mut out = Spans::default();
    for v4 in [true, false] {
        let holes: Vec<Span> = singles
            .iter()
            .filter(|j| j.v4 == v4 && !wanted(j))
            .map(|j| j.span)
            .collect();
        let mut spans: Vec<Span> = Vec::new();
        for p in pieces.iter().filter(|j| j.v4 == v4 && wanted(j)) {
            // The holes are sorted: only those inside this piece are looked at.
            let from = holes.partition_point(|h| h.first < p.span.first);
            let mut left = vec![p.span];
            for h in holes
                .iter()
                .skip(from)
                .take_while(|h| h.first <= p.span.last)
            {
                left = left
                    .into_iter()
                    .flat_map(|s| ranges::subtract(s, *h))
                    .collect();
            }
            spans.extend(left);
        }
        spans.extend(
            singles
                .iter()
                .filter(|j| j.v4 == v4 && wanted(j))
                .map(|j| j.span),
        );
        let merged = ranges::merged(spans);
        if v4 {
            out.v4 = merged;
        } else {
            out.v6 = merged;
        }
    }
    out
}

/// Cuts networks (in any order) into disjoint spans, each held by the same networks
/// throughout: every boundary of every network is a cut.
fn nested_cut(nets: &[Span]) -> Vec<Span> {
    // Boundaries: each network's first address, and the address after its last.
    let mut bounds: Vec<u128> = Vec::with_capacity(nets.len() * 2);
    for s in nets {
        bounds.push(s.first);
        if let Some(after) = s.last.checked_add(1) {
            bounds.push(after);
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    let covered = ranges::merged(nets.to_vec());
    let mut out = Vec::new();
    for c in covered {
        let from = bounds.partition_point(|b| *b <= c.first);
        let mut first = c.first;
        for &b in bounds.iter().skip(from).take_while(|b| **b <= c.last) {
            out.push(Span { first, last: b - 1 });
            first = b;
        }
        out.push(Span {
            first,
            last: c.last,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::path::Path;

    use schoolgate_engine::instant::parse_instant;
    use schoolgate_engine::policy::GroupId;

    use super::*;

    const POLICY: &str = r#"version: 1
school: { name: T, timezone: Europe/London }
calendar: { terms: [{ name: Autumn, from: 2026-09-03, to: 2026-12-18 }] }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
categories:
  resolvers: { domains: [dns.example, 192.0.2.0/24, 192.0.2.53, "2001:db8:53::/48"] }
  tor: { domains: [198.51.100.7, 198.51.100.8, 198.51.100.9] }
  vle: { domains: [vle.example, 192.0.2.128/26, 192.0.2.130] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  staff: { networks: [10.20.0.0/16] }
rules:
  - { name: VLE, groups: [all], allow: [vle] }
  - { name: No resolvers, groups: [pupils], block: [resolvers] }
  - { name: No Tor in the day, groups: [pupils, staff], block: [tor], when: school_day }
bypass: { quarantine_allow: [vle] }
"#;

    fn policy() -> Policy {
        Policy::from_yaml(POLICY, Path::new("/p.yaml"), &|_: &Path| Ok(String::new())).unwrap()
    }

    fn text(spans: &[Span], v4: bool) -> Vec<String> {
        spans
            .iter()
            .map(|s| {
                if v4 {
                    ranges::v4_text(*s)
                } else {
                    ranges::v6_text(*s)
                }
            })
            .collect()
    }

    #[test]
    fn listed_ranges_follow_groups_schedules_and_nesting() {
        let p = policy();
        let at = |t: &str| parse_instant(t, p.timezone()).unwrap();
        let pupils = Scope::Group(Some(GroupId(0)));
        let staff = Scope::Group(Some(GroupId(1)));

        let day = enforce(&p, &Placed::default(), at("2026-11-24T10:00"));
        let b = &day.blocked[&pupils];
        // The allowed VLE network is cut out of the refused resolvers' /24; 192.0.2.53 is in
        // both the /24 and listed on its own: one range.
        assert_eq!(
            text(&b.v4, true),
            [
                "192.0.2.0/25",
                "192.0.2.192/26",
                "198.51.100.7-198.51.100.9"
            ]
        );
        assert_eq!(text(&b.v6, false), ["2001:db8:53::/48"]);
        assert_eq!(
            text(&day.blocked[&staff].v4, true),
            ["198.51.100.7-198.51.100.9"]
        );
        assert!(
            !day.blocked.contains_key(&Scope::Group(None)),
            "no rule speaks of devices in no group"
        );
        assert_eq!(text(&day.quarantine_allow.v4, true), ["192.0.2.128/26"]);
        assert_eq!(day.next_change, Some(at("2026-11-24T15:30")));

        let evening = enforce(&p, &Placed::default(), at("2026-11-24T19:00"));
        assert_eq!(
            text(&evening.blocked[&pupils].v4, true),
            ["192.0.2.0/25", "192.0.2.192/26"]
        );
        assert!(!evening.blocked.contains_key(&staff));
        assert_eq!(evening.next_change, Some(at("2026-11-25T08:30")));
    }

    #[test]
    fn a_single_allowed_address_is_cut_out_of_a_refused_network() {
        let yaml = POLICY.replace(
            "vle: { domains: [vle.example, 192.0.2.128/26, 192.0.2.130] }",
            "vle: { domains: [192.0.2.100] }",
        );
        let p =
            Policy::from_yaml(&yaml, Path::new("/p.yaml"), &|_: &Path| Ok(String::new())).unwrap();
        let now = parse_instant("2026-11-24T19:00", p.timezone()).unwrap();
        let day = enforce(&p, &Placed::default(), now);
        assert_eq!(
            text(&day.blocked[&Scope::Group(Some(GroupId(0)))].v4, true),
            ["192.0.2.0-192.0.2.99", "192.0.2.101-192.0.2.255"]
        );
    }

    #[test]
    fn nested_networks_are_cut_at_every_boundary() {
        let s = |a: u128, b: u128| Span { first: a, last: b };
        let cut = nested_cut(&[s(10, 19), s(0, 99), s(200, 255)]);
        assert_eq!(cut, vec![s(0, 9), s(10, 19), s(20, 99), s(200, 255)]);
    }
}

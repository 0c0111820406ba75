//! What the agent last put into the filled sets, so that each new [`Enforcement`] becomes the
//! smallest set of element changes (pure: enforcement and `now` in, [`Changes`] out).
//!
//! Elements leave their sets by themselves when their timeouts run out (timeouts end no later
//! than the block does), so most changes are additions. Removals are only for elements the
//! kernel still holds: deleting one that has already expired would fail the transaction.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::learned::Enforcement;
use super::ruleset::{Changes, Filled};

/// A timeout this close to the one already set is left alone.
const SLACK_MS: i64 = 1_000;

#[derive(Debug, Default)]
pub struct Installed {
    /// Each element and when its timeout runs out (milliseconds since the epoch).
    ends: HashMap<(Filled, IpAddr), i64>,
}

impl Installed {
    /// Forgets everything and records `wanted` as what a freshly loaded table holds.
    pub fn reset(&mut self, wanted: &Enforcement, now_ms: i64) {
        self.ends = elements(wanted)
            .map(|(f, ip, ms)| ((f, ip), now_ms.saturating_add_unsigned(ms)))
            .collect();
    }

    /// The changes that bring the sets to `wanted`. With `only`, `wanted` speaks for those
    /// addresses alone and nothing else is taken out.
    pub fn changes(
        &mut self,
        wanted: &Enforcement,
        only: Option<&HashSet<IpAddr>>,
        now_ms: i64,
    ) -> Changes {
        // Expired entries are dropped on full passes only: a partial one (every batch of
        // answers) stays proportional to the addresses it speaks for.
        if only.is_none() {
            self.ends.retain(|_, end| *end > now_ms);
        }
        let mut out = Changes::default();
        let mut keep: HashSet<(Filled, IpAddr)> = HashSet::new();
        for (f, ip, ms) in elements(wanted) {
            let end = now_ms.saturating_add_unsigned(ms);
            keep.insert((f, ip));
            let current = self.ends.get(&(f, ip)).copied().filter(|c| *c > now_ms);
            if current.is_none_or(|c| (c - end).abs() > SLACK_MS) {
                out.add.push((f, ip, ms));
                self.ends.insert((f, ip), end);
            }
        }
        let gone: Vec<(Filled, IpAddr)> = self
            .ends
            .iter()
            .filter(|(k, end)| {
                !keep.contains(k)
                    && only.is_none_or(|o| o.contains(&k.1))
                    // About to expire anyway: a delete could arrive after it did.
                    && **end > now_ms + SLACK_MS
            })
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.ends.remove(&k);
            out.remove.push(k);
        }
        out.add.sort();
        out.remove.sort();
        out
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

fn elements(e: &Enforcement) -> impl Iterator<Item = (Filled, IpAddr, u64)> + '_ {
    let blocked = e.blocked.iter().flat_map(|(scope, list)| {
        list.iter()
            .map(move |(ip, ms)| (Filled::Blocked(*scope), *ip, *ms))
    });
    let allow = e
        .quarantine_allow
        .iter()
        .map(|(ip, ms)| (Filled::QuarantineAllow, *ip, *ms));
    blocked.chain(allow)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::firewall::learned::Scope;
    use schoolgate_engine::policy::GroupId;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn wanting(list: &[(&str, u64)]) -> Enforcement {
        let mut e = Enforcement::default();
        e.blocked.insert(
            Scope::Group(Some(GroupId(0))),
            list.iter().map(|(a, ms)| (ip(a), *ms)).collect(),
        );
        e
    }

    const PUPILS: Filled = Filled::Blocked(Scope::Group(Some(GroupId(0))));

    #[test]
    fn only_what_differs_is_sent() {
        let mut i = Installed::default();
        let c = i.changes(&wanting(&[("192.0.2.1", 60_000)]), None, 0);
        assert_eq!(c.add, vec![(PUPILS, ip("192.0.2.1"), 60_000)]);
        // The same end, asked again 10 s later: nothing to do.
        let c = i.changes(&wanting(&[("192.0.2.1", 50_000)]), None, 10_000);
        assert!(c.is_empty());
        // A later end: the timeout is set again.
        let c = i.changes(&wanting(&[("192.0.2.1", 300_000)]), None, 10_000);
        assert_eq!(c.add, vec![(PUPILS, ip("192.0.2.1"), 300_000)]);
    }

    #[test]
    fn elements_no_longer_wanted_are_removed_unless_about_to_expire() {
        let mut i = Installed::default();
        i.reset(&wanting(&[("192.0.2.1", 60_000), ("192.0.2.2", 1_500)]), 0);
        assert_eq!(i.len(), 2);
        let c = i.changes(&Enforcement::default(), None, 1_000);
        assert_eq!(c.remove, vec![(PUPILS, ip("192.0.2.1"))]);
        assert!(c.add.is_empty());
        // The one about to expire is still counted until it has.
        assert_eq!(i.len(), 1);
        i.changes(&Enforcement::default(), None, 1_500);
        assert!(i.is_empty());
    }

    #[test]
    fn a_partial_enforcement_removes_only_its_own_addresses() {
        let mut i = Installed::default();
        i.reset(&wanting(&[("192.0.2.1", 60_000), ("192.0.2.2", 60_000)]), 0);
        let only: HashSet<IpAddr> = [ip("192.0.2.2")].into();
        let c = i.changes(&Enforcement::default(), Some(&only), 0);
        assert_eq!(c.remove, vec![(PUPILS, ip("192.0.2.2"))]);
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn expired_elements_are_added_again() {
        let mut i = Installed::default();
        i.reset(&wanting(&[("192.0.2.1", 1_000)]), 0);
        let c = i.changes(&wanting(&[("192.0.2.1", 1_000)]), None, 5_000);
        assert_eq!(c.add, vec![(PUPILS, ip("192.0.2.1"), 1_000)]);
    }
}

//! Addresses learned from DNS answers, and which of them the firewall refuses now (pure: names,
//! addresses, the policy and `now` in; set elements with timeouts out).
//!
//! The resolver tells the store every address it hands out and the name it answered. A device
//! that kept an address from before the school day, or has one written into an app, never
//! asks again; so for each group the firewall refuses the addresses of names the decision
//! engine blocks for that group now, for as long as the answer stays good (the TTL, held
//! between [`KEEP_MIN_MS`] and [`KEEP_MAX_MS`]) and no later than the moment the block ends.
//!
//! Shared addresses: a CDN address that also answered a name the group may reach now is not
//! refused, so allowed sites never break because a blocked one shares their front door. The
//! cost is that a blocked site on such an address stays reachable by address; packet
//! inspection, which reads the name the device asks for in the TLS handshake, covers it.
//!
//! The decision for a group is the decision for a device of that group with no device entry
//! of its own and no one signed in ([`decide_as`]). Addresses judged otherwise (a person
//! signed in, an exception naming the device or its network) are placed in profiles
//! ([`Placed`]), each a scope of its own judged the same way.
//!
//! Memory is bounded: at most [`MAX_ADDRESSES`] addresses and [`NAMES_PER_ADDRESS`] names
//! each; an address that would not fit is not learned (and counted), expired ones are dropped
//! by [`Learned::forget_expired`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use schoolgate_engine::domain::QueryName;
use schoolgate_engine::policy::{GroupId, Identity};
use schoolgate_engine::{Action, Client, Policy, decide_as};

use super::placed::Placed;

/// The shortest time an address stays after its answer, whatever the TTL: answers with a
/// TTL of seconds are common on CDNs, and a device that kept the address keeps using it.
pub const KEEP_MIN_MS: i64 = 5 * 60 * 1000;
/// The longest time an address stays after its answer: addresses move between sites.
pub const KEEP_MAX_MS: i64 = 24 * 60 * 60 * 1000;
/// Most addresses the store holds.
pub const MAX_ADDRESSES: usize = 131_072;
/// Most names kept for one address (the ones expiring last are kept).
pub const NAMES_PER_ADDRESS: usize = 8;

/// A name an address answered, and until when (milliseconds since the epoch).
#[derive(Debug, Clone)]
struct Seen {
    name: Arc<str>,
    expires: i64,
}

/// What the firewall has one chain and one set of address sets for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A group's devices (`None`: devices in no group) with no entry of their own and no
    /// one signed in.
    Group(Option<GroupId>),
    /// The addresses in the profile with this number ([`Placed`]).
    Placed(u16),
}

impl From<Option<GroupId>> for Scope {
    fn from(g: Option<GroupId>) -> Self {
        Self::Group(g)
    }
}

/// A scope with the identity and client it is judged as.
pub type Judged = (Scope, Identity, Client);

/// What the firewall must hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Per scope, addresses refused and for how many more milliseconds.
    pub blocked: BTreeMap<Scope, Vec<(IpAddr, u64)>>,
    /// Addresses of `quarantine_allow` names, and for how many more milliseconds.
    pub quarantine_allow: Vec<(IpAddr, u64)>,
    /// The next instant a decision behind these changes (a schedule window opens or closes,
    /// an exception starts or ends).
    pub next_change: Option<Timestamp>,
}

/// The store. See the module documentation.
#[derive(Debug, Default)]
pub struct Learned {
    by_address: HashMap<IpAddr, Vec<Seen>>,
    /// Each name once, with the latest expiry of any of its addresses.
    names: HashMap<Arc<str>, i64>,
    /// Addresses not learned because the store was full.
    pub dropped: u64,
}

impl Learned {
    /// Records that `name` was answered with `addresses` (each with its TTL in seconds) at
    /// `now_ms`. Returns the addresses recorded.
    pub fn learn(
        &mut self,
        name: &str,
        addresses: impl IntoIterator<Item = (IpAddr, u32)>,
        now_ms: i64,
    ) -> Vec<IpAddr> {
        let Some(q) = QueryName::new(name) else {
            return Vec::new();
        };
        let name = self.intern(q.as_str());
        let mut out = Vec::new();
        for (ip, ttl) in addresses {
            let ip = ip.to_canonical();
            let keep = (i64::from(ttl) * 1000).clamp(KEEP_MIN_MS, KEEP_MAX_MS);
            let expires = now_ms.saturating_add(keep);
            if !self.by_address.contains_key(&ip) && self.by_address.len() >= MAX_ADDRESSES {
                self.dropped += 1;
                continue;
            }
            let seen = self.by_address.entry(ip).or_default();
            match seen.iter_mut().find(|s| s.name == name) {
                Some(s) => s.expires = s.expires.max(expires),
                None => {
                    seen.push(Seen {
                        name: name.clone(),
                        expires,
                    });
                    if seen.len() > NAMES_PER_ADDRESS {
                        seen.sort_by_key(|s| std::cmp::Reverse(s.expires));
                        seen.truncate(NAMES_PER_ADDRESS);
                    }
                }
            }
            if let Some(e) = self.names.get_mut(&name) {
                *e = (*e).max(expires);
            }
            out.push(ip);
        }
        out
    }

    /// Whether addresses for `name` are known and good at `now_ms`.
    pub fn knows(&self, name: &str, now_ms: i64) -> bool {
        QueryName::new(name)
            .and_then(|q| self.names.get(q.as_str()).copied())
            .is_some_and(|e| e > now_ms)
    }

    /// Drops what expired by `now_ms`.
    pub fn forget_expired(&mut self, now_ms: i64) {
        self.by_address.retain(|_, seen| {
            seen.retain(|s| s.expires > now_ms);
            !seen.is_empty()
        });
        self.names.retain(|_, e| *e > now_ms);
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// What the firewall must hold at `now` for every address, in every scope of `placed`.
    pub fn enforce(&self, policy: &Policy, placed: &Placed, now: Timestamp) -> Enforcement {
        self.enforce_on(policy, placed, self.by_address.keys().copied(), now)
    }

    /// What the firewall must hold at `now` for `addresses` only (those just learned).
    pub fn enforce_on(
        &self,
        policy: &Policy,
        placed: &Placed,
        addresses: impl IntoIterator<Item = IpAddr>,
        now: Timestamp,
    ) -> Enforcement {
        let now_ms = now.as_millisecond();
        let scopes = scopes(policy, placed);
        let mut verdicts: HashMap<Arc<str>, Verdicts> = HashMap::new();
        let mut out = Enforcement::default();
        let mut next_change: Option<i64> = None;
        for ip in addresses {
            let Some(seen) = self.by_address.get(&ip) else {
                continue;
            };
            let live: Vec<&Seen> = seen.iter().filter(|s| s.expires > now_ms).collect();
            if live.is_empty() {
                continue;
            }
            for s in &live {
                if !verdicts.contains_key(&s.name) {
                    let v = Verdicts::of(policy, &scopes, &s.name, now);
                    next_change = earliest(next_change, v.next_change);
                    verdicts.insert(s.name.clone(), v);
                }
            }
            let judged: Vec<(&Seen, &Verdicts)> = live
                .iter()
                .filter_map(|s| Some((*s, verdicts.get(&s.name)?)))
                .collect();
            for (i, (scope, _, _)) in scopes.iter().enumerate() {
                let mut blocked_until: Option<i64> = None;
                let mut allowed = false;
                for (s, v) in &judged {
                    match v.scopes.get(i) {
                        Some(&(Action::Block, until)) => {
                            let end = until.map_or(s.expires, |u| u.min(s.expires));
                            blocked_until = Some(blocked_until.map_or(end, |b| b.max(end)));
                        }
                        _ => allowed = true,
                    }
                }
                if let (Some(end), false) = (blocked_until, allowed)
                    && end > now_ms
                {
                    out.blocked
                        .entry(*scope)
                        .or_default()
                        .push((ip, (end - now_ms).unsigned_abs()));
                }
            }
            let allow_until = judged
                .iter()
                .filter(|(_, v)| v.quarantine_allow)
                .map(|(s, _)| s.expires)
                .max();
            if let Some(end) = allow_until {
                out.quarantine_allow
                    .push((ip, (end - now_ms).unsigned_abs()));
            }
        }
        for list in out.blocked.values_mut() {
            list.sort();
        }
        out.quarantine_allow.sort();
        out.next_change = next_change.and_then(|ms| Timestamp::from_millisecond(ms).ok());
        out
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some((k, _)) = self.names.get_key_value(name) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(name);
        self.names.insert(k.clone(), i64::MIN);
        k
    }
}

/// Every group, then `None` (devices in no group), then each placed profile: the order
/// [`Verdicts`] holds them in.
pub fn scopes(policy: &Policy, placed: &Placed) -> Vec<Judged> {
    let groups = policy.group_ids().map(Some).chain([None]).map(|g| {
        (
            Scope::Group(g),
            super::placed::group_identity(g),
            Client::default(),
        )
    });
    let profiles = placed.profiles.iter().enumerate().filter_map(|(i, p)| {
        let n = u16::try_from(i).ok()?;
        Some((Scope::Placed(n), p.identity, p.client))
    });
    groups.chain(profiles).collect()
}

/// One name's decision in every scope, read once per evaluation.
#[derive(Debug)]
pub(super) struct Verdicts {
    /// Per scope (in [`scopes`]' order): the action and when it ends (ms).
    pub(super) scopes: Vec<(Action, Option<i64>)>,
    pub(super) quarantine_allow: bool,
    pub(super) next_change: Option<i64>,
}

impl Verdicts {
    pub(super) fn of(policy: &Policy, scopes: &[Judged], name: &str, now: Timestamp) -> Self {
        let nobody = Client::default();
        let mut next_change = None;
        let scopes = scopes
            .iter()
            .map(|(_, who, client)| {
                let d = decide_as(policy, client, *who, name, now, false);
                let until = d.until.map(|t| t.as_millisecond());
                next_change = earliest(next_change, until);
                (d.action, until)
            })
            .collect();
        let quarantine = decide_as(
            policy,
            &nobody,
            Identity {
                group: None,
                device: None,
                person: None,
            },
            name,
            now,
            true,
        );
        Self {
            scopes,
            quarantine_allow: quarantine.action == Action::Allow,
            next_change,
        }
    }
}

pub(super) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
version: 1
school: { name: Test School, timezone: Europe/London }
calendar:
  terms: [{ name: Autumn, from: 2026-09-01, to: 2026-12-18 }]
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true, label: in the school day }
categories:
  social: { label: social networking, domains: [instagram.com, cdninstagram.com] }
  vle: { label: the VLE, domains: [dbprimary.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  staff: { networks: [10.20.0.0/16] }
rules:
  - { name: VLE, groups: [all], allow: [vle] }
  - { name: Pupils off social in the day, groups: [pupils], block: [social], when: school_day }
bypass:
  quarantine_allow: [vle]
"#;

    fn policy() -> Policy {
        let no_lists =
            |_: &std::path::Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        Policy::from_yaml(POLICY, "policy.yaml".as_ref(), &no_lists).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap())
            .unwrap()
            .timestamp()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PUPILS: Scope = Scope::Group(Some(GroupId(0)));

    #[test]
    fn a_blocked_name_is_refused_for_its_group_until_the_block_ends() {
        let p = policy();
        let mut l = Learned::default();
        // Tuesday 24 November 2026, 15:29:00: the school day ends in one minute.
        let now = at("2026-11-24T15:29:00");
        l.learn(
            "WWW.Instagram.com.",
            [(ip("198.51.100.20"), 3600)],
            now.as_millisecond(),
        );
        let e = l.enforce(&p, &Placed::default(), now);
        assert_eq!(
            e.blocked.get(&PUPILS),
            Some(&vec![(ip("198.51.100.20"), 60_000)])
        );
        // Staff and devices in no group have no rule: nothing refused for them.
        assert_eq!(e.blocked.len(), 1);
        assert_eq!(e.next_change, Some(at("2026-11-24T15:30:00")));
        assert!(e.quarantine_allow.is_empty());
        // After the school day the address is free, until the next morning.
        let e = l.enforce(&p, &Placed::default(), at("2026-11-24T15:30:00"));
        assert!(e.blocked.is_empty());
        assert_eq!(e.next_change, Some(at("2026-11-25T08:30:00")));
    }

    #[test]
    fn the_timeout_follows_the_answer_held_between_the_bounds() {
        let p = policy();
        let mut l = Learned::default();
        let now = at("2026-11-24T09:00:00");
        let ms = now.as_millisecond();
        l.learn("instagram.com", [(ip("198.51.100.20"), 30)], ms);
        l.learn("instagram.com", [(ip("198.51.100.21"), 600)], ms);
        let e = l.enforce(&p, &Placed::default(), now);
        assert_eq!(
            e.blocked[&PUPILS],
            vec![
                (ip("198.51.100.20"), KEEP_MIN_MS as u64),
                (ip("198.51.100.21"), 600_000)
            ]
        );
        assert!(l.knows("Instagram.COM", ms));
        // Once every answer has expired, nothing is left.
        let later = ms + 601_000;
        assert!(!l.knows("instagram.com", later));
        l.forget_expired(later);
        assert!(l.is_empty());
    }

    #[test]
    fn an_address_shared_with_an_allowed_name_is_not_refused() {
        let p = policy();
        let mut l = Learned::default();
        let now = at("2026-11-24T09:00:00");
        let ms = now.as_millisecond();
        l.learn(
            "instagram.com",
            [(ip("198.51.100.40"), 600), (ip("198.51.100.41"), 600)],
            ms,
        );
        l.learn("news.example", [(ip("198.51.100.40"), 600)], ms);
        let e = l.enforce(&p, &Placed::default(), now);
        assert_eq!(e.blocked[&PUPILS], vec![(ip("198.51.100.41"), 600_000)]);
        // Only the addresses asked about are judged.
        let e = l.enforce_on(&p, &Placed::default(), [ip("198.51.100.40")], now);
        assert!(e.blocked.is_empty());
    }

    #[test]
    fn quarantine_allow_names_fill_their_own_set() {
        let p = policy();
        let mut l = Learned::default();
        let now = at("2026-11-24T09:00:00");
        l.learn(
            "www.dbprimary.com",
            [(ip("198.51.100.60"), 900)],
            now.as_millisecond(),
        );
        let e = l.enforce(&p, &Placed::default(), now);
        assert_eq!(e.quarantine_allow, vec![(ip("198.51.100.60"), 900_000)]);
        assert!(e.blocked.is_empty());
    }

    #[test]
    fn the_store_is_bounded() {
        let mut l = Learned::default();
        let names: Vec<String> = (0..NAMES_PER_ADDRESS + 3)
            .map(|i| format!("n{i}.example"))
            .collect();
        for (i, n) in names.iter().enumerate() {
            l.learn(n, [(ip("192.0.2.1"), 300 + i as u32)], 0);
        }
        let seen = &l.by_address[&ip("192.0.2.1")];
        assert_eq!(seen.len(), NAMES_PER_ADDRESS);
        assert!(seen.iter().all(|s| &*s.name != "n0.example"));
        // A name that is not a name is not learned.
        assert!(l.learn("", [(ip("192.0.2.2"), 60)], 0).is_empty());
    }
}

//! Addresses the firewall must judge apart from their group: someone is signed in there, or
//! an exception names the device or its network. Pure: the policy and each address's
//! identity in, profiles out.
//!
//! The firewall's sets are per scope, and a group's scope is judged for a device of that
//! group with no entry of its own and no one signed in. Where that is not what the decision
//! engine would say for an address, the address is *placed* in a profile: everything a
//! decision depends on besides the name and the instant — the device's group, the signed-in
//! person's group, and which exceptions cover the request. Addresses with the same profile
//! share one chain and one set of address sets, so a class of thirty signed in on thirty
//! PCs is one profile, not thirty.
//!
//! Each profile keeps the identity and client of one of its addresses: that is what the
//! decision engine is asked, so the firewall and the resolver cannot disagree.

use std::collections::BTreeMap;
use std::net::IpAddr;

use schoolgate_engine::policy::{ExceptionId, GroupId, Identity};
use schoolgate_engine::{Client, Policy};

/// Most profiles the table holds: each is a chain and six sets. Addresses beyond are judged
/// as their group (and counted), which is what they were before anyone signed in.
pub const PROFILES_MAX: usize = 256;

/// What a decision depends on besides the name and the instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The device's group.
    pub group: Option<GroupId>,
    /// The signed-in person's group.
    pub person_group: Option<GroupId>,
    /// The exceptions that cover the request, in the policy's order.
    pub covering: Vec<ExceptionId>,
}

impl Key {
    /// The key of `identity` on `client`.
    pub fn of(policy: &Policy, identity: &Identity, client: &Client) -> Self {
        Self {
            group: identity.group,
            person_group: identity.person.and_then(|p| p.group),
            covering: policy
                .exceptions()
                .iter()
                .enumerate()
                .filter(|(_, e)| e.covers(identity, client))
                .filter_map(|(i, _)| u32::try_from(i).ok().map(ExceptionId))
                .collect(),
        }
    }

    /// The key of the group's scope: a device of `group` with no entry and no one signed in.
    pub fn of_group(policy: &Policy, group: Option<GroupId>) -> Self {
        Self::of(policy, &group_identity(group), &Client::default())
    }
}

/// The identity a group's scope is judged as.
pub fn group_identity(group: Option<GroupId>) -> Identity {
    Identity {
        group,
        device: None,
        person: None,
    }
}

/// One profile: its key, and the identity and client it is judged as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub key: Key,
    pub identity: Identity,
    pub client: Client,
}

/// The profiles, and which address is in which (by position in `profiles`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    pub profiles: Vec<Profile>,
    pub at: BTreeMap<IpAddr, u16>,
    /// Addresses left on their group because [`PROFILES_MAX`] profiles were taken.
    pub not_placed: usize,
}

impl Placed {
    /// Places each address whose key differs from its group's. `clients` are each address
    /// with the identity the shell found for it (device entry, group, signed-in person).
    /// Profiles are numbered in key order, so the same inputs give the same table.
    pub fn new(policy: &Policy, clients: impl IntoIterator<Item = (Identity, Client)>) -> Self {
        let mut group_keys: BTreeMap<Option<GroupId>, Key> = BTreeMap::new();
        let mut by_key: BTreeMap<Key, (Identity, Client, Vec<IpAddr>)> = BTreeMap::new();
        for (identity, client) in clients {
            let Some(ip) = client.ip.map(|i| i.to_canonical()) else {
                continue;
            };
            let key = Key::of(policy, &identity, &client);
            let base = group_keys
                .entry(identity.group)
                .or_insert_with(|| Key::of_group(policy, identity.group));
            if key == *base {
                continue;
            }
            by_key
                .entry(key)
                .or_insert_with(|| (identity, client, Vec::new()))
                .2
                .push(ip);
        }
        let mut out = Self::default();
        for (key, (identity, client, ips)) in by_key {
            let Ok(n) = u16::try_from(out.profiles.len()) else {
                out.not_placed += ips.len();
                continue;
            };
            if out.profiles.len() >= PROFILES_MAX {
                out.not_placed += ips.len();
                continue;
            }
            for ip in ips {
                out.at.insert(ip, n);
            }
            out.profiles.push(Profile {
                key,
                identity,
                client,
            });
        }
        out
    }

    /// Whether `other` has the same profiles (so only addresses moved between them).
    pub fn same_profiles(&self, other: &Self) -> bool {
        self.profiles.len() == other.profiles.len()
            && self
                .profiles
                .iter()
                .zip(&other.profiles)
                .all(|(a, b)| a.key == b.key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use schoolgate_engine::PersonView;

    const POLICY: &str = r#"
version: 1
school: { name: Test School, timezone: Europe/London }
categories:
  video: { domains: [youtube.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  year6: { directory: [Year 6] }
  staff: { directory: [Staff] }
rules:
  - { name: No video, groups: [pupils, year6, staff], block: [video] }
exceptions:
  - { name: 6B film, classes: [6b], allow: [video], from: 2026-12-01T09:00, to: 2026-12-01T10:00, approved_by: J. Director }
  - { name: Lab, networks: [10.10.9.0/24], allow: [video], from: 2026-12-01T09:00, to: 2026-12-01T10:00, approved_by: J. Director }
"#;

    fn policy() -> Policy {
        let no_lists =
            |_: &std::path::Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        Policy::from_yaml(POLICY, "policy.yaml".as_ref(), &no_lists).unwrap()
    }

    /// `ip`, with a Year 6 pupil of `class` signed in if `class` is given.
    fn at(p: &Policy, ip: &str, class: Option<&str>) -> (Identity, Client) {
        let c = Client::new(ip.parse().unwrap(), None);
        let mut id = p.identify(&c);
        let groups = ["Year 6".to_owned()];
        id.person = class.map(|class| {
            p.identify_person(&PersonView {
                username: "someone",
                class: Some(class),
                groups: &groups,
            })
        });
        (id, c)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_addresses_judged_otherwise_than_their_group_are_placed() {
        let p = policy();
        let group = |n: &str| {
            p.group_ids()
                .find(|g| p.group(*g).is_some_and(|x| x.name == n))
        };
        let placed = Placed::new(
            &p,
            [
                // Nobody signed in, outside the lab: the group's own scope.
                at(&p, "10.10.4.20", None),
                // Two 6B pupils: one profile.
                at(&p, "10.10.4.21", Some("6B")),
                at(&p, "10.10.4.22", Some("6b")),
                // A 6A pupil: Year 6's rules, but not 6B's exception.
                at(&p, "10.10.4.23", Some("6A")),
                // The lab's network exception.
                at(&p, "10.10.9.5", None),
            ],
        );
        assert_eq!(placed.profiles.len(), 3, "{placed:#?}");
        assert!(!placed.at.contains_key(&ip("10.10.4.20")));
        let of = |s: &str| placed.at[&ip(s)];
        assert_eq!(of("10.10.4.21"), of("10.10.4.22"));
        assert_ne!(of("10.10.4.21"), of("10.10.4.23"));
        let six_b = &placed.profiles[usize::from(of("10.10.4.21"))];
        assert_eq!(six_b.key.group, group("pupils"));
        assert_eq!(six_b.key.person_group, group("year6"));
        assert_eq!(six_b.key.covering, vec![ExceptionId(0)]);
        let six_a = &placed.profiles[usize::from(of("10.10.4.23"))];
        assert!(six_a.key.covering.is_empty());
        assert_eq!(
            placed.profiles[usize::from(of("10.10.9.5"))].key.covering,
            vec![ExceptionId(1)]
        );
        // The same inputs in another order make the same profiles.
        let again = Placed::new(
            &p,
            [
                at(&p, "10.10.9.5", None),
                at(&p, "10.10.4.23", Some("6A")),
                at(&p, "10.10.4.22", Some("6B")),
                at(&p, "10.10.4.21", Some("6B")),
            ],
        );
        assert!(again.same_profiles(&placed));
        assert_eq!(again.at, placed.at);
    }

    #[test]
    fn many_people_of_one_kind_are_one_profile() {
        let p = policy();
        let placed = Placed::new(
            &p,
            (0..1000u32).map(|i| {
                let ip = std::net::Ipv4Addr::from(0x0a0a_0400 + i);
                at(&p, &ip.to_string(), Some("6A"))
            }),
        );
        assert_eq!(placed.profiles.len(), 1);
        assert_eq!(placed.at.len(), 1000);
        assert_eq!(placed.not_placed, 0);
    }
}

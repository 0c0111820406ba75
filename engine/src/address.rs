//! Addresses as the policy lists them: single addresses and networks in list files, for
//! endpoints that have no name worth matching (public resolvers' addresses, VPN servers, Tor
//! relays).
//!
//! An address listed in a category belongs to it the way a domain does: asking the decision
//! engine about the address (a connection seen without a name, a `Host:` header holding an
//! address) finds the category, and the firewall refuses the address for every group the
//! category is blocked for.
//!
//! Single addresses are hashed (a relay list holds thousands); networks are few and scanned,
//! most specific first.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use smallvec::SmallVec;

use crate::domain::{Matches, TargetId};

/// One listed address or network, as it was written and as it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAddress {
    /// The network (a single address is a /32 or /128), host bits cleared.
    pub net: IpNet,
    /// What the list says, for explanations.
    pub text: Box<str>,
    pub target: TargetId,
}

/// Every listed address and network of every target.
#[derive(Default)]
pub struct AddressIndex {
    entries: Vec<ListedAddress>,
    /// Single address → its entries.
    hosts: HashMap<IpAddr, SmallVec<[u32; 1]>, foldhash::fast::RandomState>,
    /// Entries wider than one address, most specific first.
    nets: Vec<u32>,
}

impl fmt::Debug for AddressIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressIndex")
            .field("n_hosts", &self.hosts.len())
            .field("n_nets", &self.nets.len())
            .finish()
    }
}

impl AddressIndex {
    /// Adds `net` to `target`, remembered as `text`. A network is stored with its host bits
    /// cleared (`10.1.2.3/8` is `10.0.0.0/8`); an address the target already lists is kept once.
    pub fn insert(&mut self, net: IpNet, text: Box<str>, target: TargetId) {
        let net = canonical(net.trunc());
        let single = net.prefix_len() == net.max_prefix_len();
        let existing = if single {
            self.hosts.get(&net.addr()).map(|v| v.as_slice())
        } else {
            Some(self.nets.as_slice())
        };
        let already = existing.unwrap_or_default().iter().any(|&i| {
            self.entries
                .get(i as usize)
                .is_some_and(|e| e.net == net && e.target == target)
        });
        if already {
            return;
        }
        let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(ListedAddress { net, text, target });
        if single {
            self.hosts.entry(net.addr()).or_default().push(id);
        } else {
            // Keep the most specific first, so the first match per target is the best one.
            let at = self.nets.partition_point(|&i| {
                self.entries
                    .get(i as usize)
                    .is_some_and(|e| e.net.prefix_len() >= net.prefix_len())
            });
            self.nets.insert(at, id);
        }
    }

    /// How many addresses and networks are listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every listed address and network, in the order they were listed.
    pub fn entries(&self) -> &[ListedAddress] {
        &self.entries
    }

    /// Finds every target that lists `ip` (or a network holding it), each with the most
    /// specific entry that matched. IPv4-mapped IPv6 addresses match as IPv4.
    pub fn lookup<'a>(&'a self, ip: IpAddr, out: &mut Matches<'a>) {
        let ip = ip.to_canonical();
        let hosts = self
            .hosts
            .get(&ip)
            .map(|v| v.as_slice())
            .unwrap_or_default();
        let nets = self.nets.iter().filter(|&&i| {
            self.entries
                .get(i as usize)
                .is_some_and(|e| e.net.contains(&ip))
        });
        for &i in hosts.iter().chain(nets) {
            if let Some(e) = self.entries.get(i as usize)
                && !out.iter().any(|(t, _)| *t == e.target)
            {
                out.push((e.target, &e.text));
            }
        }
    }
}

/// An IPv4-mapped IPv6 network is stored as the IPv4 network it maps.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net)
            }
            _ => net,
        },
        IpNet::V4(_) => net,
    }
}

/// Reads an address or network as an administrator wrote it: `192.0.2.1`, `2001:db8::1`,
/// `192.0.2.0/24`, `2001:db8::/32`. `None` if it is neither (it may be a domain).
pub fn parse_listed_address(text: &str) -> Option<IpNet> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(IpNet::from(ip));
    }
    t.parse::<IpNet>().ok()
}

/// Reads an address a device sent where a name could be (`Host: 192.0.2.1`, `[2001:db8::1]`).
/// Bounded: anything longer than the longest address text is not one.
pub fn address_literal(name: &str) -> Option<IpAddr> {
    if name.len() > 47 {
        return None;
    }
    let inner = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    inner.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn found(idx: &AddressIndex, ip: &str) -> Vec<(u32, String)> {
        let mut m = Matches::new();
        idx.lookup(ip.parse().unwrap(), &mut m);
        m.iter().map(|(t, s)| (t.0, s.to_string())).collect()
    }

    fn add(idx: &mut AddressIndex, text: &str, target: u32) {
        idx.insert(
            parse_listed_address(text).unwrap(),
            text.into(),
            TargetId(target),
        );
    }

    #[test]
    fn hosts_and_networks_match_most_specific_first_per_target() {
        let mut idx = AddressIndex::default();
        add(&mut idx, "10.0.0.0/8", 0);
        add(&mut idx, "10.1.0.0/16", 0);
        add(&mut idx, "10.1.2.3", 1);
        add(&mut idx, "2001:db8::/32", 2);
        assert_eq!(
            found(&idx, "10.1.2.3"),
            vec![(1, "10.1.2.3".into()), (0, "10.1.0.0/16".into())]
        );
        assert_eq!(found(&idx, "10.9.9.9"), vec![(0, "10.0.0.0/8".into())]);
        assert_eq!(found(&idx, "11.0.0.1"), vec![]);
        assert_eq!(
            found(&idx, "2001:db8:5::1"),
            vec![(2, "2001:db8::/32".into())]
        );
        // A mapped address is the IPv4 address it carries.
        assert_eq!(found(&idx, "::ffff:10.1.2.3").len(), 2);
    }

    #[test]
    fn networks_are_stored_without_host_bits_and_once() {
        let mut idx = AddressIndex::default();
        add(&mut idx, "10.1.2.3/8", 0);
        add(&mut idx, "10.0.0.0/8", 0);
        add(&mut idx, "192.0.2.1", 0);
        add(&mut idx, "192.0.2.1", 0);
        add(&mut idx, "::ffff:192.0.2.0/120", 1);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.entries()[0].net.to_string(), "10.0.0.0/8");
        assert_eq!(idx.entries()[2].net.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn literals_from_devices_are_read_with_bounds() {
        assert_eq!(address_literal("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(address_literal("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(address_literal("example.com"), None);
        assert_eq!(address_literal(&"1".repeat(5000)), None);
        assert_eq!(parse_listed_address("facebook.com"), None);
        assert_eq!(
            parse_listed_address(" 192.0.2.0/24 ").unwrap().to_string(),
            "192.0.2.0/24"
        );
    }
}

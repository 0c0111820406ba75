//! Devices in quarantine, as the resolver and the firewall see them: after a bypass attempt
//! from a group whose `bypass.response` is `quarantine`, a device reaches only the gateway's
//! DNS and the `quarantine_allow` names until staff release it.
//!
//! The resolver asks on every query, so reading is one atomic load (and nothing more while no
//! device is quarantined); adding copies the set, which happens rarely.

use std::collections::HashSet;
use std::net::IpAddr;

use arc_swap::ArcSwap;
use schoolgate_engine::{Client, MacAddr};

use crate::firewall::ruleset::Quarantined;

#[derive(Debug, Default)]
pub struct Quarantine {
    members: ArcSwap<Members>,
}

#[derive(Debug, Default, Clone)]
struct Members {
    ips: HashSet<IpAddr>,
    macs: HashSet<MacAddr>,
}

impl Quarantine {
    /// Whether `client` is quarantined, by its MAC or its address.
    pub fn contains(&self, client: &Client) -> bool {
        let m = self.members.load();
        if m.ips.is_empty() && m.macs.is_empty() {
            return false;
        }
        client.mac.is_some_and(|mac| m.macs.contains(&mac))
            || client
                .ip
                .is_some_and(|ip| m.ips.contains(&ip.to_canonical()))
    }

    /// Puts `client` in quarantine, by whatever of its MAC and address is known. Returns
    /// false if it already was.
    pub fn add(&self, client: &Client) -> bool {
        if self.contains(client) || (client.ip.is_none() && client.mac.is_none()) {
            return false;
        }
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.ips.extend(client.ip.map(|ip| ip.to_canonical()));
            m.macs.extend(client.mac);
            m
        });
        true
    }

    /// Adds every device in `list` (a table picked up from an earlier run).
    pub fn extend(&self, list: &Quarantined) {
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.ips.extend(list.ips.iter().map(|ip| ip.to_canonical()));
            m.macs.extend(list.macs.iter().copied());
            m
        });
    }

    /// Everything quarantined, sorted.
    pub fn list(&self) -> Quarantined {
        let m = self.members.load();
        let mut ips: Vec<IpAddr> = m.ips.iter().copied().collect();
        let mut macs: Vec<MacAddr> = m.macs.iter().copied().collect();
        ips.sort();
        macs.sort();
        Quarantined { ips, macs }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_found_by_mac_or_address() {
        let q = Quarantine::default();
        let mac: MacAddr = "52:54:00:aa:00:10".parse().unwrap();
        let ip: IpAddr = "10.77.0.10".parse().unwrap();
        assert!(!q.contains(&Client::new(ip, Some(mac))));
        assert!(q.add(&Client::new(ip, Some(mac))));
        assert!(!q.add(&Client::new(ip, None)), "already in");
        // The same device with a new address, or its address seen without a MAC.
        assert!(q.contains(&Client::new("10.77.0.99".parse().unwrap(), Some(mac))));
        assert!(q.contains(&Client::new("::ffff:10.77.0.10".parse().unwrap(), None)));
        assert!(!q.contains(&Client::new("10.77.0.11".parse().unwrap(), None)));
        assert!(!q.add(&Client::default()));
        assert_eq!(q.list().ips, vec![ip]);
        assert_eq!(q.list().macs, vec![mac]);
    }
}

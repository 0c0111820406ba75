//! What every service of the daemon shares: the live policy, who is who on the network, the
//! events sink and the metrics; and the one way they all name the device a request came from.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use schoolgate_engine::policy::Identity;
use schoolgate_engine::{Client, Policy};

use crate::clients::Directory;
use crate::events::{DeviceInfo, Event, Events, Kind, Severity};
use crate::metrics::Metrics;
use crate::reload::LivePolicy;

#[derive(Debug)]
pub struct Shared {
    pub live: Arc<LivePolicy>,
    pub directory: Arc<Directory>,
    pub events: Arc<Events>,
    pub metrics: Arc<Metrics>,
}

/// A request's sender, as the policy and events see it.
#[derive(Debug, Clone)]
pub struct Who {
    pub client: Client,
    pub identity: Identity,
    pub device: DeviceInfo,
    pub group: Option<String>,
}

impl Shared {
    /// Who sent a request from `ip`: its MAC (neighbour table or lease), its device entry and
    /// group, and the name and owner events should carry.
    pub fn who(&self, policy: &Policy, ip: IpAddr, now: Timestamp) -> Who {
        let known = self.directory.lookup(ip, now);
        let client = Client::new(ip, known.mac);
        let identity = policy.identify(&client);
        let entry = identity.device.and_then(|d| policy.device(d));
        let device = DeviceInfo {
            ip: client.ip,
            mac: client.mac,
            name: entry.map(|d| d.name.clone()).or(known.hostname),
            owner: entry.and_then(|d| d.owner.clone()),
        };
        let group = identity
            .group
            .and_then(|g| policy.group(g))
            .map(|g| g.name.clone());
        Who {
            client,
            identity,
            device,
            group,
        }
    }

    /// Reports a device of a group with `report_presence` the first time it is seen on a day
    /// that group's schedule is in force. `how` says what was seen.
    pub fn note_presence(&self, policy: &Policy, who: &Who, now: Timestamp, how: &str) {
        let Some(group) = who.identity.group.and_then(|g| policy.group(g)) else {
            return;
        };
        let Some(schedule) = group.report_presence.and_then(|s| policy.schedule(s)) else {
            return;
        };
        if !schedule.state(now.as_second()).active {
            return;
        }
        let today = now.to_zoned(policy.timezone().clone()).date();
        if !self
            .events
            .presence()
            .first_today(who.client.mac, who.client.ip, today)
        {
            return;
        }
        let mut e = Event::new(Kind::Presence, now, Severity::Low);
        e.device = who.device.clone();
        e.group = who.group.clone();
        e.evidence = Some(format!("{how} {}", schedule.label));
        self.events.emit(e);
    }
}

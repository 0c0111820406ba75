//! What every service of the daemon shares: the live policy, who is who on the network, the
//! events sink and the metrics; and the one way they all name the device a request came from.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use schoolgate_engine::policy::Identity;
use schoolgate_engine::{Client, Policy};

use crate::clients::Directory;
use crate::events::{DeviceInfo, Event, Events, Kind, Severity};
use crate::firewall::learner::Learner;
use crate::metrics::Metrics;
use crate::quarantine::Quarantine;
use crate::reload::LivePolicy;

#[derive(Debug)]
pub struct Shared {
    pub live: Arc<LivePolicy>,
    pub directory: Arc<Directory>,
    pub events: Arc<Events>,
    pub metrics: Arc<Metrics>,
    /// Where answers go so the firewall learns their addresses; `None` without a firewall.
    pub learner: Option<Learner>,
    /// Devices confined after a bypass attempt.
    pub quarantine: Arc<Quarantine>,
    /// Where the quarantine list is kept.
    pub state_dir: std::path::PathBuf,
}

/// A request's sender, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub client: Client,
    pub identity: Identity,
}

impl Shared {
    /// Who sent a request from `ip`: its MAC (neighbour table or lease), its device entry and
    /// group. Cheap: nothing is allocated; names for events come from [`Shared::describe`].
    pub fn who(&self, policy: &Policy, ip: IpAddr, now: Timestamp) -> Who {
        let client = Client::new(ip, self.directory.mac(ip, now));
        Who {
            client,
            identity: policy.identify(&client),
        }
    }

    /// The device as events name it (the policy's device entry, else the lease's host name),
    /// and its group's name.
    pub fn describe(
        &self,
        policy: &Policy,
        who: &Who,
        now: Timestamp,
    ) -> (DeviceInfo, Option<String>) {
        let entry = who.identity.device.and_then(|d| policy.device(d));
        let name = match entry {
            Some(d) => Some(d.name.clone()),
            None => who
                .client
                .ip
                .and_then(|ip| self.directory.hostname(ip, now)),
        };
        let device = DeviceInfo {
            ip: who.client.ip,
            mac: who.client.mac,
            name,
            owner: entry.and_then(|d| d.owner.clone()),
        };
        let group = who
            .identity
            .group
            .and_then(|g| policy.group(g))
            .map(|g| g.name.clone());
        (device, group)
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
        // Only devices the resolver serves are on the school's networks.
        let served = who.client.ip.is_some_and(|ip| policy.serves(ip));
        if !served || !schedule.state(now.as_second()).active {
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
        (e.device, e.group) = self.describe(policy, who, now);
        e.evidence = Some(format!("{how} {}", schedule.label));
        self.events.emit(e);
    }
}

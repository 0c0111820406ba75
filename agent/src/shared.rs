//! What the detectors share: the live policy, who is who on the network, the devices in
//! quarantine and the metrics; and the one way they all name the device a request came from.
//! What is done about what they see is the actor's ([`crate::act::Actor`]).

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use schoolgate_engine::{Client, Policy};

use crate::act::Who;
use crate::act::quarantine::Quarantine;
use crate::clients::Directory;
use crate::people::sessions::LiveSessions;
use crate::reload::LivePolicy;
use crate::report::metrics::Metrics;

#[derive(Debug)]
pub struct Shared {
    pub live: Arc<LivePolicy>,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    /// Devices confined after a bypass attempt.
    pub quarantine: Arc<Quarantine>,
    /// Who is signed in where.
    pub sessions: Arc<LiveSessions>,
}

impl Shared {
    /// Who sent a request from `ip`: its MAC (neighbour table or lease), its device entry and
    /// group, and the person signed in there. Cheap: nothing is allocated; the names events
    /// carry are the actor's to find.
    pub fn who(&self, policy: &Policy, ip: IpAddr, now: Timestamp) -> Who {
        let client = Client::new(ip, self.directory.mac(ip, now));
        let mut identity = policy.identify(&client);
        identity.person = self.sessions.person_at(policy, ip);
        Who {
            client,
            identity,
            off_site: false,
        }
    }

    /// Who asked the off-site listeners by `id` from `peer`: the device its id names, with
    /// its entry's group and MAC (so a quarantine of the device holds wherever it is). From
    /// an address on the school's networks the device is at school (its profile sends it to
    /// the public listener everywhere): it is judged and reported there, by its address and
    /// the person signed in at it, as [`who`](Self::who) would; away from school, by the
    /// person signed in on the device through the public listener. `None` for an id no
    /// device has.
    pub fn who_by_id(
        &self,
        policy: &Policy,
        id: &str,
        peer: IpAddr,
        now: Timestamp,
    ) -> Option<Who> {
        let identity = policy.off_site_device(id)?;
        let peer = peer.to_canonical();
        if policy.serves(peer) {
            let mut who = self.who(policy, peer, now);
            who.identity.device = identity.device;
            who.identity.group = identity.group;
            return Some(who);
        }
        let entry = identity.device.and_then(|d| policy.device(d));
        let mac = entry.and_then(|d| d.mac);
        let mut identity = identity;
        // The person signed in on it away from school, by its id as the policy spells it.
        identity.person = entry
            .and_then(|d| d.off_site_id.as_deref())
            .and_then(|id| self.sessions.person_on_device(policy, id));
        Some(Who {
            client: Client { ip: None, mac },
            identity,
            off_site: true,
        })
    }
}

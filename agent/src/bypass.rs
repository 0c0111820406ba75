//! What the agent does about a bypass attempt, wherever it was seen: an event for the
//! safeguarding lead, and the policy's `bypass.response` for the device's group (`quarantine`
//! confines the device at once, in the resolver and the firewall).

use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::Policy;
use schoolgate_engine::policy::Response;

use crate::events::{Event, Kind, Severity, Technique, bounded};
use crate::firewall::Firewall;
use crate::firewall::logged::{self, DnsAttempt, Logged};
use crate::firewall::ruleset::EXTERNAL_DNS_LOG;
use crate::quarantine::Record;
use crate::shared::{Shared, Who};
use tracing::{info, warn};

/// One attempt, as a detector saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub client: IpAddr,
    pub technique: Technique,
    /// Where the device was trying to reach.
    pub destination: String,
    /// The name involved, if any.
    pub name: Option<String>,
    /// What was seen, in plain words.
    pub evidence: String,
}

impl Attempt {
    /// The attempt a packet the firewall logged shows, if it shows one: DNS the `dns`
    /// chain logged before redirecting it to the school's resolver.
    pub fn from_logged(p: &Logged) -> Option<Self> {
        if p.prefix != EXTERNAL_DNS_LOG {
            return None;
        }
        logged::dns_attempt(&p.packet).map(|a| Self::external_dns(&a))
    }

    /// DNS sent to an outside resolver (and answered by the school's instead).
    pub fn external_dns(a: &DnsAttempt) -> Self {
        let transport = if a.tcp { "TCP" } else { "UDP" };
        let asked = a
            .name
            .as_deref()
            .map(|n| format!(" for {}", bounded(n)))
            .unwrap_or_default();
        Self {
            client: a.client,
            technique: Technique::ExternalDns,
            destination: a.resolver.to_string(),
            name: None,
            evidence: format!(
                "DNS query{asked} sent to {} over {transport}; answered by the school's resolver instead",
                a.resolver
            ),
        }
    }
}

/// Reports `attempt` and applies the policy's response for the device's group.
pub fn respond(shared: &Shared, firewall: Option<&Firewall>, attempt: Attempt) {
    let now = crate::clock::now();
    let policy = shared.live.current();
    // Only the school's own devices are judged; anything else on the LAN is not ours to
    // confine.
    if !policy.serves(attempt.client) {
        return;
    }
    let who = shared.who(&policy, attempt.client, now);
    respond_as(shared, firewall, &policy, &who, now, attempt);
}

/// [`respond`] for a sender the detector has already worked out (`who`, under `policy` at
/// `now`), as inspection has.
pub fn respond_as(
    shared: &Shared,
    firewall: Option<&Firewall>,
    policy: &Policy,
    who: &Who,
    now: Timestamp,
    attempt: Attempt,
) {
    let response = policy.bypass_response(who.identity.group);
    let (device, group) = shared.describe(policy, who, now);
    let mut e = Event::new(
        Kind::BypassAttempt,
        now,
        match response {
            Response::Log => Severity::Low,
            Response::Alert | Response::Quarantine => Severity::High,
        },
    );
    e.device = device.clone();
    e.group = group.clone();
    e.technique = Some(attempt.technique);
    e.destination = Some(bounded(&attempt.destination));
    e.name = attempt.name.as_deref().map(bounded);
    e.evidence = Some(bounded(&attempt.evidence));
    shared.events.sighting(e);
    let record = Record {
        ip: who.client.ip,
        mac: who.client.mac,
        device: device.name.clone(),
        since: now,
        technique: Some(attempt.technique.as_str().to_owned()),
    };
    if response != Response::Quarantine || !shared.quarantine.add_record(record) {
        return;
    }
    if let Err(err) = shared.quarantine.save(&shared.state_dir) {
        warn!(error = %err, "cannot write the quarantine list; the quarantine holds until the agent stops");
    }
    info!(client = %attempt.client, technique = ?attempt.technique, "device quarantined");
    if let Some(fw) = firewall
        && let Err(err) = fw.quarantine(who.client.ip, who.client.mac)
    {
        warn!(error = %err, "cannot add the device to the firewall's quarantine");
    }
    let mut q = Event::new(Kind::Quarantined, now, Severity::High);
    q.device = device;
    q.group = group;
    q.technique = Some(attempt.technique);
    q.evidence = Some(bounded(&format!(
        "confined to the quarantine_allow names after: {}",
        attempt.evidence
    )));
    shared.events.emit(q);
}

/// Applies the release requests waiting in the state directory: each device named leaves
/// the quarantine (list, state file, firewall sets) and a `released` event records who
/// released it and why. A request naming no quarantined device is logged and dropped.
pub fn apply_releases(shared: &Shared, firewall: Option<&Firewall>) {
    let (requests, bad) = match crate::quarantine::take_requests(&shared.state_dir) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "cannot read the release requests");
            return;
        }
    };
    if bad > 0 {
        warn!(
            lines = bad,
            "release requests that could not be read were skipped"
        );
    }
    let now = crate::clock::now();
    let policy = shared.live.current();
    for request in requests {
        let released = shared.quarantine.release(&request.device);
        if released.is_empty() {
            warn!(device = %request.device, "release asked for a device that is not quarantined");
            continue;
        }
        if let Err(e) = shared.quarantine.save(&shared.state_dir) {
            warn!(error = %e, "cannot write the quarantine list");
        }
        for r in released {
            if let Some(fw) = firewall
                && let Err(e) = fw.release(r.ip, r.mac)
            {
                warn!(error = %e, "cannot take the device out of the firewall's quarantine");
            }
            info!(device = %request.device, by = %request.by, "device released from quarantine");
            let mut e = Event::new(Kind::Released, now, Severity::Info);
            if let Some(ip) = r.ip {
                let who = shared.who(&policy, ip, now);
                (e.device, e.group) = shared.describe(&policy, &who, now);
            }
            e.device.mac = e.device.mac.or(r.mac);
            e.device.name = e.device.name.or(r.device);
            e.evidence = Some(bounded(&format!(
                "released by {} at {}: {}",
                request.by, request.time, request.reason
            )));
            shared.events.emit(e);
        }
    }
}

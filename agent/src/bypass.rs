//! What the agent does about a bypass attempt, wherever it was seen: an event for the
//! safeguarding lead, and the policy's `bypass.response` for the device's group (`quarantine`
//! confines the device at once, in the resolver and the firewall).

use std::net::IpAddr;

use schoolgate_engine::policy::Response;

use crate::events::{Event, Kind, Severity, Technique, bounded};
use crate::firewall::Firewall;
use crate::firewall::logged::DnsAttempt;
use crate::shared::Shared;
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
    let response = policy.bypass_response(who.identity.group);
    let (device, group) = shared.describe(&policy, &who, now);
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
    if response != Response::Quarantine || !shared.quarantine.add(&who.client) {
        return;
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

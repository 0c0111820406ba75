//! A bypass attempt, as a detector saw it, and the one rule that finds one in what the
//! firewall logged: DNS the `dns` chain logged before redirecting it to the school's resolver.
//! What is done about it is the actor's ([`super::Actor`]).

use std::net::IpAddr;

use schoolgate_gateway::firewall::logged::{self, DnsAttempt, Logged};
use schoolgate_gateway::firewall::ruleset::EXTERNAL_DNS_LOG;

use crate::report::events::{Technique, bounded};

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

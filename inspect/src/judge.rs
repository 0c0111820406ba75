//! An observation judged by the policy: what the name or server is (app, category, a
//! technique its list stands for), what the device may do with it now (the one decision
//! function, as the resolver and the firewall use it), and what the agent should do.
//!
//! A technique comes first from the packets (a WireGuard handshake is WireGuard wherever it
//! goes), then from the lists: a connection to a listed resolver, VPN service or Tor relay
//! is an attempt of the kind its category names. A DNS question for such a name is not an
//! attempt in itself (the resolver refuses it); only a connection is.

use jiff::Timestamp;
use schoolgate_engine::policy::{Action as Decided, Response};
use schoolgate_engine::{Classified, Client, Decision, Policy, Technique, classify, decide};

use crate::inspector::{Carrier, NameSource, Observation};

/// What the agent does about an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: allowed.
    Allow,
    /// The name is blocked for this device now: the connection is reset.
    Block,
    /// A bypass attempt: the group's `bypass.response`.
    Quarantine,
    Alert,
    Log,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Block => "block",
            Self::Quarantine => "quarantine",
            Self::Alert => "alert",
            Self::Log => "log",
        }
    }
}

/// The judgement.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'p> {
    pub app: Option<&'p str>,
    pub category: Option<&'p str>,
    pub technique: Option<Technique>,
    pub action: Action,
    /// The decision for the name (or, without one, the server's address).
    pub decision: Decision<'p>,
}

/// Judges `obs` for `client` at `now`.
pub fn judge<'p>(
    policy: &'p Policy,
    client: &Client,
    obs: &Observation,
    now: Timestamp,
    quarantined: bool,
) -> Verdict<'p> {
    let server = obs.server.ip().to_string();
    // The name, or, when it is in no list and the evidence gave others (a certificate's
    // names), the first of those that is: a server whose certificate also names a listed
    // service is that service's. A wildcard name stands for its domain.
    let (name, by_name) = std::iter::once(obs.name.as_deref())
        .flatten()
        .chain(obs.also_names.iter().map(String::as_str))
        .map(|n| n.strip_prefix("*.").unwrap_or(n))
        .map(|n| (n, classify(policy, n)))
        .find(|(_, c)| *c != Classified::default())
        .map_or_else(
            || (obs.name.as_deref(), Classified::default()),
            |(n, c)| (Some(n), c),
        );
    // A DNS question is about its name, not the resolver it went to.
    let connection = obs.name_source != Some(NameSource::Dns);
    let by_address = if connection {
        classify(policy, &server)
    } else {
        Classified::default()
    };
    let listed = if connection {
        by_name.technique.or(by_address.technique)
    } else {
        None
    };
    let technique = obs.technique.or(listed.map(|t| refine(t, obs)));
    let target = name.unwrap_or(&server);
    let mut decision = decide(policy, client, None, target, now, quarantined);
    // A name that decides nothing may still be on a listed address (a Tor relay with a
    // random SNI): the address decides then.
    if obs.name.is_some() && decision.matched.is_none() && by_address != Classified::default() {
        decision = decide(policy, client, None, &server, now, quarantined);
    }
    let action = match technique {
        Some(_) => match policy.bypass_response(decision.identity.group) {
            Response::Quarantine => Action::Quarantine,
            Response::Alert => Action::Alert,
            Response::Log => Action::Log,
        },
        None if decision.action == Decided::Block => Action::Block,
        None => Action::Allow,
    };
    Verdict {
        app: by_name.app.or(by_address.app),
        category: by_name.category.or(by_address.category),
        technique,
        action,
        decision,
    }
}

/// A listed resolver reached on DoT's or DoQ's port is that, not DoH.
fn refine(t: Technique, obs: &Observation) -> Technique {
    match (t, obs.carrier, obs.server.port()) {
        (Technique::DnsOverHttps, Carrier::Tcp, 853) => Technique::DnsOverTls,
        (Technique::DnsOverHttps, Carrier::Quic | Carrier::Udp, 853 | 784 | 8853) => {
            Technique::DnsOverQuic
        }
        (Technique::DnsOverHttps, Carrier::Udp, 53) => Technique::ExternalDns,
        _ => t,
    }
}

//! An observation judged by the policy: what the name or server is (app, category, a
//! technique its list stands for), what the device may do with it now (the one decision
//! function, as the resolver and the firewall use it), and what the agent should do.
//!
//! A technique comes first from the packets (a WireGuard handshake is WireGuard wherever it
//! goes), then from the lists: a connection to a listed resolver, VPN service or Tor relay
//! is an attempt of the kind its category names. A DNS question for such a name is not an
//! attempt in itself (the resolver refuses it); only a connection is.

use jiff::Timestamp;
use schoolgate_engine::policy::{Action as Decided, Identity, Response};
use schoolgate_engine::{Classified, Client, Decision, Policy, Technique, classify, decide_as};

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

/// Judges `obs` for `client` at `now`; `identity` is who the policy says the client is (its
/// device group and the person signed in there), worked out once by the caller.
pub fn judge<'p>(
    policy: &'p Policy,
    client: &Client,
    identity: Identity,
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
    // A known app's own scrambled protocol (Telegram's MTProto) looks like a fully
    // encrypted proxy; on that app's listed addresses it is the app.
    let own_protocol = obs.technique == Some(Technique::EncryptedProxy)
        && by_address.app.is_some()
        && by_address.technique.is_none();
    let technique = if own_protocol {
        None
    } else {
        obs.technique.or(listed.map(|t| refine(t, obs)))
    };
    let target = name.unwrap_or(&server);
    let mut decision = decide_as(policy, client, identity, target, now, quarantined);
    // A name that decides nothing may still be on a listed address (a Tor relay with a
    // random SNI): the address decides then.
    if obs.name.is_some() && decision.matched.is_none() && by_address != Classified::default() {
        decision = decide_as(policy, client, identity, &server, now, quarantined);
    }
    let action = match technique {
        Some(_) => match policy.bypass_response_of(&decision.identity) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use schoolgate_engine::PersonView;

    use super::*;

    #[test]
    fn a_connection_is_judged_for_the_person_signed_in_too() {
        let no_lists =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        let policy = Policy::from_yaml(
            "version: 1
school: { name: Test School, timezone: Europe/London }
categories:
  video: { domains: [youtube.com] }
groups:
  library: { networks: [10.0.0.0/8] }
  pupils: { directory: [Pupils] }
rules:
  - { name: Pupils no video, groups: [pupils], block: [video] }
",
            Path::new("/school/policy.yaml"),
            &no_lists,
        )
        .unwrap();
        let obs = Observation {
            time: Duration::ZERO,
            client: "10.0.0.7:50000".parse().unwrap(),
            server: "192.0.2.80:443".parse().unwrap(),
            client_mac: None,
            carrier: Carrier::Tcp,
            name: Some("www.youtube.com".into()),
            name_source: Some(NameSource::Sni),
            also_names: Vec::new(),
            technique: None,
            evidence: "TLS SNI www.youtube.com".into(),
            alpn: Vec::new(),
            ja4: None,
            ech: None,
            resume: None,
        };
        let client = Client::new(obs.client.ip(), None);
        let now = "2026-11-24T10:00:00Z".parse().unwrap();
        let device_only = policy.identify(&client);
        assert_eq!(
            judge(&policy, &client, device_only, &obs, now, false).action,
            Action::Allow
        );
        let groups = ["Pupils".to_owned()];
        let mut signed_in = device_only;
        signed_in.person = Some(policy.identify_person(&PersonView {
            username: "amira.k",
            class: None,
            groups: &groups,
        }));
        let verdict = judge(&policy, &client, signed_in, &obs, now, false);
        assert_eq!(verdict.action, Action::Block);
        assert_eq!(
            verdict.decision.matched.map(|m| m.domain),
            Some("youtube.com")
        );
    }
}

//! Ending a connection inspection judged blocked: TCP by a reset to each end (to the device
//! through the LAN interface's sender, to the server through a raw IP socket the gateway's
//! own stack routes), QUIC by refusing the flow in the firewall for [`QUIC_BLOCK`] (the
//! browser falls back to TCP, which is reset).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use schoolgate_inspect::inspector::{Carrier, Observation};
use schoolgate_inspect::reset::resets;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::warn;

use crate::capture::live::Sender;
use crate::firewall::Firewall;

/// How long a QUIC flow to a blocked name stays refused.
pub const QUIC_BLOCK: Duration = Duration::from_secs(120);
/// `IPPROTO_RAW`: a raw socket whose packets carry their own IP header.
const IPPROTO_RAW: i32 = 255;

/// How the daemon ends connections inspection judged blocked.
#[derive(Debug)]
pub struct Enforcer {
    /// The LAN interface's sender: resets to devices.
    lan: Option<Sender>,
    /// Raw IP sockets: resets to servers, routed by the gateway's own stack.
    raw_v4: Option<Socket>,
    raw_v6: Option<Socket>,
    firewall: Option<Arc<Firewall>>,
}

impl Enforcer {
    pub fn new(lan: Option<Sender>, firewall: Option<Arc<Firewall>>) -> Self {
        let raw = |domain| {
            Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
                .map_err(|e| warn!(error = %e, "cannot open a raw socket: resets reach devices but not servers"))
                .ok()
        };
        Self {
            lan,
            raw_v4: raw(Domain::IPV4),
            raw_v6: raw(Domain::IPV6),
            firewall,
        }
    }

    /// Ends the connection of `obs`. Returns what was done, in words for the event.
    pub fn end(&mut self, obs: &Observation) -> &'static str {
        match obs.carrier {
            Carrier::Tcp => {
                let Some(mac) = self.lan.as_ref().map(|s| s.mac) else {
                    return "not reset (no capture sender)";
                };
                let Some(r) = resets(obs, mac) else {
                    return "not reset (sequence numbers unknown)";
                };
                let mut done = false;
                if let (Some(frame), Some(lan)) = (&r.to_client, &mut self.lan) {
                    match lan.send(frame) {
                        Ok(()) => done = true,
                        Err(e) => warn!(error = %e, "cannot send a reset to the device"),
                    }
                }
                let raw = if obs.server.is_ipv4() {
                    &self.raw_v4
                } else {
                    &self.raw_v6
                };
                if let Some(raw) = raw {
                    let to = SockAddr::from(SocketAddr::new(obs.server.ip(), 0));
                    match raw.send_to(&r.to_server, &to) {
                        Ok(_) => done = true,
                        Err(e) => warn!(error = %e, "cannot send a reset to the server"),
                    }
                }
                if done { "reset" } else { "reset failed" }
            }
            Carrier::Quic | Carrier::Udp => match &self.firewall {
                Some(fw) => match fw.block_quic(obs.client.ip(), obs.server, QUIC_BLOCK) {
                    Ok(()) => "refused for 2 minutes",
                    Err(e) => {
                        warn!(error = %e, "cannot refuse a QUIC flow");
                        "refusal failed"
                    }
                },
                None => "not refused (no firewall)",
            },
            _ => "not ended",
        }
    }
}

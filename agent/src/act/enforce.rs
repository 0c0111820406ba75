//! Ending a connection inspection judged blocked: TCP by a reset to each end (to the device
//! through the LAN interface's sender, to the server through a raw IP socket the gateway's
//! own stack routes) and by refusing the connection in the firewall, QUIC by refusing the
//! flow in the firewall (the browser falls back to TCP, which is reset); each for
//! [`FLOW_BLOCK`].
//!
//! The forged resets go at once but race the server's answer: a device that took the
//! server's next bytes first ignores a reset at the older sequence number. The firewall's
//! refusal closes that gap: the device's next packet meets a reset the kernel makes from
//! it. Loading the firewall takes milliseconds, so it is done by a thread of its own, in
//! batches, and inspection never waits for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use schoolgate_inspect::inspector::{Carrier, Observation};
use schoolgate_inspect::reset::resets;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::{debug, warn};

use crate::capture::live::Sender;
use crate::firewall::{Firewall, Flow};

/// How long a flow inspection judged blocked stays refused.
pub const FLOW_BLOCK: Duration = Duration::from_secs(120);
/// Refusals waiting for the firewall; beyond this a flow is only reset (TCP) or not
/// refused (QUIC), and the evidence says so.
const QUEUED_MAX: usize = 4096;
/// Refusals loaded in one transaction at most.
const BATCH_MAX: usize = 256;
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
    /// The thread that refuses flows in the firewall.
    refusals: Option<SyncSender<Flow>>,
}

impl Enforcer {
    pub fn new(lan: Option<Sender>, firewall: Option<Arc<Firewall>>) -> Self {
        let raw = |domain| {
            Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
                .map_err(|e| warn!(error = %e, "cannot open a raw socket: resets reach devices but not servers"))
                .ok()
        };
        let refusals = firewall.and_then(|fw| {
            let (tx, rx) = sync_channel(QUEUED_MAX);
            std::thread::Builder::new()
                .name("refuse-flows".into())
                .spawn(move || refuse(&fw, &rx))
                .map_err(|e| warn!(error = %e, "cannot start the thread that refuses flows"))
                .ok()
                .map(|_| tx)
        });
        Self {
            lan,
            raw_v4: raw(Domain::IPV4),
            raw_v6: raw(Domain::IPV6),
            refusals,
        }
    }

    /// Hands `flow` to the refusing thread; whether it was taken.
    fn refuse(&self, flow: Flow) -> Option<bool> {
        let tx = self.refusals.as_ref()?;
        Some(match tx.try_send(flow) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                debug!("the firewall is behind: a blocked flow is not refused");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        })
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
                let refused = self.refuse(Flow::Tcp {
                    client: obs.client,
                    server: obs.server,
                });
                match (done, refused) {
                    (true, Some(true)) => "reset and refused for 2 minutes",
                    (true, _) => "reset",
                    (false, Some(true)) => "refused for 2 minutes",
                    (false, _) => "reset failed",
                }
            }
            Carrier::Quic | Carrier::Udp => match self.refuse(Flow::Quic {
                client: obs.client.ip(),
                server: obs.server,
            }) {
                Some(true) => "refused for 2 minutes",
                Some(false) => "refusal failed",
                None => "not refused (no firewall)",
            },
            _ => "not ended",
        }
    }
}

/// Loads refusals as they come, each batch in one transaction, until the enforcer goes.
fn refuse(fw: &Firewall, rx: &Receiver<Flow>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while let Ok(first) = rx.recv() {
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        if let Err(e) = fw.block_flows(&batch, FLOW_BLOCK) {
            warn!(error = %e, flows = batch.len(), "cannot refuse blocked flows");
        }
    }
}

//! Packet inspection in the daemon: frames from a [`Frames`] source through the kernel
//! filter (where it is not the kernel's already), the [`Inspector`] and [`judge`], and then
//! what the verdict asks for:
//! - a bypass attempt: [`bypass::respond`] (event, and quarantine where the group's
//!   `bypass.response` says so);
//! - a connection to a name blocked for that device now: a `blocked` event with the evidence,
//!   and the connection ended — TCP by a reset to each end, QUIC by refusing the flow in the
//!   firewall for [`QUIC_BLOCK`] (the browser falls back to TCP, which is reset).
//!
//! DNS questions are left to those that already answer for them: the resolver reports the
//! names asked of it, and the firewall reports DNS sent elsewhere (inspection reports
//! external DNS only when there is no firewall). DNS tunnels are inspection's own.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use schoolgate_engine::Technique;
use schoolgate_inspect::filter::{self, Framing, Insn};
use schoolgate_inspect::inspector::{Carrier, Config, Inspector, NameSource, Observation};
use schoolgate_inspect::judge::{Action, judge};
use schoolgate_inspect::packet::{self, LinkType};
use schoolgate_inspect::reset::resets;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::{debug, info, warn};

use crate::bypass::{self, Attempt};
use crate::capture::live::{Live, Sender};
use crate::capture::{Frame, Frames, Next};
use crate::events::bounded;
use crate::firewall::Firewall;
use crate::shared::Shared;

/// How long a QUIC flow to a blocked name stays refused.
pub const QUIC_BLOCK: Duration = Duration::from_secs(120);
/// `IPPROTO_RAW`: a raw socket whose packets carry their own IP header.
const IPPROTO_RAW: i32 = 255;

/// Frames to observations: the filter (when asked for), then the inspector.
#[derive(Debug)]
pub struct Pipeline {
    inspector: Inspector,
    programs: Option<[Vec<Insn>; 3]>,
    observed: Vec<Observation>,
    /// Frames the filter dropped.
    pub filtered: u64,
}

impl Pipeline {
    /// A pipeline; `filter` runs the kernel filter in user space first (for sources the
    /// kernel did not filter, such as files).
    pub fn new(config: Config, filter: bool) -> Self {
        Self {
            inspector: Inspector::new(config),
            programs: filter.then(|| {
                [Framing::Ethernet, Framing::LinuxSll, Framing::RawIp].map(filter::program)
            }),
            observed: Vec::new(),
            filtered: 0,
        }
    }

    /// Takes one frame; returns what it completed (drain it before the next frame).
    pub fn frame(&mut self, f: Frame<'_>) -> &mut Vec<Observation> {
        self.observed.clear();
        if let Some(programs) = &self.programs {
            let program = match f.link {
                LinkType::Ethernet => programs.first(),
                LinkType::LinuxSll => programs.get(1),
                LinkType::RawIp => programs.get(2),
                // The program is not written for BSD loopback; such frames pass.
                LinkType::Null => None,
            };
            if program.is_some_and(|p| filter::run(p, f.data) == 0) {
                self.filtered += 1;
                return &mut self.observed;
            }
        }
        match packet::view(f.link, f.data) {
            Some(p) => self.inspector.packet(f.time, &p, &mut self.observed),
            None => self.inspector.stats.not_ip += 1,
        }
        &mut self.observed
    }

    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }
}

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
    fn end(&mut self, obs: &Observation) -> &'static str {
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

/// Judges one observation and does what the verdict asks.
pub fn act(
    shared: &Shared,
    firewall: Option<&Firewall>,
    enforcer: &mut Enforcer,
    obs: &Observation,
) {
    let policy = shared.live.current();
    let ip: IpAddr = obs.client.ip();
    // Only the school's own devices are judged.
    if !policy.serves(ip) {
        return;
    }
    // Sinkholed names lead to the block page, so a connection to it names a blocked site
    // (HTTP Host, TLS server name): the block page answers it, inspection must not reset it.
    let block_page = policy.gateway().and_then(|g| g.block_page.as_ref());
    if block_page.is_some_and(|b| b.is_at(obs.server.ip())) {
        return;
    }
    if obs.name_source == Some(NameSource::Dns) {
        let ours = match obs.technique {
            // The resolver answers DNS; what it cannot see in a question is a tunnel, or a
            // DNSCrypt client's first step.
            Some(Technique::DnsTunnel | Technique::Dnscrypt) => true,
            Some(Technique::ExternalDns) => firewall.is_none(),
            _ => false,
        };
        if !ours {
            return;
        }
    }
    let now = crate::clock::now();
    let who = shared.who(&policy, ip, now);
    let quarantined = shared.quarantine.contains(&who.client);
    let verdict = judge(&policy, &who.client, obs, now, quarantined);
    shared.metrics.inspected(verdict.action.as_str());
    match verdict.action {
        Action::Allow => {}
        Action::Block => {
            let done = enforcer.end(obs);
            debug!(client = %obs.client, server = %obs.server, name = ?obs.name, done, "blocked connection");
            // A quarantined device's connections are the firewall's to refuse; reporting
            // each would bury the attempt that put it there.
            if quarantined {
                return;
            }
            let seen = crate::act::Blocked {
                name: obs.name.as_deref().map(bounded),
                rule: verdict.decision.rule_name(&policy).map(str::to_owned),
                category: verdict.decision.category(&policy).map(str::to_owned),
                destination: Some(obs.server.to_string()),
                evidence: bounded(&format!("{}; connection {done}", obs.evidence)),
            };
            crate::act::blocked(shared, &policy, &who, now, seen);
        }
        Action::Quarantine | Action::Alert | Action::Log => {
            if let Some(technique) = verdict.technique {
                bypass::respond_as(
                    shared,
                    firewall,
                    &policy,
                    &who,
                    now,
                    Attempt {
                        client: ip,
                        technique,
                        destination: obs.server.to_string(),
                        name: obs.name.clone(),
                        evidence: obs.evidence.clone(),
                    },
                );
            }
        }
    }
}

/// Runs inspection on `source` until `stop` is set or the source ends.
pub fn run(
    mut source: impl Frames,
    shared: &Shared,
    firewall: Option<&Firewall>,
    mut enforcer: Enforcer,
    filter: bool,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut pipeline = Pipeline::new(Config::default(), filter);
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next()? {
            Next::Frame(f) => f,
            Next::Idle => continue,
            Next::End => break,
        };
        shared.metrics.captured.inc();
        for obs in pipeline.frame(frame).drain(..) {
            act(shared, firewall, &mut enforcer, &obs);
        }
    }
    Ok(())
}

/// Starts one inspection thread per opened interface.
pub fn spawn(
    captures: Vec<(String, Live, Sender)>,
    shared: Arc<Shared>,
    firewall: Option<Arc<Firewall>>,
    stop: Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (name, live, sender) in captures {
        let (shared, firewall, stop) = (Arc::clone(&shared), firewall.clone(), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("inspect-{name}"))
            .spawn(move || {
                info!(interface = %name, "inspecting");
                let enforcer = Enforcer::new(Some(sender), firewall.clone());
                if let Err(e) = run(live, &shared, firewall.as_deref(), enforcer, false, &stop) {
                    warn!(interface = %name, error = %e, "capture stopped");
                }
            })?;
        threads.push(thread);
    }
    Ok(threads)
}

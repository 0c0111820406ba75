//! Packet inspection in the daemon: frames from a [`Frames`] source through the kernel
//! filter (where it is not the kernel's already), the [`Inspector`] and [`judge`], and the
//! outcome handed to the actor ([`Actor::act`]): a bypass attempt, or a connection to a name
//! blocked for that device now, ended first by the [`Enforcer`].
//!
//! DNS questions are left to those that already answer for them: the resolver reports the
//! names asked of it, and the firewall reports DNS sent elsewhere (inspection reports
//! external DNS only when there is no firewall). DNS tunnels are inspection's own.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use schoolgate_engine::{Policy, Technique};
use schoolgate_inspect::filter::{self, Framing, Insn};
use schoolgate_inspect::inspector::{Config, Inspector, NameSource, Observation};
use schoolgate_inspect::judge::{Action, Verdict, judge};
use schoolgate_inspect::packet::{self, LinkType};
use tracing::{debug, info, warn};

use crate::act::enforce::Enforcer;
use crate::act::{Actor, Attempt, Blocked, Outcome};
use crate::capture::live::{Live, Sender};
use crate::capture::{Frame, Frames, Next};
use crate::report::events::bounded;
use crate::shared::Shared;

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
            let kept = program.map(|p| filter::run(p, f.data));
            if kept == Some(0) {
                self.filtered += 1;
                return &mut self.observed;
            }
            // The kernel keeps only the bytes the program says (the head of a large segment).
            if let Some(kept) = kept.and_then(|k| usize::try_from(k).ok())
                && kept < f.data.len()
            {
                let data = f.data.get(..kept).unwrap_or(f.data);
                return self.view(Frame { data, ..f });
            }
        }
        self.view(f)
    }

    fn view(&mut self, f: Frame<'_>) -> &mut Vec<Observation> {
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

/// What inspection makes of one observation, handed to the actor: the sender worked out
/// once, the verdict judged, a blocked connection ended by `enforcer`.
pub fn act(shared: &Shared, actor: &Actor, enforcer: &mut Enforcer, obs: &Observation) {
    let policy = shared.live.current();
    let ip: IpAddr = obs.client.ip();
    if !ours(&policy, actor.has_firewall(), obs) {
        return;
    }
    let now = crate::clock::now();
    let who = shared.who(&policy, ip, now);
    // Supervised use: the names seen on the wire are recorded too (an app that kept an
    // address, or a resolver of its own, asks the school's DNS nothing).
    if shared.quarantine.supervised_at(ip)
        && let (Some(name), Some(source)) = (&obs.name, obs.name_source)
        && source != NameSource::Dns
    {
        let seen = Outcome::Supervised {
            name: name.clone(),
            how: "name seen on the wire",
        };
        actor.act(&policy, &who, now, seen);
    }
    let quarantined = shared.quarantine.contains(&who.client);
    let verdict = judge(&policy, &who.client, who.identity, obs, now, quarantined);
    shared.metrics.inspected(verdict.action.as_str());
    if let Some(outcome) = outcome(&policy, obs, &verdict, quarantined, enforcer) {
        actor.act(&policy, &who, now, outcome);
    }
}

/// Whether `obs` is inspection's to judge: only the school's own devices are; the block
/// page's own connections are not; and DNS is left to those that answer for it.
fn ours(policy: &Policy, firewall: bool, obs: &Observation) -> bool {
    if !policy.serves(obs.client.ip()) {
        return false;
    }
    // Sinkholed names lead to the block page, so a connection to it names a blocked site
    // (HTTP Host, TLS server name): the block page answers it, inspection must not reset it.
    let block_page = policy.gateway().and_then(|g| g.block_page.as_ref());
    if block_page.is_some_and(|b| b.is_at(obs.server.ip())) {
        return false;
    }
    if obs.name_source == Some(NameSource::Dns) {
        return match obs.technique {
            // The resolver answers DNS; what it cannot see in a question is a tunnel, or a
            // DNSCrypt client's first step.
            Some(Technique::DnsTunnel | Technique::Dnscrypt) => true,
            Some(Technique::ExternalDns) => !firewall,
            _ => false,
        };
    }
    true
}

/// The outcome of a verdict: a blocked connection (ended first, so the evidence says how),
/// or a bypass attempt.
fn outcome(
    policy: &Policy,
    obs: &Observation,
    verdict: &Verdict<'_>,
    quarantined: bool,
    enforcer: &mut Enforcer,
) -> Option<Outcome> {
    match verdict.action {
        Action::Allow => None,
        Action::Block => {
            let done = enforcer.end(obs);
            debug!(client = %obs.client, server = %obs.server, name = ?obs.name, done, "blocked connection");
            // A quarantined device's connections are the firewall's to refuse; reporting
            // each would bury the attempt that put it there.
            if quarantined {
                return None;
            }
            Some(Outcome::Blocked(Blocked {
                name: obs.name.as_deref().map(bounded),
                rule: verdict.decision.rule_name(policy).map(str::to_owned),
                category: verdict.decision.category(policy).map(str::to_owned),
                destination: Some(obs.server.to_string()),
                evidence: bounded(&format!("{}; connection {done}", obs.evidence)),
            }))
        }
        Action::Quarantine | Action::Alert | Action::Log => verdict.technique.map(|technique| {
            Outcome::Attempt(Attempt {
                client: obs.client.ip(),
                technique,
                destination: obs.server.to_string(),
                name: obs.name.clone(),
                evidence: obs.evidence.clone(),
            })
        }),
    }
}

/// Runs inspection on `source` until `stop` is set or the source ends.
pub fn run(
    mut source: impl Frames,
    shared: &Shared,
    actor: &Actor,
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
            act(shared, actor, &mut enforcer, &obs);
        }
    }
    Ok(())
}

/// Starts one inspection thread per opened interface.
pub fn spawn(
    captures: Vec<(String, Live, Sender)>,
    shared: Arc<Shared>,
    actor: Arc<Actor>,
    stop: Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (name, live, sender) in captures {
        let (shared, actor, stop) = (Arc::clone(&shared), Arc::clone(&actor), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("inspect-{name}"))
            .spawn(move || {
                info!(interface = %name, "inspecting");
                let enforcer = Enforcer::new(Some(sender), actor.firewall_handle());
                if let Err(e) = run(live, &shared, &actor, enforcer, false, &stop) {
                    warn!(interface = %name, error = %e, "capture stopped");
                }
            })?;
        threads.push(thread);
    }
    Ok(threads)
}

//! Act: what the agent does about what its detectors saw.
//!
//! The resolver, inspection and the firewall's log each work out who sent what they saw
//! ([`Who`], once) and hand [`Actor::act`] an [`Outcome`]: a name or connection a rule
//! blocked, a bypass attempt, a device seen present. The actor is the one place that turns
//! an outcome into events, quarantine and firewall changes.
//!
//! - [`attempt`]: a bypass attempt, and the firewall's logged packets that show one.
//! - [`commands`]: the console's commands taken (releases).
//! - [`explain`]: the console's questions answered as `schoolgate-agent explain` answers.
//! - [`granted`]: the console's granted exceptions kept for the policy; the policy text sent.
//! - [`quarantine`]: devices confined after a bypass attempt, and the release requests.
//! - [`release`]: release requests applied (list, state file, firewall, event).
//! - [`enforce`]: ending a connection inspection judged blocked (resets, QUIC refusal).

pub mod attempt;
pub mod commands;
pub mod enforce;
pub mod explain;
pub mod granted;
pub mod quarantine;
pub mod release;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use schoolgate_engine::Policy;
use schoolgate_engine::policy::Response;
use tracing::{info, warn};

use schoolgate_engine::Client;
use schoolgate_engine::policy::Identity;

use crate::clients::Directory;
use crate::firewall::Firewall;
use crate::people::sessions::LiveSessions;
use crate::report::events::{DeviceInfo, Event, Events, Kind, Severity, Ticket, bounded};
pub use attempt::Attempt;
use quarantine::{Banned, Quarantine, Record};
use schoolgate_contract::PersonInfo;
use schoolgate_gateway::events::aggregate::Sighting;

/// A request's sender, as the policy sees it (worked out once, by the detector).
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub client: Client,
    pub identity: Identity,
    /// A school device away from school, asking by its off-site id: no address of its own
    /// is known (or kept), and its events say where it was.
    pub off_site: bool,
}

/// What a detector saw, for the actor.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// A name or connection a rule blocked.
    Blocked(Blocked),
    /// A bypass attempt.
    Attempt(Attempt),
    /// The device was seen (`how`, in words); reported once a day for groups with
    /// `report_presence`, while that schedule is in force.
    Presence { how: &'static str },
    /// A name reached from where a person in supervised use is signed in, and how it was
    /// seen (in words).
    Supervised { name: String, how: &'static str },
}

/// A name or connection a rule blocked, as the resolver or inspection saw it.
#[derive(Debug, Clone, Default)]
pub struct Blocked {
    /// The name asked for or seen (bounded by the caller).
    pub name: Option<String>,
    pub rule: Option<String>,
    pub category: Option<String>,
    /// Where the device was trying to reach, for a connection.
    pub destination: Option<String>,
    /// What was seen, in plain words.
    pub evidence: String,
}

/// The one place outcomes become events, quarantines and firewall changes.
#[derive(Debug)]
pub struct Actor {
    events: Arc<Events>,
    /// Names for devices the policy does not list (DHCP host names).
    directory: Arc<Directory>,
    quarantine: Arc<Quarantine>,
    firewall: Option<Arc<Firewall>>,
    /// Where the quarantine list is kept.
    state_dir: PathBuf,
    /// Who is signed in where, to name the person in events.
    sessions: Option<Arc<LiveSessions>>,
}

impl Actor {
    pub fn new(
        events: Arc<Events>,
        directory: Arc<Directory>,
        quarantine: Arc<Quarantine>,
        firewall: Option<Arc<Firewall>>,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            events,
            directory,
            quarantine,
            firewall,
            state_dir,
            sessions: None,
        }
    }

    /// Names the person signed in on a device in its events.
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<LiveSessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The events queue, for those that wait on a ticket.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Whether a firewall carries out quarantines and refusals.
    pub fn has_firewall(&self) -> bool {
        self.firewall.is_some()
    }

    /// The firewall, for an [`enforce::Enforcer`] to refuse flows with.
    pub fn firewall_handle(&self) -> Option<Arc<Firewall>> {
        self.firewall.clone()
    }

    /// Does what `outcome`, seen from `who` under `policy` at `now`, calls for. The ticket
    /// of a first sighting, which the resolver waits on before it answers.
    pub fn act(
        &self,
        policy: &Policy,
        who: &Who,
        now: Timestamp,
        outcome: Outcome,
    ) -> Option<Ticket> {
        match outcome {
            Outcome::Blocked(b) => self.blocked(policy, who, now, b),
            Outcome::Attempt(a) => {
                self.attempt(policy, who, now, a);
                None
            }
            Outcome::Presence { how } => {
                self.presence(policy, who, now, how);
                None
            }
            Outcome::Supervised { name, how } => {
                let mut e = Event::new(Kind::Supervised, now, Severity::Info);
                (e.device, e.group) = self.describe(policy, who, now);
                e.person = self.person(policy, who);
                e.name = Some(bounded(&name));
                e.evidence = Some(format!("{how} in supervised use"));
                self.events.sighting(e)
            }
        }
    }

    /// Counts a blocked name seen again at school within its window, from what the request
    /// already holds: no event is built for it. `false` when it opens a window (or the
    /// device is away from school): then [`act`](Self::act) reports it in full.
    pub fn blocked_again(&self, who: &Who, now: Timestamp, name: &str, rule: Option<&str>) -> bool {
        let Some(ip) = who.client.ip else {
            return false;
        };
        let again = |person: Option<&str>| {
            self.events.repeat(
                &Sighting {
                    ip: Some(ip),
                    mac: who.client.mac,
                    person,
                    name: Some(name),
                    rule,
                    technique: None,
                    destination: None,
                },
                now,
            )
        };
        match &self.sessions {
            Some(sessions) => sessions.with_username_at(ip, again),
            None => again(None),
        }
    }

    /// Reports a blocked name or connection: a first sighting goes to the journal at once,
    /// repeats are counted.
    fn blocked(&self, policy: &Policy, who: &Who, now: Timestamp, b: Blocked) -> Option<Ticket> {
        let mut e = Event::new(Kind::Blocked, now, Severity::Low);
        (e.device, e.group) = self.describe(policy, who, now);
        e.person = self.person(policy, who);
        e.name = b.name;
        e.rule = b.rule;
        e.category = b.category;
        e.destination = b.destination;
        e.evidence = Some(b.evidence);
        self.events.sighting(e)
    }

    /// Reports a bypass attempt and applies the policy's `bypass.response` for the device's
    /// group: `quarantine` confines the device at once, in the resolver and the firewall.
    fn attempt(&self, policy: &Policy, who: &Who, now: Timestamp, attempt: Attempt) {
        let response = policy.bypass_response_of(&who.identity);
        let (device, group) = self.describe(policy, who, now);
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
        let person = self.person(policy, who);
        e.person = person.clone();
        e.technique = Some(attempt.technique);
        e.destination = Some(bounded(&attempt.destination));
        e.name = attempt.name.as_deref().map(bounded);
        e.evidence = Some(bounded(&attempt.evidence));
        self.events.sighting(e);
        if response != Response::Quarantine {
            return;
        }
        // The ban is the person's where someone is signed in: they are banned from school
        // ICT, and this device is held for them while they are signed in here.
        let username = person.as_ref().map(|p| p.username.clone());
        // An attempt in supervised use ends it: the ban is in force again at once.
        let supervision_ended = username
            .as_ref()
            .is_some_and(|u| self.quarantine.end_supervision(u));
        let banned = supervision_ended
            || username.as_ref().is_some_and(|u| {
                self.quarantine.ban(Banned {
                    username: u.clone(),
                    since: now,
                    technique: Some(attempt.technique.as_str().to_owned()),
                    supervised: None,
                })
            });
        let record = Record {
            ip: who.client.ip,
            mac: who.client.mac,
            device: device.name.clone(),
            since: now,
            technique: Some(attempt.technique.as_str().to_owned()),
            person: username.clone(),
        };
        if !self.quarantine.add_record(record) {
            if banned {
                self.save_quarantine();
            }
            return;
        }
        self.save_quarantine();
        info!(client = %attempt.client, technique = ?attempt.technique, "device quarantined");
        if let Some(fw) = &self.firewall
            && let Err(err) = fw.quarantine(who.client.ip, who.client.mac)
        {
            warn!(error = %err, "cannot add the device to the firewall's quarantine");
        }
        let mut q = Event::new(Kind::Quarantined, now, Severity::High);
        q.device = device;
        q.group = group;
        q.person = person;
        q.technique = Some(attempt.technique);
        let whose = match &username {
            Some(u) if supervision_ended => format!(
                "; this was in supervised use, which is over: {u}'s ban from school ICT is in force again"
            ),
            Some(u) => format!(
                "; {u} is banned from school ICT until released, on whichever device they sign in to"
            ),
            None => String::new(),
        };
        q.evidence = Some(bounded(&format!(
            "confined to the quarantine_allow names after: {}{whose}",
            attempt.evidence
        )));
        self.events.emit(q);
    }

    /// Writes the quarantine list (devices and people) to the state directory.
    fn save_quarantine(&self) {
        if let Err(err) = self.quarantine.save(&self.state_dir) {
            warn!(error = %err, "cannot write the quarantine list; the quarantine holds until the agent stops");
        }
    }

    /// Reports a device of a group with `report_presence` the first time it is seen on a
    /// day that group's schedule is in force.
    fn presence(&self, policy: &Policy, who: &Who, now: Timestamp, how: &str) {
        let Some(group) = who.identity.group.and_then(|g| policy.group(g)) else {
            return;
        };
        let Some(schedule) = group.report_presence.and_then(|s| policy.schedule(s)) else {
            return;
        };
        // Only devices the resolver serves are on the school's networks.
        let served = who.client.ip.is_some_and(|ip| policy.serves(ip));
        if !served || !schedule.state(now.as_second()).active {
            return;
        }
        let today = now.to_zoned(policy.timezone().clone()).date();
        if !self
            .events
            .presence()
            .first_today(who.client.mac, who.client.ip, today)
        {
            return;
        }
        let mut e = Event::new(Kind::Presence, now, Severity::Low);
        (e.device, e.group) = self.describe(policy, who, now);
        e.person = self.person(policy, who);
        e.evidence = Some(format!("{how} {}", schedule.label));
        self.events.emit(e);
    }

    /// The person signed in on the device, as events name them: the username, and from the
    /// directory their name and class; their group as the policy placed them.
    fn person(&self, policy: &Policy, who: &Who) -> Option<PersonInfo> {
        let sessions = self.sessions.as_ref()?;
        let (username, person) = match who.client.ip {
            Some(ip) => sessions.person_info(ip)?,
            // Away from school: whoever signed in on the device, by its off-site id.
            None if who.off_site => {
                let id = who
                    .identity
                    .device
                    .and_then(|d| policy.device(d))?
                    .off_site_id
                    .as_deref()?;
                sessions.person_info_on_device(id)?
            }
            None => return None,
        };
        let group = who
            .identity
            .person
            .and_then(|p| p.group)
            .and_then(|g| policy.group(g))
            .map(|g| g.name.clone());
        Some(PersonInfo {
            username: username.to_string(),
            display_name: person.as_ref().map(|p| bounded(&p.display_name)),
            group,
            class: person.and_then(|p| p.class),
        })
    }

    /// A person as events name them, from the directory, when they are not signed in.
    fn person_named(&self, username: &str) -> Option<PersonInfo> {
        let found = self
            .sessions
            .as_ref()
            .and_then(|s| s.person_named(username));
        Some(PersonInfo {
            username: found
                .as_ref()
                .map_or_else(|| bounded(username), |p| p.username.to_string()),
            display_name: found.as_ref().map(|p| bounded(&p.display_name)),
            group: None,
            class: found.and_then(|p| p.class),
        })
    }

    /// The device as events name it (the policy's device entry, else the lease's host name),
    /// and its group's name.
    fn describe(&self, policy: &Policy, who: &Who, now: Timestamp) -> (DeviceInfo, Option<String>) {
        let entry = who.identity.device.and_then(|d| policy.device(d));
        let name = match entry {
            Some(d) => Some(d.name.clone()),
            None => who
                .client
                .ip
                .and_then(|ip| self.directory.hostname(ip, now)),
        };
        let device = DeviceInfo {
            ip: who.client.ip,
            mac: who.client.mac,
            name,
            owner: entry.and_then(|d| d.owner.clone()),
            off_site: who.off_site,
        };
        let group = who
            .identity
            .group
            .and_then(|g| policy.group(g))
            .map(|g| g.name.clone());
        (device, group)
    }
}

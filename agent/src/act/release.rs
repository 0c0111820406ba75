//! Release requests (`schoolgate-agent release`, the console's commands) applied: each
//! device named leaves the quarantine (list, state file, firewall sets) and a `released`
//! event records who released it and why.

use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::Policy;
use tracing::{info, warn};

use super::quarantine::{Record, Then};
use super::{Actor, Who};
use crate::report::events::{Event, Kind, Severity, bounded};

impl Actor {
    /// Applies the release requests waiting in the state directory: each device named leaves
    /// the quarantine (list, state file, firewall sets) and a `released` event records who
    /// released it and why (`who` names the device at an address under `policy` at `now`). A
    /// request naming no quarantined device is logged and dropped.
    pub fn apply_releases(&self, policy: &Policy, now: Timestamp, who: impl Fn(IpAddr) -> Who) {
        let (requests, bad) = match crate::act::quarantine::take_requests(&self.state_dir) {
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
        for request in requests {
            let why = format!(
                "released by {} at {}: {}",
                request.by, request.time, request.reason
            );
            // A person's ban first (with every device held for them), then the device named
            // (the console names both: the person the alert shows, and the device).
            let mut done = false;
            if let (Some(person), Some(minutes)) = (&request.person, request.supervised_minutes) {
                // Minutes are bounded when requests are read (a week at most).
                let Ok(until) =
                    now.checked_add(jiff::SignedDuration::from_mins(i64::from(minutes)))
                else {
                    continue;
                };
                let then = request.then.unwrap_or(Then::Resume);
                let Some((banned, freed)) = self.quarantine.supervise(person, until, then) else {
                    warn!(person = %bounded(person), "supervised use asked for a person who is not banned");
                    continue;
                };
                self.save_quarantine();
                info!(person = %banned.username, by = %request.by, minutes, "supervised use");
                let after = match then {
                    Then::Resume => "then the ban resumes",
                    Then::End => "then the ban ends",
                };
                let mut e = Event::new(Kind::Released, now, Severity::Info);
                e.person = self.person_named(&banned.username);
                e.evidence = Some(bounded(&format!(
                    "supervised use of school ICT until {until} ({minutes} minutes; every name reached is recorded, a bypass attempt ends it), {after}; {why}"
                )));
                self.events.emit(e);
                // Where she is signed in now, every name is recorded from this moment.
                self.quarantine
                    .add_supervised_at(freed.iter().filter_map(|r| r.ip));
                self.free(policy, now, &who, freed, &why);
                continue;
            }
            if let Some(person) = &request.person
                && let (Some(lifted), released) = self.quarantine.release_person(person)
            {
                self.save_quarantine();
                info!(person = %lifted.username, by = %request.by, "ban lifted");
                let mut e = Event::new(Kind::Released, now, Severity::Info);
                e.person = self.person_named(&lifted.username);
                e.evidence = Some(bounded(&format!(
                    "ban from school ICT lifted ({} devices freed); {why}",
                    released.len()
                )));
                self.events.emit(e);
                self.free(policy, now, &who, released, &why);
                done = true;
            }
            let released = if request.device.is_empty() {
                Vec::new()
            } else {
                self.quarantine.release(&request.device)
            };
            if !released.is_empty() {
                self.save_quarantine();
                info!(device = %request.device, by = %request.by, "device released from quarantine");
                self.free(policy, now, &who, released, &why);
                done = true;
            }
            if !done {
                warn!(
                    device = %request.device,
                    person = %request.person.as_deref().map(bounded).unwrap_or_default(),
                    "release asked for a device or person that is not quarantined"
                );
            }
        }
    }

    /// Takes each of `released` out of the firewall's quarantine and records a `released`
    /// event for it, saying `why`.
    fn free(
        &self,
        policy: &Policy,
        now: Timestamp,
        who: &impl Fn(IpAddr) -> Who,
        released: Vec<Record>,
        why: &str,
    ) {
        for r in released {
            if let Some(fw) = &self.firewall
                && let Err(e) = fw.release(r.ip, r.mac)
            {
                warn!(error = %e, "cannot take the device out of the firewall's quarantine");
            }
            let mut e = Event::new(Kind::Released, now, Severity::Info);
            if let Some(ip) = r.ip {
                (e.device, e.group) = self.describe(policy, &who(ip), now);
            }
            e.device.mac = e.device.mac.or(r.mac);
            e.device.name = e.device.name.or(r.device);
            e.person = r.person.as_deref().and_then(|p| self.person_named(p));
            e.evidence = Some(bounded(why));
            self.events.emit(e);
        }
    }

    /// Makes the quarantine follow the banned people: a device held for someone who signed
    /// out (or whose session ended) is freed, so the next child on it is not punished; a
    /// device a banned person signs in to is quarantined, held for them. `signed_in` is
    /// every session's username and address.
    pub fn follow_bans(
        &self,
        policy: &Policy,
        now: Timestamp,
        signed_in: &[(String, IpAddr)],
        who: impl Fn(IpAddr) -> Who,
    ) {
        for (banned, then, freed) in self.quarantine.supervision_over(now) {
            self.save_quarantine();
            let u = &banned.username;
            let (kind, what) = match then {
                Then::Resume => (
                    Kind::Quarantined,
                    format!("supervised use is over: {u}'s ban from school ICT is in force again"),
                ),
                Then::End => (
                    Kind::Released,
                    format!("supervised use is over and {u}'s ban from school ICT has ended"),
                ),
            };
            info!(person = %u, "supervised use is over");
            let mut e = Event::new(kind, now, Severity::Info);
            e.person = self.person_named(u);
            e.evidence = Some(bounded(&what));
            self.events.emit(e);
            self.free(policy, now, &who, freed, &what);
        }
        let here = |p: &str, ip: IpAddr| {
            signed_in
                .iter()
                .any(|(u, at)| *at == ip && u.eq_ignore_ascii_case(p))
        };
        let left = self.quarantine.release_left(here);
        if !left.is_empty() {
            self.save_quarantine();
        }
        for r in left {
            let person = r.person.clone().unwrap_or_default();
            info!(person = %person, "a banned person signed out: the device is free");
            self.free(
                policy,
                now,
                &who,
                vec![r],
                &format!("{person} signed out: the device is free for the next person; {person} stays banned"),
            );
        }
        if self.quarantine.people().is_empty() {
            self.quarantine.set_supervised_at(Default::default());
            return;
        }
        let supervised = signed_in
            .iter()
            .filter(|(u, _)| self.quarantine.is_supervised(u, now))
            .map(|(_, ip)| ip.to_canonical())
            .collect();
        self.quarantine.set_supervised_at(supervised);
        for (username, ip) in signed_in {
            if !self.quarantine.is_banned(username) || self.quarantine.is_supervised(username, now)
            {
                continue;
            }
            let w = who(*ip);
            let held = self.quarantine.add_record(Record {
                ip: w.client.ip,
                mac: w.client.mac,
                device: None,
                since: now,
                technique: None,
                person: Some(username.clone()),
            });
            if !held {
                continue;
            }
            self.save_quarantine();
            if let Some(fw) = &self.firewall
                && let Err(e) = fw.quarantine(w.client.ip, w.client.mac)
            {
                warn!(error = %e, "cannot add the device to the firewall's quarantine");
            }
            info!(person = %username, client = %ip, "a banned person signed in: the device is quarantined");
            let mut q = Event::new(Kind::Quarantined, now, Severity::High);
            (q.device, q.group) = self.describe(policy, &w, now);
            q.person = self.person(policy, &w);
            q.evidence = Some(bounded(&format!(
                "{username} signed in while banned from school ICT: the device is confined to the quarantine_allow names while they are signed in"
            )));
            self.events.emit(q);
        }
    }
}

//! Devices and people in quarantine, as the resolver, the firewall and inspection see them:
//! after a bypass attempt from a group whose `bypass.response` is `quarantine`, a device
//! reaches only the gateway's DNS and the `quarantine_allow` names until staff release it.
//!
//! When someone was signed in at the device, the ban is theirs: the person is banned from
//! school ICT, and a device is held *for them* — the one they tried it on, and each they
//! sign in to next — only while they are signed in there, so the next child on that PC is
//! not punished. A device with no known person is held for itself, as before.
//!
//! The resolver asks on every query, so reading is one atomic load (and nothing more while no
//! device is quarantined); adding copies the set, which happens rarely.
//!
//! The list is kept in `quarantine.json` in the state directory (written whole, by rename),
//! so a quarantine outlives a restart or a reboot that empties the firewall. Releases arrive
//! as lines in `release-requests.jsonl` in the same directory (appended by `schoolgate-agent
//! release`); the daemon takes the file by renaming it and answers each line.

use std::collections::HashSet;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use schoolgate_engine::{Client, MacAddr};
use serde::{Deserialize, Serialize};

use schoolgate_contract::status::SUPERVISED_MAX_MINUTES;
use schoolgate_gateway::firewall::ruleset::Quarantined;

/// The quarantine list in the state directory.
pub const STATE_FILE: &str = "quarantine.json";
/// Where release requests are appended.
pub const REQUESTS_FILE: &str = "release-requests.jsonl";
/// The longest reason or name a release request may carry.
const MAX_TEXT: usize = 500;
/// The longest login a release request is recorded with (bytes, cut on a character).
const MAX_BY: usize = 64;

#[derive(Debug, Default)]
pub struct Quarantine {
    members: ArcSwap<Members>,
}

#[derive(Debug, Default, Clone)]
struct Members {
    ips: HashSet<IpAddr>,
    macs: HashSet<MacAddr>,
    records: Vec<Record>,
    people: Vec<Banned>,
    /// Addresses where a person in supervised use is signed in now.
    supervised: HashSet<IpAddr>,
}

impl Members {
    /// These members without the records `out` picks, and those records.
    fn taking(&self, out: impl Fn(&Record) -> bool) -> (Self, Vec<Record>) {
        let (gone, keep): (Vec<Record>, Vec<Record>) =
            self.records.iter().cloned().partition(|r| out(r));
        (self.with_records(keep), gone)
    }

    /// These members with `records` in place of theirs.
    fn with_records(&self, records: Vec<Record>) -> Self {
        Self {
            ips: records.iter().filter_map(|r| r.ip).collect(),
            macs: records.iter().filter_map(|r| r.mac).collect(),
            records,
            people: self.people.clone(),
            supervised: self.supervised.clone(),
        }
    }
}

/// What follows a period of supervised use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// The ban is in force again.
    Resume,
    /// The ban is lifted.
    End,
}

/// A period in which a banned person may use school ICT under close supervision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    pub until: Timestamp,
    pub then: Then,
}

/// A person banned from school ICT, as the state file keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banned {
    /// The username, as the directory spells it.
    pub username: String,
    pub since: Timestamp,
    /// What led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
    /// Supervised use in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised: Option<Supervision>,
}

/// One quarantined device, as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "mac_text")]
    pub mac: Option<MacAddr>,
    /// The device's name where known (the policy's device entry or its lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub since: Timestamp,
    /// What put it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
    /// The banned person it is held for, while they are signed in there; `None`: held for
    /// itself until released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

impl Record {
    /// Whether `device` (an address, a MAC or a name, as staff type it) names this record.
    pub fn named_by(&self, device: &str) -> bool {
        let device = device.trim();
        if let Ok(ip) = device.parse::<IpAddr>() {
            return self.ip == Some(ip.to_canonical());
        }
        if let Ok(mac) = device.parse::<MacAddr>() {
            return self.mac == Some(mac);
        }
        self.device
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(device))
    }
}

/// Whether `r` is held for `username`.
fn held_for(r: &Record, username: &str) -> bool {
    r.person
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(username))
}

/// A MAC as text (`52:54:00:aa:bb:cc`) in the state file.
mod mac_text {
    use schoolgate_engine::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<MacAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    devices: Vec<Record>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    people: Vec<Banned>,
}

/// A release asked for by staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The device: its address, MAC or name (empty when `person` is named).
    #[serde(default)]
    pub device: String,
    /// The person whose ban is lifted, with every device held for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// For a person: not lifted but eased into supervised use for this long (minutes)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_minutes: Option<u32>,
    /// ...and then the ban resumes or ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Then>,
    pub reason: String,
    /// Who asked (the login that ran the command, or the console user).
    pub by: String,
    pub time: Timestamp,
}

impl Quarantine {
    /// Whether `client` is quarantined, by its MAC or its address.
    pub fn contains(&self, client: &Client) -> bool {
        let m = self.members.load();
        if m.ips.is_empty() && m.macs.is_empty() {
            return false;
        }
        client.mac.is_some_and(|mac| m.macs.contains(&mac))
            || client
                .ip
                .is_some_and(|ip| m.ips.contains(&ip.to_canonical()))
    }

    /// Puts the device of `record` in quarantine. Returns false if it already was.
    pub fn add_record(&self, mut record: Record) -> bool {
        record.ip = record.ip.map(|ip| ip.to_canonical());
        let client = Client {
            ip: record.ip,
            mac: record.mac,
        };
        if self.contains(&client) || (record.ip.is_none() && record.mac.is_none()) {
            return false;
        }
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.ips.extend(record.ip);
            m.macs.extend(record.mac);
            m.records.push(record.clone());
            m
        });
        true
    }

    /// Bans `banned.username` from school ICT. Returns false if they already were.
    pub fn ban(&self, banned: Banned) -> bool {
        if self.is_banned(&banned.username) {
            return false;
        }
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.people.push(banned.clone());
            m
        });
        true
    }

    /// Whether `username` is banned (usernames match without case, as the directory's do).
    pub fn is_banned(&self, username: &str) -> bool {
        self.members
            .load()
            .people
            .iter()
            .any(|b| b.username.eq_ignore_ascii_case(username))
    }

    /// The people banned, oldest first.
    pub fn people(&self) -> Vec<Banned> {
        self.members.load().people.clone()
    }

    /// Lifts `username`'s ban and takes out every device held for them; returns the ban (if
    /// there was one) and the devices.
    pub fn release_person(&self, username: &str) -> (Option<Banned>, Vec<Record>) {
        let mut lifted = None;
        let mut gone = Vec::new();
        self.members.rcu(|m| {
            let (out, keep_people): (Vec<Banned>, Vec<Banned>) = m
                .people
                .iter()
                .cloned()
                .partition(|b| b.username.eq_ignore_ascii_case(username));
            lifted = out.into_iter().next();
            let (mut m, out) = m.taking(|r| held_for(r, username));
            gone = out;
            m.people = keep_people;
            m
        });
        (lifted, gone)
    }

    /// Eases `username`'s ban into supervised use until `until`, then `then`; the devices
    /// held for them are freed and returned. `None` if they are not banned.
    pub fn supervise(
        &self,
        username: &str,
        until: Timestamp,
        then: Then,
    ) -> Option<(Banned, Vec<Record>)> {
        if !self.is_banned(username) {
            return None;
        }
        let mut changed = None;
        let mut gone = Vec::new();
        self.members.rcu(|m| {
            let (mut m, out) = m.taking(|r| held_for(r, username));
            gone = out;
            for b in &mut m.people {
                if b.username.eq_ignore_ascii_case(username) {
                    b.supervised = Some(Supervision { until, then });
                    changed = Some(b.clone());
                }
            }
            m
        });
        changed.map(|b| (b, gone))
    }

    /// Whether `username` is in supervised use at `now`.
    pub fn is_supervised(&self, username: &str, now: Timestamp) -> bool {
        self.members.load().people.iter().any(|b| {
            b.username.eq_ignore_ascii_case(username)
                && b.supervised.as_ref().is_some_and(|s| now < s.until)
        })
    }

    /// Ends `username`'s supervised use at once (a bypass attempt while supervised): the
    /// ban is in force again. Whether they were supervised.
    pub fn end_supervision(&self, username: &str) -> bool {
        let mut ended = false;
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            ended = false;
            for b in &mut m.people {
                if b.username.eq_ignore_ascii_case(username) && b.supervised.take().is_some() {
                    ended = true;
                }
            }
            m
        });
        ended
    }

    /// Ends the periods of supervised use that are over at `now`: the ban resumes, or is
    /// lifted (with the devices held for them, which are returned). Returns each person
    /// with what followed.
    pub fn supervision_over(&self, now: Timestamp) -> Vec<(Banned, Then, Vec<Record>)> {
        let over = |b: &Banned| b.supervised.as_ref().is_some_and(|s| s.until <= now);
        if !self.members.load().people.iter().any(over) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.members.rcu(|m| {
            out.clear();
            let mut people = Vec::new();
            let mut records = m.records.clone();
            for b in &m.people {
                match &b.supervised {
                    Some(s) if s.until <= now => {
                        let (freed, keep): (Vec<Record>, Vec<Record>) = match s.then {
                            Then::End => {
                                records.into_iter().partition(|r| held_for(r, &b.username))
                            }
                            Then::Resume => (Vec::new(), records),
                        };
                        records = keep;
                        out.push((b.clone(), s.then, freed));
                        if s.then == Then::Resume {
                            people.push(Banned {
                                supervised: None,
                                ..b.clone()
                            });
                        }
                    }
                    _ => people.push(b.clone()),
                }
            }
            let mut m = m.with_records(records);
            m.people = people;
            m
        });
        out
    }

    /// Sets the addresses where people in supervised use are signed in now.
    pub fn set_supervised_at(&self, ips: HashSet<IpAddr>) {
        if self.members.load().supervised == ips {
            return;
        }
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.supervised = ips.clone();
            m
        });
    }

    /// Adds addresses to those where people in supervised use are signed in.
    pub fn add_supervised_at(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let ips: Vec<IpAddr> = ips.into_iter().map(|i| i.to_canonical()).collect();
        if ips.is_empty() {
            return;
        }
        self.members.rcu(|m| {
            let mut m = Members::clone(m);
            m.supervised.extend(ips.iter().copied());
            m
        });
    }

    /// Whether a person in supervised use is signed in at `ip`: one atomic load, and
    /// nothing more while no one is supervised.
    pub fn supervised_at(&self, ip: IpAddr) -> bool {
        let m = self.members.load();
        !m.supervised.is_empty() && m.supervised.contains(&ip.to_canonical())
    }

    /// Takes out the devices held for a person who is no longer signed in there:
    /// `signed_in(person, ip)` says whether they still are. Returns them.
    pub fn release_left(&self, signed_in: impl Fn(&str, IpAddr) -> bool) -> Vec<Record> {
        let left = |r: &Record| match (&r.person, r.ip) {
            (Some(p), Some(ip)) => !signed_in(p, ip),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !self.members.load().records.iter().any(left) {
            return Vec::new();
        }
        let mut gone = Vec::new();
        self.members.rcu(|m| {
            let (m, out) = m.taking(left);
            gone = out;
            m
        });
        gone
    }

    /// Adds every device in `list` (a table picked up from an earlier run) not held yet.
    pub fn extend(&self, list: &Quarantined, now: Timestamp) {
        for ip in &list.ips {
            self.add_record(Record {
                ip: Some(*ip),
                mac: None,
                device: None,
                since: now,
                technique: None,
                person: None,
            });
        }
        for mac in &list.macs {
            self.add_record(Record {
                ip: None,
                mac: Some(*mac),
                device: None,
                since: now,
                technique: None,
                person: None,
            });
        }
    }

    /// Takes out every record `device` names; returns them.
    pub fn release(&self, device: &str) -> Vec<Record> {
        let mut gone = Vec::new();
        self.members.rcu(|m| {
            let (m, out) = m.taking(|r| r.named_by(device));
            gone = out;
            m
        });
        gone
    }

    /// Everything quarantined, sorted.
    pub fn list(&self) -> Quarantined {
        let m = self.members.load();
        let mut ips: Vec<IpAddr> = m.ips.iter().copied().collect();
        let mut macs: Vec<MacAddr> = m.macs.iter().copied().collect();
        ips.sort();
        macs.sort();
        Quarantined { ips, macs }
    }

    /// The records, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.members.load().records.clone()
    }

    /// Writes the list to `dir/quarantine.json` (a new file renamed over the old one).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let state = StateFile {
            devices: self.records(),
            people: self.people(),
        };
        let text = serde_json::to_vec_pretty(&state).map_err(io::Error::from)?;
        let tmp = dir.join(format!("{STATE_FILE}.new"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(STATE_FILE))
    }

    /// Reads `dir/quarantine.json` into the list. A missing file is an empty list.
    pub fn load(&self, dir: &Path) -> Result<usize, StateError> {
        let state = read_state_file(dir)?;
        let n = state.devices.len();
        for r in state.devices {
            self.add_record(r);
        }
        for b in state.people {
            self.ban(b);
        }
        Ok(n)
    }
}

/// Why the state file cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The records in `dir/quarantine.json` (none if it does not exist).
pub fn read_state(dir: &Path) -> Result<Vec<Record>, StateError> {
    read_state_file(dir).map(|s| s.devices)
}

/// The people banned in `dir/quarantine.json` (none if it does not exist).
pub fn read_banned(dir: &Path) -> Result<Vec<Banned>, StateError> {
    read_state_file(dir).map(|s| s.people)
}

fn read_state_file(dir: &Path) -> Result<StateFile, StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateFile::default()),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    serde_json::from_slice::<StateFile>(&bytes).map_err(|source| StateError::Parse { path, source })
}

/// Appends a release request for the daemon (one line, written at once, so requests from
/// several commands never interleave).
pub fn request_release(dir: &Path, request: &Request) -> io::Result<()> {
    let mut bounded = request.clone();
    bounded.device = crate::report::events::bounded(&bounded.device);
    bounded.person = bounded
        .person
        .as_deref()
        .map(crate::report::events::bounded);
    bounded.reason = crate::report::events::bounded(&bounded.reason);
    let mut line = serde_json::to_vec(&bounded).map_err(io::Error::from)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(REQUESTS_FILE))?;
    f.write_all(&line)
}

/// Takes the pending release requests: the file is renamed first, so lines appended while
/// it is read go to a new file and are taken next time. Lines that do not parse are skipped
/// (and counted in the second value).
pub fn take_requests(dir: &Path) -> io::Result<(Vec<Request>, usize)> {
    let path = dir.join(REQUESTS_FILE);
    let taken = dir.join(format!("{REQUESTS_FILE}.taken"));
    match std::fs::rename(&path, &taken) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    }
    let text = std::fs::read_to_string(&taken)?;
    std::fs::remove_file(&taken)?;
    let mut bad = 0;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Request>(line) {
            Ok(mut r)
                if r.device.len() <= MAX_TEXT
                    && r.reason.len() <= MAX_TEXT
                    && r.person.as_ref().is_none_or(|p| p.len() <= MAX_TEXT)
                    && r.supervised_minutes
                        .is_none_or(|m| (1..=SUPERVISED_MAX_MINUTES).contains(&m)) =>
            {
                schoolgate_engine::text::cut_to_bytes(&mut r.by, MAX_BY);
                out.push(r)
            }
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client_record(client: Client) -> Record {
        Record {
            ip: client.ip,
            mac: client.mac,
            device: None,
            since: Timestamp::UNIX_EPOCH,
            technique: None,
            person: None,
        }
    }

    #[test]
    fn a_device_is_found_by_mac_or_address() {
        let q = Quarantine::default();
        let mac: MacAddr = "52:54:00:aa:00:10".parse().unwrap();
        let ip: IpAddr = "10.77.0.10".parse().unwrap();
        assert!(!q.contains(&Client::new(ip, Some(mac))));
        assert!(q.add_record(client_record(Client::new(ip, Some(mac)))));
        assert!(
            !q.add_record(client_record(Client::new(ip, None))),
            "already in"
        );
        // The same device with a new address, or its address seen without a MAC.
        assert!(q.contains(&Client::new("10.77.0.99".parse().unwrap(), Some(mac))));
        assert!(q.contains(&Client::new("::ffff:10.77.0.10".parse().unwrap(), None)));
        assert!(!q.contains(&Client::new("10.77.0.11".parse().unwrap(), None)));
        assert!(!q.add_record(client_record(Client::default())));
        assert_eq!(q.list().ips, vec![ip]);
        assert_eq!(q.list().macs, vec![mac]);
    }

    fn record(ip: &str, mac: &str, name: &str) -> Record {
        Record {
            ip: Some(ip.parse().unwrap()),
            mac: Some(mac.parse().unwrap()),
            device: Some(name.into()),
            since: "2026-11-24T10:00:00Z".parse().unwrap(),
            technique: Some("wireguard".into()),
            person: None,
        }
    }

    #[test]
    fn released_by_address_mac_or_name_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::default();
        q.add_record(record("10.77.0.10", "52:54:00:aa:00:10", "Y6-iPad-12"));
        q.add_record(record("10.77.0.11", "52:54:00:aa:00:11", "Y6-iPad-13"));
        q.add_record(record("10.77.0.12", "52:54:00:aa:00:12", "Y6-iPad-14"));
        q.save(dir.path()).unwrap();

        let again = Quarantine::default();
        assert_eq!(again.load(dir.path()).unwrap(), 3);
        assert_eq!(again.records(), q.records());
        assert_eq!(
            again.release("y6-ipad-12").len(),
            1,
            "names match without case"
        );
        assert_eq!(again.release("52:54:00:aa:00:11").len(), 1);
        assert_eq!(again.release("10.77.0.12").len(), 1);
        assert!(again.release("10.77.0.12").is_empty(), "already out");
        assert!(!again.contains(&Client::new("10.77.0.10".parse().unwrap(), None)));
        assert!(again.records().is_empty());
        assert_eq!(
            Quarantine::default()
                .load(&dir.path().join("none"))
                .unwrap(),
            0
        );
        std::fs::write(dir.path().join(STATE_FILE), "{").unwrap();
        assert!(matches!(
            Quarantine::default().load(dir.path()),
            Err(StateError::Parse { .. })
        ));
    }

    #[test]
    fn a_banned_persons_devices_are_held_while_they_are_there_and_freed_with_the_ban() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::default();
        let since: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        assert!(q.ban(Banned {
            username: "amira.k".into(),
            since,
            technique: Some("openvpn".into()),
            supervised: None,
        }));
        assert!(!q.ban(Banned {
            username: "Amira.K".into(),
            since,
            technique: None,
            supervised: None,
        }));
        assert!(q.is_banned("AMIRA.K"));
        let held = |ip: &str| Record {
            person: Some("amira.k".into()),
            ..record(ip, "52:54:00:aa:00:10", "ICT-03")
        };
        assert!(q.add_record(held("10.77.0.10")));
        // A device held for itself stays whoever signs in or out.
        q.add_record(record("10.77.0.30", "52:54:00:aa:00:30", "Y6-iPad-1"));
        q.save(dir.path()).unwrap();
        let again = Quarantine::default();
        again.load(dir.path()).unwrap();
        assert!(again.is_banned("amira.k"), "the ban outlives a restart");

        // Still signed in there: held.
        let at_ten = |p: &str, ip: IpAddr| p == "amira.k" && ip.to_string() == "10.77.0.10";
        assert!(again.release_left(at_ten).is_empty());
        // Signed out: the device is freed, the ban stays, the other device stays.
        let left = again.release_left(|_, _| false);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].person.as_deref(), Some("amira.k"));
        assert!(again.is_banned("amira.k"));
        assert!(again.contains(&Client::new("10.77.0.30".parse().unwrap(), None)));

        // Lifting the ban frees what is held for her, and nothing else.
        assert!(again.add_record(Record {
            person: Some("amira.k".into()),
            ..record("10.77.0.12", "52:54:00:aa:00:12", "ICT-04")
        }));
        let (lifted, freed) = again.release_person("Amira.K");
        assert_eq!(lifted.map(|b| b.technique), Some(Some("openvpn".into())));
        assert_eq!(freed.len(), 1);
        assert!(!again.is_banned("amira.k"));
        assert_eq!(again.records().len(), 1);
        assert_eq!(again.release_person("amira.k"), (None, vec![]));
    }

    #[test]
    fn supervised_use_frees_the_devices_then_the_ban_resumes_or_ends() {
        let q = Quarantine::default();
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        for who in ["amira.k", "ben.t"] {
            q.ban(Banned {
                username: who.into(),
                since: at("2026-11-24T10:00:00Z"),
                technique: None,
                supervised: None,
            });
            q.add_record(Record {
                person: Some(who.into()),
                ..record(
                    if who == "amira.k" {
                        "10.77.0.10"
                    } else {
                        "10.77.0.11"
                    },
                    if who == "amira.k" {
                        "52:54:00:aa:00:10"
                    } else {
                        "52:54:00:aa:00:11"
                    },
                    "PC",
                )
            });
        }
        assert!(
            q.supervise("nobody", at("2026-11-24T12:00:00Z"), Then::End)
                .is_none()
        );
        let (a, freed) = q
            .supervise("amira.k", at("2026-11-24T12:00:00Z"), Then::Resume)
            .unwrap();
        assert_eq!(a.username, "amira.k");
        assert_eq!(freed.len(), 1);
        let (_, freed) = q
            .supervise("ben.t", at("2026-11-24T11:00:00Z"), Then::End)
            .unwrap();
        assert_eq!(freed.len(), 1);
        assert!(q.records().is_empty());
        assert!(q.is_supervised("AMIRA.K", at("2026-11-24T11:59:59Z")));
        assert!(!q.is_supervised("amira.k", at("2026-11-24T12:00:00Z")));

        // Only what is over ends: Ben's at 11:00 (ban lifted), Amira's at 12:00 (ban back).
        assert!(q.supervision_over(at("2026-11-24T10:30:00Z")).is_empty());
        let over = q.supervision_over(at("2026-11-24T11:00:00Z"));
        assert_eq!(over.len(), 1);
        assert_eq!(
            (over[0].0.username.as_str(), over[0].1),
            ("ben.t", Then::End)
        );
        assert!(!q.is_banned("ben.t"));
        let over = q.supervision_over(at("2026-11-24T12:00:00Z"));
        assert_eq!(
            (over[0].0.username.as_str(), over[0].1),
            ("amira.k", Then::Resume)
        );
        assert!(q.is_banned("amira.k"));
        assert!(!q.is_supervised("amira.k", at("2026-11-24T11:00:00Z")));

        // A bypass attempt in supervised use ends it at once.
        q.supervise("amira.k", at("2026-11-24T15:00:00Z"), Then::End);
        assert!(q.end_supervision("amira.k"));
        assert!(!q.end_supervision("amira.k"));
        assert!(q.is_banned("amira.k"));

        // The addresses where supervised people are: one load to ask.
        let ip: IpAddr = "10.77.0.10".parse().unwrap();
        assert!(!q.supervised_at(ip));
        q.add_supervised_at([ip]);
        assert!(q.supervised_at("::ffff:10.77.0.10".parse().unwrap()));
        q.set_supervised_at(HashSet::new());
        assert!(!q.supervised_at(ip));
    }

    #[test]
    fn requests_are_taken_once_and_bad_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = Request {
            device: "10.77.0.10".into(),
            person: None,
            supervised_minutes: None,
            then: None,
            reason: "spoke with pupil".into(),
            by: "dsl".into(),
            time: "2026-11-24T10:00:00Z".parse().unwrap(),
        };
        request_release(dir.path(), &r).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(REQUESTS_FILE))
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        request_release(dir.path(), &r).unwrap();
        // Supervised use beyond a week (or of no time) is not a request the daemon takes.
        for minutes in [0, SUPERVISED_MAX_MINUTES + 1, u32::MAX] {
            let too_long = Request {
                person: Some("amira.k".into()),
                supervised_minutes: Some(minutes),
                ..r.clone()
            };
            request_release(dir.path(), &too_long).unwrap();
        }
        let (taken, bad) = take_requests(dir.path()).unwrap();
        assert_eq!((taken, bad), (vec![r.clone(), r.clone()], 4));
        assert_eq!(take_requests(dir.path()).unwrap(), (vec![], 0));

        // A long login of multi-byte characters is cut on a character, not mid-way.
        let long = Request {
            by: "é".repeat(40),
            ..r
        };
        request_release(dir.path(), &long).unwrap();
        let (taken, _) = take_requests(dir.path()).unwrap();
        assert_eq!(taken[0].by, "é".repeat(32));
    }
}

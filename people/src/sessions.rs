//! Who is signed in where: each address a person is signed in at, from RADIUS accounting
//! (Wi-Fi controllers, 802.1X switches) and sign-in scripts.
//!
//! One session per place: an address at school, or a school device away from school, named
//! by its off-site id (a laptop taken home signs in there through the public listener). A
//! sign-in at a place that holds another person's session ends that one ("address taken"):
//! the newest sign-in is who is at the keyboard. A sign-out
//! ends only the session it names (its person at its address), so a late `Stop` for the
//! previous pupil never signs out the next. Sessions also end when they go quiet for the idle
//! time, when the DHCP lease of their address moves to another MAC, and when the controller
//! that reported them restarts (`Accounting-On`/`Off`). The clock is passed in; the agent
//! keeps the sessions in its state directory so they survive a restart.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::person::Username;

/// The most sessions held; sign-ins past it are refused (a large school has a few thousand
/// devices).
pub const MAX_SESSIONS: usize = 100_000;
/// The longest source or session id kept, in bytes (cut on a character).
const MAX_LABEL: usize = 64;

/// Where a person is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// An address on the school's networks.
    Address(IpAddr),
    /// A school device away from school, by its off-site id: no address of it is kept.
    Device(String),
}

impl Place {
    /// The address, for a place at school.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Self::Address(a) => Some(*a),
            Self::Device(_) => None,
        }
    }

    fn canonical(self) -> Self {
        match self {
            Self::Address(a) => Self::Address(a.to_canonical()),
            device => device,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(a) => a.fmt(f),
            Self::Device(id) => write!(f, "device {id}"),
        }
    }
}

/// One person signed in at one place. Kept as JSON with `address` or `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Saved", into = "Saved")]
pub struct Session {
    pub username: Username,
    pub place: Place,
    /// The device's MAC, when the sign-in gave one.
    pub mac: Option<[u8; 6]>,
    /// What reported it: `radius NAS` or `sign-in SOURCE`.
    pub source: String,
    /// The reporter's own id for the session (`Acct-Session-Id`), if any.
    pub id: Option<String>,
    pub started: Timestamp,
    /// The last word from the reporter: a start, an interim update, a repeated logon.
    pub seen: Timestamp,
}

/// A session as the state directory keeps it (the form before sessions off site, with
/// `device` beside `address`).
#[derive(Serialize, Deserialize)]
struct Saved {
    username: Username,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<[u8; 6]>,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    started: Timestamp,
    seen: Timestamp,
}

/// Why a kept session was not read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SavedError {
    #[error("a kept session has neither an address nor a device, or both")]
    Place,
}

impl TryFrom<Saved> for Session {
    type Error = SavedError;

    fn try_from(s: Saved) -> Result<Self, SavedError> {
        let place = match (s.address, s.device) {
            (Some(a), None) => Place::Address(a),
            (None, Some(d)) => Place::Device(d),
            _ => return Err(SavedError::Place),
        };
        Ok(Self {
            username: s.username,
            place,
            mac: s.mac,
            source: s.source,
            id: s.id,
            started: s.started,
            seen: s.seen,
        })
    }
}

impl From<Session> for Saved {
    fn from(s: Session) -> Self {
        let (address, device) = match s.place {
            Place::Address(a) => (Some(a), None),
            Place::Device(d) => (None, Some(d)),
        };
        Self {
            username: s.username,
            address,
            device,
            mac: s.mac,
            source: s.source,
            id: s.id,
            started: s.started,
            seen: s.seen,
        }
    }
}

/// A sign-in, as a reporter says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub username: Username,
    /// Every address the device has (a Wi-Fi controller may give IPv4 and IPv6).
    pub addresses: Vec<IpAddr>,
    /// The school device's off-site id, when it signed in through the public listener.
    pub device: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub source: String,
    pub id: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// RADIUS `Stop` or a logoff.
    SignedOut,
    /// Nothing heard for the idle time.
    Idle,
    /// Someone else signed in at the address (or on the device).
    AddressTaken,
    /// The address's DHCP lease now belongs to another MAC.
    LeaseMoved,
    /// The controller that reported it restarted.
    ReporterRestarted,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedOut => "signed_out",
            Self::Idle => "idle",
            Self::AddressTaken => "address_taken",
            Self::LeaseMoved => "lease_moved",
            Self::ReporterRestarted => "reporter_restarted",
        }
    }
}

/// What a change to the sessions did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Started(Session),
    /// The session was there already: its last word is now.
    Renewed(Session),
    Ended(Session, Ended),
    /// Refused: [`MAX_SESSIONS`] are held.
    Full(Place),
}

/// Everyone signed in, by place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    by_place: HashMap<Place, Session>,
}

impl Sessions {
    /// The sessions kept from an earlier run, each place once (the latest seen wins).
    pub fn from_saved(saved: Vec<Session>) -> Self {
        let mut sessions = Self::default();
        for s in saved.into_iter().take(MAX_SESSIONS) {
            let place = s.place.clone().canonical();
            let newer = sessions
                .by_place
                .get(&place)
                .is_none_or(|old| old.seen < s.seen);
            if newer {
                sessions
                    .by_place
                    .insert(place.clone(), Session { place, ..s });
            }
        }
        sessions
    }

    /// Every session, for saving.
    pub fn all(&self) -> impl Iterator<Item = &Session> {
        self.by_place.values()
    }

    pub fn len(&self) -> usize {
        self.by_place.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_place.is_empty()
    }

    /// The session at `address`, if anyone is signed in there.
    pub fn at(&self, address: IpAddr) -> Option<&Session> {
        self.by_place.get(&Place::Address(address.to_canonical()))
    }

    /// The session on the device away from school whose off-site id is `device`.
    pub fn on_device(&self, device: &str) -> Option<&Session> {
        self.by_place.get(&Place::Device(device.to_owned()))
    }

    /// A sign-in (RADIUS `Start` or `Interim-Update`, a logon) at each of its addresses, and
    /// on its device when it names one.
    pub fn sign_in(&mut self, sign_in: SignIn, now: Timestamp) -> Vec<Change> {
        let mut changes = Vec::new();
        let places = sign_in
            .addresses
            .iter()
            .map(|a| Place::Address(a.to_canonical()))
            .chain(sign_in.device.iter().map(|d| Place::Device(label(d))));
        for place in places {
            let held = self.by_place.len();
            match self.by_place.get_mut(&place) {
                Some(s) if s.username == sign_in.username => {
                    s.seen = now;
                    if sign_in.mac.is_some() {
                        s.mac = sign_in.mac;
                    }
                    changes.push(Change::Renewed(s.clone()));
                    continue;
                }
                Some(_) => {
                    if let Some(old) = self.by_place.remove(&place) {
                        changes.push(Change::Ended(old, Ended::AddressTaken));
                    }
                }
                None if held >= MAX_SESSIONS => {
                    changes.push(Change::Full(place));
                    continue;
                }
                None => {}
            }
            let session = Session {
                username: sign_in.username.clone(),
                place: place.clone(),
                mac: sign_in.mac,
                source: label(&sign_in.source),
                id: sign_in.id.as_deref().map(label),
                started: now,
                seen: now,
            };
            self.by_place.insert(place, session.clone());
            changes.push(Change::Started(session));
        }
        changes
    }

    /// A sign-out (RADIUS `Stop`, a logoff): ends `username`'s sessions at `addresses`, or
    /// wherever they came from `source` when no address is given. Anyone else's session at
    /// those addresses stays.
    pub fn sign_out(
        &mut self,
        username: &Username,
        addresses: &[IpAddr],
        source: &str,
    ) -> Vec<Change> {
        let source = label(source);
        let ended: Vec<Place> = if addresses.is_empty() {
            self.by_place
                .values()
                .filter(|s| &s.username == username && s.source == source)
                .map(|s| s.place.clone())
                .collect()
        } else {
            addresses
                .iter()
                .map(|a| Place::Address(a.to_canonical()))
                .filter(|p| {
                    self.by_place
                        .get(p)
                        .is_some_and(|s| &s.username == username)
                })
                .collect()
        };
        self.end(ended, Ended::SignedOut)
    }

    /// A sign-out on the device away from school whose off-site id is `device`: ends
    /// `username`'s session there, not anyone else's.
    pub fn sign_out_device(&mut self, username: &Username, device: &str) -> Vec<Change> {
        let place = Place::Device(label(device));
        let theirs = self
            .by_place
            .get(&place)
            .is_some_and(|s| &s.username == username);
        if !theirs {
            return Vec::new();
        }
        self.end(vec![place], Ended::SignedOut)
    }

    /// The reporter `source` restarted (`Accounting-On`/`Off`): every session it reported ends.
    pub fn reporter_restarted(&mut self, source: &str) -> Vec<Change> {
        let source = label(source);
        let ended = self
            .by_place
            .values()
            .filter(|s| s.source == source)
            .map(|s| s.place.clone())
            .collect();
        self.end(ended, Ended::ReporterRestarted)
    }

    /// Sessions not heard from for `idle`, ended.
    pub fn expire(&mut self, now: Timestamp, idle: SignedDuration) -> Vec<Change> {
        let ended = self
            .by_place
            .values()
            .filter(|s| now.duration_since(s.seen) >= idle)
            .map(|s| s.place.clone())
            .collect();
        self.end(ended, Ended::Idle)
    }

    /// The DHCP lease of `address` belongs to `mac`: a session there that was signed in
    /// from another MAC ended (the device left and another has its address).
    pub fn lease(&mut self, address: IpAddr, mac: [u8; 6]) -> Option<Change> {
        let place = Place::Address(address.to_canonical());
        let moved = self
            .by_place
            .get(&place)
            .is_some_and(|s| s.mac.is_some_and(|m| m != mac));
        if !moved {
            return None;
        }
        self.by_place
            .remove(&place)
            .map(|s| Change::Ended(s, Ended::LeaseMoved))
    }

    fn end(&mut self, places: Vec<Place>, why: Ended) -> Vec<Change> {
        places
            .into_iter()
            .filter_map(|p| self.by_place.remove(&p))
            .map(|s| Change::Ended(s, why))
            .collect()
    }
}

/// `text` cut to [`MAX_LABEL`] bytes on a character boundary, control characters dropped.
fn label(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_LABEL {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_796_000_000 + minutes * 60).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn user(name: &str) -> Username {
        Username::new(name).unwrap()
    }

    fn sign_in(name: &str, address: &str, mac: Option<u8>) -> SignIn {
        SignIn {
            username: user(name),
            addresses: vec![ip(address)],
            device: None,
            mac: mac.map(|m| [2, 0, 0, 0, 0, m]),
            source: "radius wlc1".into(),
            id: Some("S1".into()),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Started(s) => format!("started {} {}", s.username, s.place),
                Change::Renewed(s) => format!("renewed {} {}", s.username, s.place),
                Change::Ended(s, why) => {
                    format!("ended {} {} {}", s.username, s.place, why.as_str())
                }
                Change::Full(a) => format!("full {a}"),
            })
            .collect()
    }

    #[test]
    fn one_shared_pc_signed_in_to_by_one_pupil_after_another() {
        let mut s = Sessions::default();
        let pc = "10.10.4.21";
        assert_eq!(
            kinds(&s.sign_in(sign_in("amira.k", pc, Some(1)), t(0))),
            ["started amira.k 10.10.4.21"]
        );
        assert_eq!(s.at(ip(pc)).unwrap().username.as_str(), "amira.k");
        // An interim update.
        assert_eq!(
            kinds(&s.sign_in(sign_in("amira.k", pc, Some(1)), t(10))),
            ["renewed amira.k 10.10.4.21"]
        );
        assert_eq!(s.at(ip(pc)).unwrap().started, t(0));
        // Ben signs in before Amira's Stop arrives: he is at the keyboard.
        assert_eq!(
            kinds(&s.sign_in(sign_in("ben.t", pc, Some(1)), t(20))),
            [
                "ended amira.k 10.10.4.21 address_taken",
                "started ben.t 10.10.4.21"
            ]
        );
        // Amira's late Stop does not sign Ben out.
        assert!(
            s.sign_out(&user("amira.k"), &[ip(pc)], "radius wlc1")
                .is_empty()
        );
        assert_eq!(s.at(ip(pc)).unwrap().username.as_str(), "ben.t");
        assert_eq!(
            kinds(&s.sign_out(&user("ben.t"), &[ip(pc)], "radius wlc1")),
            ["ended ben.t 10.10.4.21 signed_out"]
        );
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_end_when_idle_when_the_lease_moves_and_when_the_reporter_restarts() {
        let mut s = Sessions::default();
        s.sign_in(sign_in("amira.k", "10.0.0.1", Some(1)), t(0));
        s.sign_in(sign_in("ben.t", "10.0.0.2", Some(2)), t(30));
        s.sign_in(sign_in("cara.m", "10.0.0.3", None), t(30));
        let idle = SignedDuration::from_mins(60);
        assert!(s.expire(t(59), idle).is_empty());
        assert_eq!(
            kinds(&s.expire(t(60), idle)),
            ["ended amira.k 10.0.0.1 idle"]
        );
        // Ben's address is leased to the same MAC: nothing; to another: ended.
        assert!(s.lease(ip("10.0.0.2"), [2, 0, 0, 0, 0, 2]).is_none());
        assert_eq!(
            kinds(&[s.lease(ip("10.0.0.2"), [2, 0, 0, 0, 0, 9]).unwrap()]),
            ["ended ben.t 10.0.0.2 lease_moved"]
        );
        // A sign-in without a MAC is not ended by a lease.
        assert!(s.lease(ip("10.0.0.3"), [2, 0, 0, 0, 0, 9]).is_none());
        s.sign_in(
            SignIn {
                source: "radius switch2".into(),
                ..sign_in("dan.d", "10.0.0.4", None)
            },
            t(31),
        );
        assert_eq!(
            kinds(&s.reporter_restarted("radius wlc1")),
            ["ended cara.m 10.0.0.3 reporter_restarted"]
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_device_with_two_addresses_and_a_stop_without_one() {
        let mut s = Sessions::default();
        let both = SignIn {
            addresses: vec![ip("10.0.0.1"), ip("2001:db8::1"), ip("::ffff:10.0.0.1")],
            ..sign_in("amira.k", "10.0.0.1", None)
        };
        let changes = kinds(&s.sign_in(both, t(0)));
        assert_eq!(
            changes,
            [
                "started amira.k 10.0.0.1",
                "started amira.k 2001:db8::1",
                "renewed amira.k 10.0.0.1"
            ]
        );
        assert!(s.at(ip("::ffff:10.0.0.1")).is_some());
        assert_eq!(s.sign_out(&user("amira.k"), &[], "radius wlc1").len(), 2);
        assert!(s.is_empty());
    }

    #[test]
    fn saved_sessions_come_back_each_address_once() {
        let mut s = Sessions::default();
        s.sign_in(sign_in("amira.k", "10.0.0.1", Some(1)), t(0));
        let mut saved: Vec<Session> = s.all().cloned().collect();
        let json = serde_json::to_string(&saved).unwrap();
        let mut older = saved[0].clone();
        older.username = user("old");
        older.seen = t(-5);
        saved.push(older);
        let back = Sessions::from_saved(saved);
        assert_eq!(back.len(), 1);
        assert_eq!(
            back.at(ip("10.0.0.1")).unwrap().username.as_str(),
            "amira.k"
        );
        let parsed: Vec<Session> = serde_json::from_str(&json).unwrap();
        assert_eq!(Sessions::from_saved(parsed), s);
        // A username that cannot be one is refused when read back.
        let bad = json.replace("amira.k", "two words");
        assert!(serde_json::from_str::<Vec<Session>>(&bad).is_err());
    }

    #[test]
    fn labels_are_bounded_on_characters() {
        let long = format!("radius {}\u{7}", "é".repeat(100));
        let mut s = Sessions::default();
        s.sign_in(
            SignIn {
                source: long,
                ..sign_in("a", "10.0.0.1", None)
            },
            t(0),
        );
        let source = &s.at(ip("10.0.0.1")).unwrap().source;
        assert!(source.len() <= MAX_LABEL && source.starts_with("radius é"));
        assert!(!source.contains('\u{7}'));
    }

    #[test]
    fn a_device_away_from_school_is_a_place_of_its_own() {
        let mut s = Sessions::default();
        let home = |name: &str| SignIn {
            addresses: Vec::new(),
            device: Some("ictsuite01".into()),
            source: "sign-in laptops".into(),
            ..sign_in(name, "10.0.0.1", None)
        };
        assert_eq!(
            kinds(&s.sign_in(home("amira.k"), t(0))),
            ["started amira.k device ictsuite01"]
        );
        assert!(s.at(ip("10.0.0.1")).is_none());
        assert_eq!(
            s.on_device("ictsuite01").unwrap().username.as_str(),
            "amira.k"
        );
        assert_eq!(
            kinds(&s.sign_in(home("ben.t"), t(5))),
            [
                "ended amira.k device ictsuite01 address_taken",
                "started ben.t device ictsuite01"
            ]
        );
        // Amira's late logoff leaves Ben; his own ends his.
        assert!(s.sign_out_device(&user("amira.k"), "ictsuite01").is_empty());
        // At school the same laptop's address is a place apart.
        s.sign_in(sign_in("ben.t", "10.0.0.1", None), t(6));
        assert_eq!(s.len(), 2);
        // Kept and read back, each in its place; a kept session must have exactly one.
        let saved: Vec<Session> = s.all().cloned().collect();
        let json = serde_json::to_string(&saved).unwrap();
        let back: Vec<Session> = serde_json::from_str(&json).unwrap();
        assert_eq!(Sessions::from_saved(back), s);
        let both = json.replacen(
            "\"device\":\"ictsuite01\"",
            "\"device\":\"ictsuite01\",\"address\":\"10.0.0.9\"",
            1,
        );
        assert_ne!(both, json);
        assert!(serde_json::from_str::<Vec<Session>>(&both).is_err());
        assert_eq!(
            kinds(&s.sign_out_device(&user("ben.t"), "ictsuite01")),
            ["ended ben.t device ictsuite01 signed_out"]
        );
        assert_eq!(s.expire(t(100), SignedDuration::from_mins(60)).len(), 1);
        assert!(s.is_empty());
    }
}

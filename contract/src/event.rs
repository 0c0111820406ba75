//! What an agent reports: one event, its kind and severity, and the device it is about.
//!
//! Names and addresses in an event come from pupils' devices; they are bounded where the
//! event is made and again where it is read (see [`crate::text`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use jiff::Timestamp;
use schoolgate_engine::MacAddr;
use serde::Serialize;
use uuid::Uuid;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A device asked for a name a rule blocks for it.
    Blocked,
    /// A device of a group with `report_presence` was seen while that schedule is in force.
    Presence,
    /// A device tried to get round the filter ([`Technique`] says how).
    BypassAttempt,
    /// A device was put in quarantine.
    Quarantined,
    /// Staff took a device out of quarantine (who and why in the evidence).
    Released,
    PolicyReloaded,
    PolicyRejected,
    AgentStarted,
    AgentStopped,
    /// The journal reached its bound and its oldest unsent events were deleted (`count`).
    EventsDropped,
    /// Damaged bytes in the journal were skipped (where and how many in the evidence).
    JournalDamaged,
    /// The directory of people was read (how many in `count`).
    DirectoryLoaded,
    /// The directory could not be read (why, with lines and columns, in the evidence); the
    /// last good directory stays.
    DirectoryRejected,
    /// A person in supervised use of school ICT reached a name (each name once per window,
    /// repeats counted).
    Supervised,
    /// A list feed was fetched and checked (its address in the evidence, its entries in
    /// `count`).
    FeedLoaded,
    /// A list feed could not be fetched or was refused (why in the evidence); its last good
    /// copy stays.
    FeedRejected,
}

pub use schoolgate_engine::Technique;

/// A kind the contract does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known kind")]
pub struct UnknownKind(pub String);

impl Kind {
    /// Every kind, in the order above.
    pub const ALL: [Self; 16] = [
        Self::Blocked,
        Self::Presence,
        Self::BypassAttempt,
        Self::Quarantined,
        Self::Released,
        Self::PolicyReloaded,
        Self::PolicyRejected,
        Self::AgentStarted,
        Self::AgentStopped,
        Self::EventsDropped,
        Self::JournalDamaged,
        Self::DirectoryLoaded,
        Self::DirectoryRejected,
        Self::Supervised,
        Self::FeedLoaded,
        Self::FeedRejected,
    ];

    /// The kind's name on the wire and in the console's store (`bypass_attempt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Presence => "presence",
            Self::BypassAttempt => "bypass_attempt",
            Self::Quarantined => "quarantined",
            Self::Released => "released",
            Self::PolicyReloaded => "policy_reloaded",
            Self::PolicyRejected => "policy_rejected",
            Self::AgentStarted => "agent_started",
            Self::AgentStopped => "agent_stopped",
            Self::EventsDropped => "events_dropped",
            Self::JournalDamaged => "journal_damaged",
            Self::DirectoryLoaded => "directory_loaded",
            Self::DirectoryRejected => "directory_rejected",
            Self::Supervised => "supervised",
            Self::FeedLoaded => "feed_loaded",
            Self::FeedRejected => "feed_rejected",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(crate::text::bounded_to(s, 64)))
    }
}

/// How urgent the event is for the safeguarding lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

/// A severity the contract does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of info, low, medium, high")]
pub struct UnknownSeverity(pub String);

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Self; 4] = [Self::Info, Self::Low, Self::Medium, Self::High];

    /// The severity's name on the wire and in the console's store (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownSeverity(crate::text::bounded_to(s, 64)))
    }
}

/// The device an event is about: the DfE minimum (device name or ID, IP, MAC where known,
/// the individual where the school records one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct DeviceInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "mac_text")]
    pub mac: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The device was away from school, asking the school's DNS over HTTPS or TLS by its
    /// off-site id (added in 0.3: absent means at school). It then has no address: where a
    /// pupil's home is, is not the school's to keep.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub off_site: bool,
}

fn mac_text<S: serde::Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
    match mac {
        Some(m) => s.collect_str(m),
        None => s.serialize_none(),
    }
}

/// The person signed in on the device, where one is known: who the DSL reads first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PersonInfo {
    /// As the school's directory spells it.
    pub username: String,
    /// The name staff see ("Amira Khan").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The policy group the person is in (`pupils`, `staff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A pupil's class ("6B").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// One event. `time` is when it was first seen; an aggregated event also says how many times
/// (`count`) and when last (`last`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(serialize_with = "time_text")]
    pub time: Timestamp,
    pub kind: Kind,
    pub device: DeviceInfo,
    /// Who was signed in on the device (added in 0.2: an older agent's events have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The name asked for or seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The policy category the name is in, when a category decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// For a bypass attempt: how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<Technique>,
    /// Where the device was trying to reach (address and port), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    pub severity: Severity,
    pub count: u32,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_time_text"
    )]
    pub last: Option<Timestamp>,
}

fn time_text<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn opt_time_text<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time_text(t, s),
        None => s.serialize_none(),
    }
}

impl Event {
    /// A new event of `kind` at `time`, seen once. The id is a UUIDv7 from `time`, so ids sort
    /// in time order.
    pub fn new(kind: Kind, time: Timestamp, severity: Severity) -> Self {
        Self {
            id: uuid_v7(time),
            time,
            kind,
            device: DeviceInfo::default(),
            person: None,
            group: None,
            name: None,
            rule: None,
            category: None,
            technique: None,
            destination: None,
            evidence: None,
            severity,
            count: 1,
            last: None,
        }
    }

    /// Whether the console lists it as an alert: bypass attempts, quarantines, and
    /// anything of high severity.
    pub fn is_alert(&self) -> bool {
        matches!(self.kind, Kind::BypassAttempt | Kind::Quarantined)
            || self.severity == Severity::High
    }
}

/// A UUIDv7 for `time`: 48 bits of milliseconds, then random bits.
pub fn uuid_v7(time: Timestamp) -> Uuid {
    let ms = u64::try_from(time.as_millisecond()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix_time(ms / 1000, ((ms % 1000) * 1_000_000) as u32, 0, 0);
    Uuid::new_v7(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_the_wire_contract() {
        let t: Timestamp = "2026-11-24T10:02:03.123Z".parse().unwrap();
        let mut e = Event::new(Kind::Blocked, t, Severity::Low);
        e.device.ip = Some("10.10.3.7".parse().unwrap());
        e.device.mac = Some("52:54:00:AA:BB:CC".parse().unwrap());
        e.name = Some("instagram.com".into());
        e.count = 3;
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["time"], "2026-11-24T10:02:03.123Z");
        assert_eq!(v["kind"], "blocked");
        assert_eq!(v["device"]["mac"], "52:54:00:aa:bb:cc");
        assert_eq!(v["device"]["ip"], "10.10.3.7");
        assert_eq!(v["count"], 3);
        assert!(v.get("rule").is_none());
        let id = e.id.to_string();
        assert_eq!(id.as_bytes()[14], b'7', "version 7 uuid: {id}");
        // Time-ordered: the first 48 bits are the milliseconds.
        assert_eq!(
            u64::from_str_radix(&id.replace('-', "")[..12], 16).unwrap(),
            t.as_millisecond() as u64
        );
    }

    #[test]
    fn names_are_those_serde_writes_and_read_back() {
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        for s in Severity::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        assert_eq!(
            "party".parse::<Kind>().unwrap_err().to_string(),
            "`party` is not a known kind"
        );
    }
}

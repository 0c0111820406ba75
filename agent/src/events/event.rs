//! What the agent reports: one event, in the shape the console's wire contract expects.
//!
//! Names and addresses in an event come from pupils' devices; they are bounded here (see
//! [`bounded`]) and escaped wherever they are shown.

use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::MacAddr;
use serde::Serialize;
use uuid::Uuid;

/// The longest name or evidence string an event carries, in bytes.
pub const MAX_TEXT: usize = 253;

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
}

pub use schoolgate_engine::Technique;

/// How urgent the event is for the safeguarding lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
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
}

fn mac_text<S: serde::Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
    match mac {
        Some(m) => s.collect_str(m),
        None => s.serialize_none(),
    }
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
}

/// A UUIDv7 for `time`: 48 bits of milliseconds, then random bits.
pub(super) fn uuid_v7(time: Timestamp) -> Uuid {
    let ms = u64::try_from(time.as_millisecond()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix_time(ms / 1000, ((ms % 1000) * 1_000_000) as u32, 0, 0);
    Uuid::new_v7(ts)
}

/// `text` cut to at most [`MAX_TEXT`] bytes on a character boundary, with control characters
/// replaced, so that nothing a device sends can grow a log line or break one.
pub fn bounded(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for c in text.chars() {
        let c = if c.is_control() { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
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
    fn bounded_cuts_and_cleans() {
        assert_eq!(bounded("a\nb"), "a\u{fffd}b");
        let long = "é".repeat(300);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT && cut.chars().all(|c| c == 'é'));
    }
}

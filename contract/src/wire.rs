//! The batch an agent sends, and the console's validating read of it: JSON in, [`Event`]s
//! and typed refusals out.
//!
//! Agents `POST /api/v1/events` with `{"agent": "gw1", "status": {…}, "events": [EVENT, …]}`
//! ([`batch_body`] writes it). Every text in an event came from a pupil's device or passed
//! through one, so each is bounded and cleaned here ([`crate::text`]) before it is stored.
//! Fields the console does not know are kept (as JSON) rather than refused, so a newer agent
//! can talk to an older console; a technique this build does not know is kept the same way.
//! An invalid event is refused with its reason; the rest of the batch is still taken.

use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::{MacAddr, Technique};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{DeviceInfo, Event, Kind, PersonInfo, Severity};
use crate::text::{
    MAX_BATCH, MAX_COUNT, MAX_EVIDENCE, MAX_NAME, MAX_SKEW_MS, MAX_TECHNIQUE, bounded_to,
};

/// One valid event as the console received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub event: Event,
    /// Fields this build does not know (a newer agent's), as a JSON object's text.
    pub extra: Option<String>,
    /// The time the agent gave, when [`Received::at`] moved the event's time from it.
    pub agent_time: Option<Timestamp>,
}

/// A received event reads as its event: `received.kind`, `received.device.ip`.
impl std::ops::Deref for Received {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

impl std::ops::DerefMut for Received {
    fn deref_mut(&mut self) -> &mut Event {
        &mut self.event
    }
}

impl Received {
    /// This event as received at `now`: a time (or last time) more than [`MAX_SKEW_MS`]
    /// ahead becomes `now`, the agent's own kept in `agent_time`. Earlier times stand: an
    /// agent sends what it journaled while the console was away.
    pub fn at(mut self, now: Timestamp) -> Self {
        let latest = now.as_millisecond().saturating_add(MAX_SKEW_MS);
        if self.event.time.as_millisecond() > latest {
            self.agent_time = Some(self.event.time);
            self.event.time = now;
        }
        if self.event.last.is_some_and(|l| l.as_millisecond() > latest) {
            self.event.last = Some(now);
        }
        self
    }
}

/// Why one event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("an event must be a JSON object")]
    NotObject,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("`{field}` {value:?} is not {expected}")]
    Invalid {
        field: &'static str,
        /// The value sent, bounded.
        value: String,
        expected: &'static str,
    },
    #[error("`count` {0} must be a whole number from 1 to {MAX_COUNT}")]
    Count(serde_json::Number),
}

/// An event refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Its position in the batch.
    pub index: usize,
    /// Its id, where one could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(serialize_with = "as_text")]
    pub reason: Refused,
}

fn as_text<S: serde::Serializer>(r: &Refused, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(r)
}

/// A batch as the agent sent it.
#[derive(Debug)]
pub struct Batch {
    pub agent: String,
    pub events: Vec<Received>,
    pub refused: Vec<Refusal>,
    /// What the agent says of itself ([`crate::status::AgentStatus`] and perhaps more), if
    /// anything.
    pub status: Option<Value>,
}

/// Why a whole batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("the body is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the body must be an object with `agent` (text) and `events` (a list)")]
    Shape,
    #[error("a batch holds at most {MAX_BATCH} events; this one has {0}")]
    TooLarge(usize),
}

/// A batch's body, with the events already serialised (the journal's records, spliced in
/// as they are).
pub fn batch_body<'a>(
    agent: &str,
    status: &crate::status::AgentStatus,
    events: impl Iterator<Item = &'a [u8]> + Clone,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.clone().map(|e| e.len() + 1).sum::<usize>() + 512);
    out.extend_from_slice(b"{\"agent\":");
    out.extend_from_slice(
        serde_json::to_string(agent)
            .unwrap_or_else(|_| "\"\"".into())
            .as_bytes(),
    );
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(
        serde_json::to_string(status)
            .unwrap_or_else(|_| "{}".into())
            .as_bytes(),
    );
    out.extend_from_slice(b",\"events\":[");
    for (i, payload) in events.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(payload);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Reads a batch body.
pub fn parse_batch(body: &[u8]) -> Result<Batch, BatchError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| BatchError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(mut top) = value else {
        return Err(BatchError::Shape);
    };
    let Some(Value::String(agent)) = top.remove("agent") else {
        return Err(BatchError::Shape);
    };
    let Some(Value::Array(list)) = top.remove("events") else {
        return Err(BatchError::Shape);
    };
    if list.len() > MAX_BATCH {
        return Err(BatchError::TooLarge(list.len()));
    }
    let mut events = Vec::with_capacity(list.len());
    let mut refused = Vec::new();
    for (index, v) in list.into_iter().enumerate() {
        match parse_event(v) {
            Ok(e) => events.push(e),
            Err((id, reason)) => refused.push(Refusal { index, id, reason }),
        }
    }
    Ok(Batch {
        agent: bounded_to(&agent, MAX_NAME),
        events,
        refused,
        status: top.remove("status"),
    })
}

fn invalid(field: &'static str, value: &str, expected: &'static str) -> Refused {
    Refused::Invalid {
        field,
        value: bounded_to(value, 64),
        expected,
    }
}

fn time_field(
    m: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<Timestamp>, Refused> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|_| invalid(field, &s, "an RFC 3339 time")),
        Some(_) => Err(Refused::WrongType {
            field,
            expected: "an RFC 3339 time",
        }),
    }
}

fn text(
    m: &mut Map<String, Value>,
    field: &'static str,
    key: &str,
    max: usize,
) -> Result<Option<String>, Refused> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(bounded_to(&s, max))),
        Some(_) => Err(Refused::WrongType {
            field,
            expected: "text",
        }),
    }
}

/// One event, or its id (if readable) and why it is refused.
pub fn parse_event(v: Value) -> Result<Received, (Option<String>, Refused)> {
    let Value::Object(mut m) = v else {
        return Err((None, Refused::NotObject));
    };
    let id_text = m
        .get("id")
        .and_then(Value::as_str)
        .map(|s| bounded_to(s, 64));
    read_event(&mut m).map_err(|r| (id_text, r))
}

fn read_event(m: &mut Map<String, Value>) -> Result<Received, Refused> {
    let id = match m.remove("id") {
        Some(Value::String(s)) => Uuid::parse_str(&s)
            .ok()
            .filter(|u| u.get_version_num() == 7)
            .ok_or_else(|| invalid("id", &s, "a UUIDv7"))?,
        _ => return Err(Refused::Missing("id")),
    };
    let time = time_field(m, "time")?.ok_or(Refused::Missing("time"))?;
    let kind = match m.remove("kind") {
        Some(Value::String(s)) => s
            .parse::<Kind>()
            .map_err(|_| invalid("kind", &s, "a known kind"))?,
        _ => return Err(Refused::Missing("kind")),
    };
    let severity = match m.remove("severity") {
        Some(Value::String(s)) => s
            .parse::<Severity>()
            .map_err(|_| invalid("severity", &s, "one of info, low, medium, high"))?,
        None => Severity::Info,
        Some(_) => {
            return Err(Refused::WrongType {
                field: "severity",
                expected: "text",
            });
        }
    };
    let device = match m.remove("device") {
        Some(Value::Object(mut d)) => device(&mut d)?,
        None | Some(Value::Null) => DeviceInfo::default(),
        Some(_) => {
            return Err(Refused::WrongType {
                field: "device",
                expected: "an object",
            });
        }
    };
    let person = match m.remove("person") {
        Some(Value::Object(mut p)) => Some(person(&mut p)?),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(Refused::WrongType {
                field: "person",
                expected: "an object",
            });
        }
    };
    let count = match m.remove("count") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or(Refused::Count(n))?,
        Some(_) => {
            return Err(Refused::WrongType {
                field: "count",
                expected: "a number",
            });
        }
    };
    let last = time_field(m, "last")?;
    let group = text(m, "group", "group", MAX_NAME)?;
    let name = text(m, "name", "name", MAX_NAME)?;
    let rule = text(m, "rule", "rule", MAX_NAME)?;
    let category = text(m, "category", "category", MAX_NAME)?;
    // A technique this build does not know stays with the other unknown fields.
    let technique = match m.remove("technique") {
        Some(Value::String(s)) => match Technique::from_name(&s) {
            Some(t) => Some(t),
            None => {
                m.insert(
                    "technique".into(),
                    Value::String(bounded_to(&s, MAX_TECHNIQUE)),
                );
                None
            }
        },
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(Refused::WrongType {
                field: "technique",
                expected: "text",
            });
        }
    };
    let destination = text(m, "destination", "destination", MAX_NAME)?;
    let evidence = text(m, "evidence", "evidence", MAX_EVIDENCE)?;
    let extra = (!m.is_empty()).then(|| Value::Object(std::mem::take(m)).to_string());
    Ok(Received {
        event: Event {
            id,
            time,
            kind,
            device,
            person,
            group,
            name,
            rule,
            category,
            technique,
            destination,
            evidence,
            severity,
            count,
            last,
        },
        extra,
        agent_time: None,
    })
}

fn device(d: &mut Map<String, Value>) -> Result<DeviceInfo, Refused> {
    let ip = match text(d, "device.ip", "ip", MAX_NAME)? {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| invalid("device.ip", &s, "an IP address"))?,
        ),
        None => None,
    };
    let mac = match text(d, "device.mac", "mac", MAX_NAME)? {
        Some(s) => Some(
            strict_mac(&s)
                .ok_or_else(|| invalid("device.mac", &s.to_ascii_lowercase(), "a MAC address"))?,
        ),
        None => None,
    };
    Ok(DeviceInfo {
        ip,
        mac,
        name: text(d, "device.name", "name", MAX_NAME)?,
        owner: text(d, "device.owner", "owner", MAX_NAME)?,
        off_site: flag(d, "device.off_site", "off_site")?,
    })
}

fn flag(m: &mut Map<String, Value>, field: &'static str, key: &str) -> Result<bool, Refused> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(Refused::WrongType {
            field,
            expected: "true or false",
        }),
    }
}

fn person(p: &mut Map<String, Value>) -> Result<PersonInfo, Refused> {
    let username = text(p, "person.username", "username", MAX_NAME)?
        .ok_or(Refused::Missing("person.username"))?;
    Ok(PersonInfo {
        username,
        display_name: text(p, "person.display_name", "display_name", MAX_NAME)?,
        group: text(p, "person.group", "group", MAX_NAME)?,
        class: text(p, "person.class", "class", MAX_NAME)?,
    })
}

/// A MAC address as agents write it: six pairs of hex digits joined by colons, any case.
fn strict_mac(s: &str) -> Option<MacAddr> {
    let ok = s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";

    fn example() -> Value {
        serde_json::json!({
            "id": ID, "time": "2026-11-24T10:02:03.123Z", "kind": "bypass_attempt",
            "device": {"ip": "10.10.3.7", "mac": "52:54:00:AA:BB:CC", "name": "Y6-iPad-12", "owner": "6B"},
            "group": "pupils", "name": "cloudflare-dns.com", "rule": null, "technique": "dns_over_https",
            "evidence": "TLS SNI cloudflare-dns.com, ALPN h2, to 1.1.1.1:443", "severity": "high", "count": 3,
            "future_field": {"x": 1}
        })
    }

    #[test]
    fn the_contracts_example_is_taken_whole() {
        let r = parse_event(example()).unwrap();
        let e = &r.event;
        assert_eq!(e.id.to_string(), ID);
        assert_eq!(e.time.as_millisecond(), 1_795_514_523_123);
        assert_eq!(e.kind, Kind::BypassAttempt);
        assert_eq!(
            e.device.mac.map(|m| m.to_string()).as_deref(),
            Some("52:54:00:aa:bb:cc")
        );
        assert_eq!(e.device.owner.as_deref(), Some("6B"));
        assert_eq!(e.technique, Some(Technique::DnsOverHttps));
        assert_eq!(e.count, 3);
        assert!(e.is_alert());
        let e = r;
        assert_eq!(e.extra.as_deref(), Some(r#"{"future_field":{"x":1}}"#));
    }

    #[test]
    fn the_person_is_read_when_sent_and_an_older_agents_event_has_none() {
        let mut with = example();
        with["person"] = serde_json::json!({
            "username": "amira.k", "display_name": "Amira Khan", "group": "pupils", "class": "6B"
        });
        let e = parse_event(with.clone()).unwrap().event;
        let p = e.person.as_ref().unwrap();
        assert_eq!(
            (
                p.username.as_str(),
                p.display_name.as_deref(),
                p.class.as_deref()
            ),
            ("amira.k", Some("Amira Khan"), Some("6B"))
        );
        // What the agent writes, the console reads back the same.
        let again = parse_event(serde_json::to_value(&e).unwrap())
            .unwrap()
            .event;
        assert_eq!(again, e);
        assert_eq!(parse_event(example()).unwrap().event.person, None);
        // A person without a username, or not an object, is refused.
        with["person"] = serde_json::json!({"display_name": "x"});
        assert!(matches!(
            parse_event(with.clone()),
            Err((_, Refused::Missing("person.username")))
        ));
        with["person"] = "amira.k".into();
        assert!(parse_event(with).is_err());
    }

    #[test]
    fn off_site_is_read_when_sent_and_at_school_when_absent() {
        let mut away = example();
        away["device"] = serde_json::json!({"name": "ICT-Suite-01", "off_site": true});
        let e = parse_event(away.clone()).unwrap().event;
        assert!(e.device.off_site);
        assert_eq!(e.device.ip, None);
        let text = serde_json::to_value(&e).unwrap();
        assert_eq!(text["device"]["off_site"], true);
        assert_eq!(parse_event(text).unwrap().event, e);
        // At school, nothing is written and nothing is read.
        let home = parse_event(example()).unwrap().event;
        assert!(!home.device.off_site);
        assert!(
            serde_json::to_value(&home).unwrap()["device"]
                .get("off_site")
                .is_none()
        );
        away["device"]["off_site"] = "yes".into();
        assert!(matches!(
            parse_event(away),
            Err((
                _,
                Refused::WrongType {
                    field: "device.off_site",
                    ..
                }
            ))
        ));
    }

    #[test]
    fn a_bad_event_is_refused_with_its_reason_and_the_rest_kept() {
        let mut bad_kind = example();
        bad_kind["kind"] = "party".into();
        let mut bad_id = example();
        bad_id["id"] = "not-a-uuid".into();
        let mut bad_ip = example();
        bad_ip["device"]["ip"] = "10.0.0.999".into();
        let body =
            serde_json::json!({"agent": "gw1", "events": [bad_kind, example(), bad_id, bad_ip, 7]});
        let batch = parse_batch(body.to_string().as_bytes()).unwrap();
        assert_eq!(batch.events.len(), 1);
        let reasons: Vec<_> = batch
            .refused
            .iter()
            .map(|r| (r.index, r.reason.to_string()))
            .collect();
        let reasons: Vec<_> = reasons.iter().map(|(i, r)| (*i, r.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (0, "`kind` \"party\" is not a known kind"),
                (2, "`id` \"not-a-uuid\" is not a UUIDv7"),
                (3, "`device.ip` \"10.0.0.999\" is not an IP address"),
                (4, "an event must be a JSON object"),
            ]
        );
        assert_eq!(batch.refused[0].id.as_deref(), Some(ID));
    }

    #[test]
    fn a_time_far_ahead_of_the_console_becomes_the_time_received() {
        let e = parse_event(example()).unwrap();
        let sent = e.event.time;
        let ms = |t: i64| Timestamp::from_millisecond(t).unwrap();
        // Within the skew, or in the past (a backlog): as sent.
        assert_eq!(
            e.clone()
                .at(ms(sent.as_millisecond() - MAX_SKEW_MS))
                .event
                .time,
            sent
        );
        assert_eq!(
            e.clone()
                .at(ms(sent.as_millisecond() + 86_400_000))
                .agent_time,
            None
        );
        // Further ahead (an agent's clock, or 2999-01-01): now, the agent's time kept.
        let mut far = example();
        far["time"] = "2999-01-01T00:00:00Z".into();
        far["last"] = "2999-01-01T00:01:00Z".into();
        let r = parse_event(far).unwrap().at(sent);
        assert_eq!(r.event.time, sent);
        assert_eq!(r.event.last, Some(sent));
        assert_eq!(
            r.agent_time.map(|t| t.as_millisecond()),
            Some(32_472_144_000_000)
        );
    }

    #[test]
    fn a_count_is_bounded_so_sums_cannot_overflow() {
        for (count, ok) in [
            (serde_json::json!(1), true),
            (serde_json::json!(MAX_COUNT), true),
            (serde_json::json!(MAX_COUNT + 1), false),
            (serde_json::json!(u64::from(u32::MAX) + 1), false),
            (serde_json::json!(i64::MAX), false),
            (serde_json::json!(u64::MAX), false),
            (serde_json::json!(0), false),
            (serde_json::json!(-1), false),
            (serde_json::json!(1.5), false),
        ] {
            let mut e = example();
            e["count"] = count.clone();
            assert_eq!(parse_event(e).is_ok(), ok, "{count}");
        }
    }

    #[test]
    fn hostile_text_is_bounded_and_cleaned() {
        let mut e = example();
        e["name"] = format!("<script>alert(1)</script>\n{}", "a".repeat(1000)).into();
        let e = parse_event(e).unwrap();
        let name = e.event.name.unwrap();
        assert_eq!(name.len(), MAX_NAME, "bounded in bytes");
        assert!(name.starts_with("<script>alert(1)</script>\u{fffd}"));
        let mut e = example();
        e["name"] = "moc.\u{202e}exe.elgoog\u{2066}x\u{200f}".into();
        let e = parse_event(e).unwrap();
        assert_eq!(
            e.event.name.unwrap(),
            "moc.\u{fffd}exe.elgoog\u{fffd}x\u{fffd}"
        );
    }

    #[test]
    fn a_technique_this_build_does_not_know_is_kept_with_the_unknown_fields() {
        let mut e = example();
        e["technique"] = "teleport\u{202e}".into();
        let r = parse_event(e).unwrap();
        assert_eq!(r.technique, None);
        assert_eq!(
            r.extra.as_deref(),
            Some("{\"future_field\":{\"x\":1},\"technique\":\"teleport\u{fffd}\"}")
        );
        let mut e = example();
        e["technique"] = 7.into();
        assert_eq!(
            parse_event(e).unwrap_err().1.to_string(),
            "`technique` must be text"
        );
    }

    #[test]
    fn the_body_an_agent_sends_is_a_batch_the_console_reads() {
        let mut status = crate::status::AgentStatus::of_version("0.1.0");
        status.backlog = 7;
        let event = serde_json::to_vec(&parse_event(example()).unwrap().event).unwrap();
        let body = batch_body("gw\"1", &status, [event.as_slice()].into_iter());
        let batch = parse_batch(&body).unwrap();
        assert_eq!(batch.agent, "gw\"1");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].event, parse_event(example()).unwrap().event);
        let back: crate::status::AgentStatus =
            serde_json::from_value(batch.status.unwrap()).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn whole_batches_are_refused_only_for_their_shape() {
        assert!(matches!(
            parse_batch(b"nope"),
            Err(BatchError::NotJson { .. })
        ));
        assert_eq!(
            parse_batch(br#"{"events": []}"#).unwrap_err(),
            BatchError::Shape
        );
        let many = serde_json::json!({"agent": "a", "events": vec![1; MAX_BATCH + 1]});
        assert_eq!(
            parse_batch(many.to_string().as_bytes()).unwrap_err(),
            BatchError::TooLarge(MAX_BATCH + 1)
        );
    }
}

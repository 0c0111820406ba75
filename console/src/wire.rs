//! The agents' wire contract, pure: a batch's JSON in, validated events and refusals out.
//!
//! Agents `POST /api/v1/events` with `{"agent": "gw1", "events": [EVENT, …]}`. Every text in
//! an event came from a pupil's device or passed through one, so each is bounded and cleaned
//! of control characters here, before it is stored; it is escaped again wherever it is shown.
//! Fields the console does not know are kept (as JSON) rather than refused, so a newer agent
//! can talk to an older console. An invalid event is refused with a reason; the rest of the
//! batch is still taken.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The longest name, rule or device text kept, in characters.
pub const MAX_NAME: usize = 253;
/// The longest evidence kept, in characters.
pub const MAX_EVIDENCE: usize = 1000;
/// The most events one batch may carry.
pub const MAX_BATCH: usize = 5000;
/// The largest `count` one event may carry: far above what a device can do in an
/// aggregation window, and small enough that no sum over the events a database can hold
/// (fewer than nine billion rows) overflows 64 bits.
pub const MAX_COUNT: i64 = 1_000_000_000;

/// The kinds of event an agent sends.
pub const KINDS: &[&str] = &[
    "blocked",
    "presence",
    "bypass_attempt",
    "quarantined",
    "released",
    "policy_reloaded",
    "policy_rejected",
    "agent_started",
    "agent_stopped",
    "events_dropped",
    "journal_damaged",
];

/// Severities, least urgent first.
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high"];

/// The device an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Device {
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
}

/// One valid event as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub id: Uuid,
    pub time_ms: i64,
    pub kind: &'static str,
    pub severity: &'static str,
    pub device: Device,
    pub group: Option<String>,
    pub name: Option<String>,
    pub rule: Option<String>,
    /// The policy category the name is in, when a category decided.
    pub category: Option<String>,
    pub technique: Option<String>,
    pub destination: Option<String>,
    pub evidence: Option<String>,
    pub count: i64,
    pub last_ms: Option<i64>,
    /// Unknown fields, as a JSON object's text.
    pub extra: Option<String>,
    /// The time the agent gave, when [`Incoming::received`] moved `time_ms` from it.
    pub agent_time_ms: Option<i64>,
}

/// How far ahead of the console's clock an agent's time may be.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

impl Incoming {
    /// This event as received at `now_ms`: a time (or last time) more than
    /// [`MAX_SKEW_MS`] ahead becomes `now_ms`, the agent's own kept in `agent_time_ms`.
    /// Earlier times stand: an agent sends what it journaled while the console was away.
    pub fn received(mut self, now_ms: i64) -> Self {
        let latest = now_ms.saturating_add(MAX_SKEW_MS);
        if self.time_ms > latest {
            self.agent_time_ms = Some(self.time_ms);
            self.time_ms = now_ms;
        }
        if self.last_ms.is_some_and(|l| l > latest) {
            self.last_ms = Some(now_ms);
        }
        self
    }

    /// What the alerts page lists: bypass attempts, quarantines, and anything of high
    /// severity.
    pub fn is_alert(&self) -> bool {
        matches!(self.kind, "bypass_attempt" | "quarantined") || self.severity == "high"
    }
}

/// An event refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Its position in the batch.
    pub index: usize,
    /// Its id, where one could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

/// A batch as the agent sent it.
#[derive(Debug)]
pub struct Batch {
    pub agent: String,
    pub events: Vec<Incoming>,
    pub refused: Vec<Refusal>,
    /// What the agent says of itself (backlog, policy version, errors), if anything.
    pub status: Option<Value>,
}

/// Why a whole batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be an object with `agent` (text) and `events` (a list)")]
    Shape,
    #[error("a batch holds at most {MAX_BATCH} events; this one has {0}")]
    TooLarge(usize),
}

/// Reads a batch body.
pub fn parse_batch(body: &[u8]) -> Result<Batch, BatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::NotJson(e.to_string()))?;
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
        agent: clean(&agent, MAX_NAME),
        events,
        refused,
        status: top.remove("status"),
    })
}

/// One event, or its id (if readable) and why it is refused.
pub fn parse_event(v: Value) -> Result<Incoming, (Option<String>, String)> {
    let Value::Object(mut m) = v else {
        return Err((None, "an event must be a JSON object".into()));
    };
    let id_text = m.get("id").and_then(Value::as_str).map(|s| clean(s, 64));
    let fail = |reason: String| (id_text.clone(), reason);
    let id = match m.remove("id") {
        Some(Value::String(s)) => Uuid::parse_str(&s)
            .ok()
            .filter(|u| u.get_version_num() == 7)
            .ok_or_else(|| fail(format!("`id` {:?} is not a UUIDv7", clean(&s, 64))))?,
        _ => return Err(fail("`id` is missing".into())),
    };
    let time_ms = match m.remove("time") {
        Some(Value::String(s)) => {
            s.parse::<Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| {
                    fail(format!(
                        "`time` {:?} is not an RFC 3339 time",
                        clean(&s, 64)
                    ))
                })?
        }
        _ => return Err(fail("`time` is missing".into())),
    };
    let kind = match m.remove("kind") {
        Some(Value::String(s)) => KINDS
            .iter()
            .copied()
            .find(|k| *k == s)
            .ok_or_else(|| fail(format!("`kind` {:?} is not a known kind", clean(&s, 64))))?,
        _ => return Err(fail("`kind` is missing".into())),
    };
    let severity = match m.remove("severity") {
        Some(Value::String(s)) => {
            SEVERITIES
                .iter()
                .copied()
                .find(|k| *k == s)
                .ok_or_else(|| {
                    fail(format!(
                        "`severity` {:?} is not one of info, low, medium, high",
                        clean(&s, 64)
                    ))
                })?
        }
        None => "info",
        Some(_) => return Err(fail("`severity` must be text".into())),
    };
    let device = match m.remove("device") {
        Some(Value::Object(d)) => device(d).map_err(fail)?,
        None | Some(Value::Null) => Device::default(),
        Some(_) => return Err(fail("`device` must be an object".into())),
    };
    let count = match m.remove("count") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or_else(|| {
                fail(format!(
                    "`count` {n} must be a whole number from 1 to {MAX_COUNT}"
                ))
            })?,
        Some(_) => return Err(fail("`count` must be a number".into())),
    };
    let last_ms = match m.remove("last") {
        Some(Value::String(s)) => Some(
            s.parse::<Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| fail("`last` is not an RFC 3339 time".into()))?,
        ),
        _ => None,
    };
    let mut text = |key: &str, max: usize| -> Result<Option<String>, (Option<String>, String)> {
        match m.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(clean(&s, max))),
            Some(_) => Err(fail(format!("`{key}` must be text"))),
        }
    };
    let group = text("group", MAX_NAME)?;
    let name = text("name", MAX_NAME)?;
    let rule = text("rule", MAX_NAME)?;
    let category = text("category", MAX_NAME)?;
    let technique = text("technique", 64)?;
    let destination = text("destination", MAX_NAME)?;
    let evidence = text("evidence", MAX_EVIDENCE)?;
    let extra = (!m.is_empty()).then(|| Value::Object(m).to_string());
    Ok(Incoming {
        id,
        time_ms,
        kind,
        severity,
        device,
        group,
        name,
        rule,
        category,
        technique,
        destination,
        evidence,
        count,
        last_ms,
        extra,
        agent_time_ms: None,
    })
}

fn device(mut d: Map<String, Value>) -> Result<Device, String> {
    let mut text = |key: &str| -> Result<Option<String>, String> {
        match d.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(clean(&s, MAX_NAME))),
            Some(_) => Err(format!("`device.{key}` must be text")),
        }
    };
    let ip = text("ip")?;
    if let Some(ip) = &ip {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("`device.ip` {ip:?} is not an IP address"))?;
    }
    let mac = text("mac")?.map(|m| m.to_ascii_lowercase());
    if let Some(mac) = &mac {
        let ok = mac.len() == 17
            && mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(format!("`device.mac` {mac:?} is not a MAC address"));
        }
    }
    Ok(Device {
        ip,
        mac,
        name: text("name")?,
        owner: text("owner")?,
    })
}

/// `s` cut to `max` characters with control characters and those that reorder text
/// replaced: nothing a device sent can grow a page, break a line, or make a name read
/// backwards (`moc.\u{202e}exe.elgoog`).
pub fn clean(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_control() || reorders(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Whether `c` is a bidirectional control: embeddings, overrides and isolates (U+202A–E,
/// U+2066–9), and the marks (U+200E–F, U+061C).
pub fn reorders(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
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
        let e = parse_event(example()).unwrap();
        assert_eq!(e.id.to_string(), ID);
        assert_eq!(e.time_ms, 1_795_514_523_123);
        assert_eq!(e.kind, "bypass_attempt");
        assert_eq!(e.device.mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(e.device.owner.as_deref(), Some("6B"));
        assert_eq!(e.count, 3);
        assert!(e.is_alert());
        assert_eq!(e.extra.as_deref(), Some(r#"{"future_field":{"x":1}}"#));
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
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
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
        let sent = e.time_ms;
        // Within the skew, or in the past (a backlog): as sent.
        assert_eq!(e.clone().received(sent - MAX_SKEW_MS).time_ms, sent);
        assert_eq!(e.clone().received(sent + 86_400_000).agent_time_ms, None);
        // Further ahead (an agent's clock, or 2999-01-01): now, the agent's time kept.
        let mut far = example();
        far["time"] = "2999-01-01T00:00:00Z".into();
        far["last"] = "2999-01-01T00:01:00Z".into();
        let r = parse_event(far).unwrap().received(sent);
        assert_eq!(r.time_ms, sent);
        assert_eq!(r.last_ms, Some(sent));
        assert_eq!(r.agent_time_ms, Some(32_472_144_000_000));
    }

    #[test]
    fn a_count_is_bounded_so_sums_cannot_overflow() {
        for (count, ok) in [
            (serde_json::json!(1), true),
            (serde_json::json!(MAX_COUNT), true),
            (serde_json::json!(MAX_COUNT + 1), false),
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
        let name = e.name.unwrap();
        assert_eq!(name.chars().count(), MAX_NAME);
        assert!(name.starts_with("<script>alert(1)</script>\u{fffd}"));
        let mut e = example();
        e["name"] = "moc.\u{202e}exe.elgoog\u{2066}x\u{200f}".into();
        let e = parse_event(e).unwrap();
        assert_eq!(e.name.unwrap(), "moc.\u{fffd}exe.elgoog\u{fffd}x\u{fffd}");
    }

    #[test]
    fn whole_batches_are_refused_only_for_their_shape() {
        assert!(matches!(parse_batch(b"nope"), Err(BatchError::NotJson(_))));
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

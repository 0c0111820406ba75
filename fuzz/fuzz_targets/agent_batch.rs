//! Fuzz target: an agent's event batch (JSON carrying pupils' strings) through the console's
//! wire contract. The bytes are tried as they are (the seeds are JSON bodies), then read as a
//! structured batch and written out as JSON, so the fuzzer explores events the contract
//! nearly takes, not only text that is not JSON.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use serde_json::{Map, Value, json};

const TIMES: [&str; 5] = [
    "2026-11-24T10:02:03.123Z",
    "2999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-11-24T10:02:03+01:00",
    "yesterday",
];

#[derive(Debug, Arbitrary)]
enum Count {
    Int(i64),
    Float(f64),
    Text(String),
    Missing,
}

#[derive(Debug, Arbitrary)]
struct Event {
    uuid: u128,
    v7: bool,
    time: u8,
    own_time: Option<String>,
    kind: u8,
    severity: Option<String>,
    count: Count,
    ip: Option<String>,
    mac: Option<String>,
    device_name: Option<String>,
    owner: Option<String>,
    name: Option<String>,
    rule: Option<String>,
    evidence: Option<String>,
    technique: Option<String>,
    extra: Option<(String, String)>,
}

#[derive(Debug, Arbitrary)]
struct Batch {
    agent: String,
    events: Vec<Event>,
    status: Option<String>,
}

/// A UUID's text; version 7 (and RFC variant) when asked, so most ids get past the check.
fn uuid(bits: u128, v7: bool) -> String {
    let b = if v7 {
        (bits & !(0xf << 76) & !(0x3 << 62)) | (0x7 << 76) | (0x2 << 62)
    } else {
        bits
    };
    let h = format!("{b:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn event(e: Event) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), uuid(e.uuid, e.v7).into());
    let time = e
        .own_time
        .unwrap_or_else(|| TIMES[usize::from(e.time) % TIMES.len()].to_owned());
    m.insert("time".into(), time.into());
    // The contract's kinds, and one it does not know.
    let kinds = schoolgate_contract::Kind::ALL;
    let kind = kinds
        .get(usize::from(e.kind) % (kinds.len() + 1))
        .map_or("party", |k| k.as_str());
    m.insert("kind".into(), kind.into());
    if let Some(s) = e.severity {
        m.insert("severity".into(), s.into());
    }
    match e.count {
        Count::Int(n) => m.insert("count".into(), n.into()),
        Count::Float(f) => m.insert("count".into(), json!(f)),
        Count::Text(t) => m.insert("count".into(), t.into()),
        Count::Missing => None,
    };
    m.insert(
        "device".into(),
        json!({"ip": e.ip, "mac": e.mac, "name": e.device_name, "owner": e.owner}),
    );
    for (k, v) in [
        ("name", e.name),
        ("rule", e.rule),
        ("evidence", e.evidence),
        ("technique", e.technique),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    }
    if let Some((k, v)) = e.extra {
        m.insert(k, v.into());
    }
    Value::Object(m)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schoolgate_console::fuzz::batch(data);
    let Ok(b) = Batch::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let body = json!({
        "agent": b.agent,
        "events": b.events.into_iter().map(event).collect::<Vec<_>>(),
        "status": b.status,
    });
    schoolgate_console::fuzz::batch(body.to_string().as_bytes());
});

//! One incident: its title and risk, who and which device, its alerts with their evidence
//! in plain words (each raw event a click away at `/events/{id}`), what the device did 30
//! minutes either side, and what the safeguarding lead records on it — triage, outcome and
//! action taken, case notes, release from quarantine — each change in its history with who
//! and when. Every view and action goes to the audit log; IT accounts see the technical
//! detail but not notes, outcomes or the case history.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use schoolgate_contract::{Kind, Severity, Technique};
use serde::Deserialize;

use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render, see_other, technique_words};
use crate::db::cases::{Change, Note, STATUSES, Triage};
use crate::db::devices::{DeviceKey, Quarantine};
use crate::db::events::Stored;
use crate::db::incidents::Incident;
use crate::zone::Zone;

/// How far either side of an incident the device's activity is shown.
const WINDOW_MS: i64 = 30 * 60 * 1000;
/// At most this many events of that activity.
const ACTIVITY_LIMIT: i64 = 300;

/// Bounds on what the forms take (characters).
const MAX_NOTE: usize = 10_000;
pub const MAX_REASON: usize = 500;
const MAX_ACTION: usize = 1_000;

/// Outcomes a resolved alert is given; the seed policies' responses, and "other".
pub const OUTCOMES: [&str; 6] = [
    "no concern: expected use",
    "spoken to the pupil",
    "parents or carers informed",
    "ICT ban: supervised use only",
    "referred under safeguarding procedures",
    "other (see action taken)",
];

/// The event's meaning in a sentence a safeguarding lead reads without a glossary.
pub fn plain_words(e: &Stored) -> String {
    let device = who_label(e);
    let name = e.name.as_deref().unwrap_or("a site");
    match e.kind {
        Kind::BypassAttempt => {
            let how = e
                .technique
                .as_deref()
                .and_then(Technique::from_name)
                .map_or("a way round the filter the console does not know", |t| {
                    t.plain()
                });
            format!("{device} tried to get round the school's filter using {how}.")
        }
        Kind::Quarantined => format!(
            "{device} was put in quarantine: it reaches only the school's own services \
             until it is released."
        ),
        Kind::Released => format!("{device} was released from quarantine."),
        Kind::Blocked => {
            let times = if e.count > 1 {
                format!(" ({} times)", e.count)
            } else {
                String::new()
            };
            format!("{device} was stopped from reaching {name}{times}.")
        }
        Kind::EventsDropped => format!(
            "The gateway lost {} event(s) before the console received them (its disk or \
             event journal was full, or it fell behind).",
            e.count
        ),
        Kind::JournalDamaged => {
            format!(
                "The gateway found damage in its event journal: about {} event(s) were lost \
                 (the evidence says which).",
                e.count
            )
        }
        Kind::PolicyRejected => "An edit to the filtering policy was refused, so the last good \
                              policy stays in force."
            .to_owned(),
        Kind::DirectoryRejected => "The school's list of pupils and staff could not be read, so \
                                 the last good list stays in use."
            .to_owned(),
        Kind::FeedRejected => "A blocklist the gateway keeps current could not be fetched or was \
                            refused, so its last good copy stays in use."
            .to_owned(),
        Kind::Supervised => {
            let name = e.name.as_deref().unwrap_or("a site");
            format!("{} reached {name} in supervised use.", who_label(e))
        }
        other => format!("{device}: {other}."),
    }
}

/// Who did it: "Amira Khan (6B) on Y6-iPad-12 (10.10.3.7)" where a person was signed in on
/// the device, the person first; else the device alone.
pub fn who_label(e: &Stored) -> String {
    let Some(person) = e.person_name.as_deref().or(e.person_username.as_deref()) else {
        return device_label(e);
    };
    let class = e
        .person_class
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let addr = address(e);
    match (e.device_name.as_deref(), addr) {
        (Some(n), Some(a)) => format!("{person}{class} on {n} ({a})"),
        (Some(n), None) => format!("{person}{class} on {n}"),
        (None, Some(a)) => format!("{person}{class} at {a}"),
        (None, None) => format!("{person}{class}"),
    }
}

/// Where the device was: its address at school, or "off site" for a device away from school
/// (which has no address the school keeps; its MAC would only confuse).
fn address(e: &Stored) -> Option<&str> {
    if e.off_site {
        return Some("off site");
    }
    e.device_ip.as_deref().or(e.device_mac.as_deref())
}

/// "Y6-iPad-12 (10.10.3.7)", "ICT-Suite-01 (off site)", or whichever parts are known.
pub fn device_label(e: &Stored) -> String {
    let addr = address(e);
    match (e.device_name.as_deref(), addr) {
        (Some(n), Some(a)) => format!("{n} ({a})"),
        (Some(n), None) => n.to_owned(),
        (None, Some(a)) => format!("The device at {a}"),
        (None, None) => "A device".to_owned(),
    }
}

/// A person's name as lists show it: the first name and the last name's initial ("Amira
/// K."), enough for the safeguarding lead to know who and no more for a passer-by.
pub fn short_name(name: &str) -> String {
    let mut words = name.split_whitespace();
    let Some(first) = words.next() else {
        return String::new();
    };
    // The initial is the last word's first capital (its first letter when it has none):
    // markup or punctuation around a name from the directory is not an initial.
    let initial = |w: &str| {
        w.chars()
            .find(|c| c.is_uppercase())
            .or_else(|| w.chars().find(|c| c.is_alphabetic()))
    };
    match words.last().and_then(initial) {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_owned(),
    }
}

/// Words joined as a sentence lists them: "A", "A and B", "A, B and C".
fn listed(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The incident in one line: who, what, on which device, and whether the device was
/// quarantined ("Amira K. (6B) used a VPN app on ICT-Suite-03 — quarantined").
pub fn title(i: &Incident) -> String {
    let person = i
        .person_name
        .as_deref()
        .map(short_name)
        .or_else(|| i.person_username.clone());
    let device = i
        .device_name
        .as_deref()
        .or(i.device_ip.as_deref())
        .or(i.device_mac.as_deref())
        .map(|d| {
            if i.off_site {
                format!("{d} (off site)")
            } else {
                d.to_owned()
            }
        });
    let device = device.as_deref();
    let subject = match (&person, device) {
        (Some(p), _) => match &i.person_class {
            Some(c) => format!("{p} ({c})"),
            None => p.clone(),
        },
        (None, Some(d)) => d.to_owned(),
        (None, None) => format!("Gateway {}", i.agent),
    };
    if let Some(rule) = &i.rule {
        let on = match (&person, device) {
            (Some(_), Some(d)) => format!(" on {d}"),
            _ => String::new(),
        };
        let times = if i.times == 1 {
            "once".to_owned()
        } else {
            format!("{} times", i.times)
        };
        return format!("{subject}: {rule} ({times}){on}");
    }
    let techniques: Vec<&str> = i.techniques.iter().map(|t| t.words()).collect();
    let what = if techniques.is_empty() {
        match i.kind {
            Kind::Quarantined => "was put in quarantine".to_owned(),
            Kind::Blocked => format!(
                "was stopped from reaching {}",
                i.name.as_deref().unwrap_or("a site")
            ),
            Kind::Supervised => format!(
                "reached {} in supervised use",
                i.name.as_deref().unwrap_or("a site")
            ),
            Kind::EventsDropped => "lost events before the console received them".to_owned(),
            Kind::JournalDamaged => "found damage in its event journal".to_owned(),
            Kind::PolicyRejected => "refused an edit to the filtering policy".to_owned(),
            Kind::DirectoryRejected => "could not read the list of pupils and staff".to_owned(),
            Kind::FeedRejected => "could not refresh a blocklist".to_owned(),
            other => other.to_string(),
        }
    } else {
        format!("used {}", listed(&techniques))
    };
    let on = match (&person, device) {
        (Some(_), Some(d)) => format!(" on {d}"),
        _ => String::new(),
    };
    let tail = if i.quarantined && !techniques.is_empty() {
        " — quarantined"
    } else {
        ""
    };
    format!("{subject} {what}{on}{tail}")
}

/// The incident's risk level in a word: its highest alert's severity.
pub fn risk(i: &Incident) -> &'static str {
    match i.severity {
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low | Severity::Info => "Low",
    }
}

/// An alert of the incident, or an event of the device's activity, as the page lists it.
#[derive(Debug)]
pub struct Activity {
    pub e: Stored,
    pub when: String,
    pub words: String,
    pub technique: Option<&'static str>,
    /// It is one of this incident's alerts.
    pub this: bool,
}

impl Activity {
    fn of(e: Stored, zone: &Zone, incident: &str) -> Self {
        Self {
            when: zone.when(e.time_ms),
            words: plain_words(&e),
            technique: e.technique.as_deref().and_then(technique_words),
            this: e.incident.as_deref() == Some(incident),
            e,
        }
    }
}

#[derive(Template)]
#[template(path = "alert.html")]
struct IncidentPage<'a> {
    frame: Frame<'a>,
    i: &'a Incident,
    title: String,
    risk: &'static str,
    first: String,
    last: String,
    techniques: String,
    device: String,
    /// The device's address or name, for its history's link.
    device_key: Option<String>,
    alerts: Vec<Activity>,
    activity: Vec<Activity>,
    /// Notes and history only for those who handle cases.
    notes: Vec<(String, Note)>,
    history: Vec<(String, Change)>,
    quarantine: Option<(String, Quarantine)>,
    statuses: [&'static str; 3],
    outcomes: [&'static str; 6],
    message: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    /// A fixed message code from a form's redirect (never text from the request).
    done: String,
}

/// `/alerts/{id}`: the incident `id`; an alert in an incident is sent to its incident, and
/// any other event to its own page; anything else (or another school's) is not found.
pub async fn show(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Answer {
    let scope = signed.scope();
    let Some(i) = app.db.incident(&scope, &id).await? else {
        if let Some(incident) = app.db.incident_of(&scope, &id).await? {
            return Ok(see_other(&format!("/alerts/{}", urlencode(&incident))));
        }
        if app.db.event(&scope, &id).await?.is_some() {
            return Ok(see_other(&format!("/events/{}", urlencode(&id))));
        }
        return Err(Refused::NotFound("incident"));
    };
    signed.audit(&app, "view_alert", Some(&i.id), None).await?;
    let zone = &app.config.time_zone;
    let alerts = app.db.incident_events(&i.id).await?;
    // The device as the latest alert names it: its activity and its quarantine.
    let latest = alerts.last();
    let activity = match latest.and_then(DeviceKey::of) {
        Some(key) => {
            let (from, to) = (i.first_ms - WINDOW_MS, i.last_ms + WINDOW_MS + 1);
            app.db
                .device_activity(&scope, &key, from, to, ACTIVITY_LIMIT)
                .await?
        }
        None => Vec::new(),
    };
    let activity = activity
        .into_iter()
        .map(|e| Activity::of(e, zone, &i.id))
        .collect();
    let (notes, history) = if signed.role().handles_cases() {
        let notes = app.db.notes(&i.id).await?;
        let history = app.db.history(&i.id).await?;
        (
            notes
                .into_iter()
                .map(|n| (zone.when(n.time_ms), n))
                .collect(),
            history
                .into_iter()
                .map(|c| (zone.when(c.time_ms), c))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let quarantine = match latest {
        Some(e) => app
            .db
            .quarantine_of(e)
            .await?
            .map(|q| (zone.when(q.event.time_ms), q)),
        None => None,
    };
    let message = match shown.done.as_str() {
        "triage" => Some("Triage recorded."),
        "note" => Some("Note added."),
        "release" => Some(RELEASE_SENT),
        _ => None,
    };
    let device = latest.map_or_else(|| "none".to_owned(), device_label);
    let device_key = latest.and_then(|e| {
        e.device_ip
            .clone()
            .or_else(|| e.device_mac.clone())
            .or_else(|| e.device_name.clone())
    });
    render(&IncidentPage {
        frame: signed.frame(&app),
        title: title(&i),
        risk: risk(&i),
        first: zone.when(i.first_ms),
        last: zone.when(i.last_ms),
        techniques: listed(&i.techniques.iter().map(|t| t.words()).collect::<Vec<_>>()),
        device,
        device_key,
        alerts: alerts
            .into_iter()
            .map(|e| Activity::of(e, zone, &i.id))
            .collect(),
        activity,
        notes,
        history,
        quarantine,
        statuses: STATUSES,
        outcomes: OUTCOMES,
        message,
        i: &i,
    })
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage<'a> {
    frame: Frame<'a>,
    e: &'a Stored,
    when: String,
    words: String,
    technique: Option<&'static str>,
    device: String,
}

/// `/events/{id}`: one event as the gateway sent it, every field.
pub async fn event(State(app): State<Shared>, signed: Signed, Path(id): Path<String>) -> Answer {
    let e = app
        .db
        .event(&signed.scope(), &id)
        .await?
        .ok_or(Refused::NotFound("event"))?;
    signed.audit(&app, "view_event", Some(&e.id), None).await?;
    render(&EventPage {
        frame: signed.frame(&app),
        when: app.config.time_zone.when(e.time_ms),
        words: plain_words(&e),
        technique: e.technique.as_deref().and_then(technique_words),
        device: device_label(&e),
        e: &e,
    })
}

/// What the page says once a release is queued.
pub const RELEASE_SENT: &str = "Release sent to the gateway; it takes effect within seconds.";

/// Trimmed `text`, or `None` when empty; refused when longer than `max` characters.
pub fn field(text: &str, max: usize, what: &str) -> Result<Option<String>, Refused> {
    let t = text.trim();
    if t.chars().count() > max {
        return Err(Refused::Bad(format!(
            "The {what} is longer than {max} characters."
        )));
    }
    Ok(Some(t.to_owned()).filter(|t| !t.is_empty()))
}

/// The incident `id`, if `signed` may see it.
async fn incident(app: &Shared, signed: &Signed, id: &str) -> Result<Incident, Refused> {
    app.db
        .incident(&signed.scope(), id)
        .await?
        .ok_or(Refused::NotFound("incident"))
}

/// The page of alert `id`, saying `done`.
fn back_to(id: &str, done: &str) -> Answer {
    Ok(see_other(&format!("/alerts/{}?done={done}", urlencode(id))))
}

#[derive(Debug, Deserialize)]
pub struct TriageForm {
    csrf: String,
    status: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    action_taken: String,
}

pub async fn triage(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<TriageForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    signed.handles_cases()?;
    let status = STATUSES
        .into_iter()
        .find(|s| *s == form.status)
        .ok_or_else(|| Refused::Bad("Unknown status.".into()))?;
    let outcome = field(&form.outcome, 200, "outcome")?;
    let action_taken = field(&form.action_taken, MAX_ACTION, "action taken")?;
    if status == "resolved" && outcome.is_none() {
        return Err(Refused::Bad(
            "A resolved alert needs an outcome. Go back and choose one.".into(),
        ));
    }
    let i = incident(&app, &signed, &id).await?;
    let decision = Triage {
        status,
        outcome: outcome.as_deref(),
        action_taken: action_taken.as_deref(),
    };
    if !app
        .db
        .triage(&i.id, &decision, signed.name(), now_ms())
        .await?
    {
        return Err(Refused::NotFound("incident"));
    }
    // The audit log says what changed, not the case detail (IT reads the audit log).
    let detail = format!("status {status}");
    signed
        .audit(&app, "triage", Some(&i.id), Some(&detail))
        .await?;
    back_to(&i.id, "triage")
}

#[derive(Debug, Deserialize)]
pub struct NoteForm {
    csrf: String,
    body: String,
}

pub async fn note(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    signed.handles_cases()?;
    let body = field(&form.body, MAX_NOTE, "note")?
        .ok_or_else(|| Refused::Bad("The note is empty.".into()))?;
    let i = incident(&app, &signed, &id).await?;
    if !app
        .db
        .add_note(&i.id, signed.name(), &body, now_ms())
        .await?
    {
        return Err(Refused::NotFound("incident"));
    }
    signed.audit(&app, "add_note", Some(&i.id), None).await?;
    back_to(&i.id, "note")
}

#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    csrf: String,
    reason: String,
}

pub async fn release(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<ReleaseForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    signed.handles_cases()?;
    let i = incident(&app, &signed, &id).await?;
    // The device and person as the incident's latest alert names them.
    let e = app
        .db
        .incident_events(&i.id)
        .await?
        .pop()
        .ok_or(Refused::NotFound("incident"))?;
    queue_release(&app, &signed, &e, &form.reason).await?;
    back_to(&i.id, "release")
}

/// Queues the release of `e`'s device with `reason` — and, when the event names the person
/// signed in, of that person's ban, so the DSL's release acts on the person — in the history
/// of the incident it is in and the audit log. The agent that reported the event is the one
/// told.
pub async fn queue_release(
    app: &Shared,
    signed: &Signed,
    e: &Stored,
    reason: &str,
) -> Result<(), Refused> {
    let reason = field(reason, MAX_REASON, "reason")?
        .ok_or_else(|| Refused::Bad("A release needs a reason. Go back and give one.".into()))?;
    let device = e
        .device_ip
        .as_deref()
        .or(e.device_mac.as_deref())
        .ok_or_else(|| Refused::Bad("The event names no device address.".into()))?;
    let now = now_ms();
    let case = e.incident.as_deref().unwrap_or(&e.id);
    app.db
        .queue_release(
            &e.agent,
            device,
            e.person_username.as_deref(),
            &reason,
            signed.name(),
            Some(case),
            now,
        )
        .await?;
    let what = format!("release from quarantine asked for: {reason}");
    app.db.add_change(case, signed.name(), &what, now).await?;
    signed.audit(app, "release", Some(device), Some(case)).await
}

/// `text` for a URL path segment (alert ids are UUIDs, but the path came from the browser).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::example;

    /// The example without the person an agent from before 0.2 could not name.
    fn device_only(kind: &str) -> Stored {
        let mut e = example(kind);
        e.person_username = None;
        e.person_name = None;
        e.person_class = None;
        e.person_group = None;
        e
    }

    #[test]
    fn evidence_reads_as_plain_words_the_person_first() {
        assert_eq!(
            plain_words(&example("bypass_attempt")),
            "Amira Khan (6B) on Y6-iPad-12 (10.10.3.7) tried to get round the school's filter \
             using a VPN (OpenVPN), which tunnels past the school's filter."
        );
        assert_eq!(
            plain_words(&device_only("bypass_attempt")),
            "Y6-iPad-12 (10.10.3.7) tried to get round the school's filter using a VPN \
             (OpenVPN), which tunnels past the school's filter."
        );
        let mut unnamed = example("quarantined");
        unnamed.person_name = None;
        unnamed.device_name = None;
        assert!(
            plain_words(&unnamed).starts_with("amira.k (6B) at 10.10.3.7 was put in quarantine")
        );
        let mut unknown = device_only("bypass_attempt");
        unknown.technique = Some("teleport".into());
        unknown.device_name = None;
        assert!(plain_words(&unknown).starts_with("The device at 10.10.3.7 tried"));
        let mut blocked = device_only("blocked");
        blocked.count = 3;
        assert_eq!(
            plain_words(&blocked),
            "Y6-iPad-12 (10.10.3.7) was stopped from reaching vpn.example (3 times)."
        );
    }

    #[test]
    fn an_incident_reads_as_one_line_the_person_first() {
        let e = example("bypass_attempt");
        let received = schoolgate_contract::wire::parse_event(serde_json::json!({
            "id": "0193abcd-0000-7000-8000-000000000000", "time": "2026-06-15T08:10:03Z",
            "kind": "bypass_attempt", "severity": "medium", "technique": "vpn_app",
            "device": {"ip": e.device_ip, "name": "ICT-Suite-03"},
            "person": {"username": "amira.k", "display_name": "Amira Khan", "class": "6B"},
        }))
        .unwrap();
        let mut i = Incident::open("gw1", &received);
        assert_eq!(title(&i), "Amira K. (6B) used a VPN app on ICT-Suite-03");
        assert_eq!(risk(&i), "Medium");
        i.quarantined = true;
        i.techniques.push(Technique::Tor);
        i.severity = Severity::High;
        assert_eq!(
            title(&i),
            "Amira K. (6B) used a VPN app and Tor on ICT-Suite-03 — quarantined"
        );
        assert_eq!(risk(&i), "High");
        i.person_username = None;
        i.person_name = None;
        i.person_class = None;
        i.techniques.clear();
        i.kind = Kind::Quarantined;
        assert_eq!(title(&i), "ICT-Suite-03 was put in quarantine");
        i.device_name = None;
        i.device_ip = None;
        i.kind = Kind::PolicyRejected;
        assert_eq!(
            title(&i),
            "Gateway gw1 refused an edit to the filtering policy"
        );
    }

    #[test]
    fn short_names_keep_a_first_name_and_an_initial() {
        assert_eq!(short_name("Amira Khan"), "Amira K.");
        assert_eq!(short_name("  Jo  de la Cruz "), "Jo C.");
        assert_eq!(short_name("Amira <i>Khan</i>"), "Amira K.");
        assert_eq!(short_name("Cher"), "Cher");
        assert_eq!(short_name(""), "");
        assert_eq!(listed(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(urlencode("0193-ab_c"), "0193-ab_c");
        assert_eq!(urlencode("a/b?c=<d>"), "a%2Fb%3Fc%3D%3Cd%3E");
    }
}

//! One alert: the evidence in plain words, the device and who it belongs to, what the
//! device did 30 minutes either side, and what the safeguarding lead records on it —
//! triage, outcome and action taken, case notes, release from quarantine — each change in
//! its history with who and when. Every view and action goes to the audit log; IT accounts
//! see the technical detail but not notes, outcomes or the case history.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use schoolgate_contract::{Kind, Technique};
use serde::Deserialize;

use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render, see_other, when};
use crate::db::cases::{Change, Note, STATUSES, Triage};
use crate::db::devices::{DeviceKey, Quarantine};
use crate::db::events::Stored;

/// How far either side of an alert the device's activity is shown.
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
    let addr = e.device_ip.as_deref().or(e.device_mac.as_deref());
    match (e.device_name.as_deref(), addr) {
        (Some(n), Some(a)) => format!("{person}{class} on {n} ({a})"),
        (Some(n), None) => format!("{person}{class} on {n}"),
        (None, Some(a)) => format!("{person}{class} at {a}"),
        (None, None) => format!("{person}{class}"),
    }
}

/// "Y6-iPad-12 (10.10.3.7)", or whichever parts are known.
pub fn device_label(e: &Stored) -> String {
    let addr = e.device_ip.as_deref().or(e.device_mac.as_deref());
    match (e.device_name.as_deref(), addr) {
        (Some(n), Some(a)) => format!("{n} ({a})"),
        (Some(n), None) => n.to_owned(),
        (None, Some(a)) => format!("The device at {a}"),
        (None, None) => "A device".to_owned(),
    }
}

#[derive(Debug)]
pub struct Activity {
    pub e: Stored,
    pub when: String,
    /// This is the alert itself.
    pub this: bool,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage<'a> {
    frame: Frame<'a>,
    e: &'a Stored,
    when: String,
    words: String,
    device: String,
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

pub async fn show(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Answer {
    let e = app.db.event(&id).await?.ok_or(Refused::NotFound("alert"))?;
    signed.audit(&app, "view_alert", Some(&e.id), None).await?;
    let activity = match DeviceKey::of(&e) {
        Some(key) => {
            let (from, to) = (e.time_ms - WINDOW_MS, e.time_ms + WINDOW_MS + 1);
            app.db
                .device_activity(&key, from, to, ACTIVITY_LIMIT)
                .await?
        }
        None => Vec::new(),
    };
    let activity = activity
        .into_iter()
        .map(|a| Activity {
            when: when(a.time_ms),
            this: a.id == e.id,
            e: a,
        })
        .collect();
    let (notes, history) = if signed.role().handles_cases() {
        let notes = app.db.notes(&e.id).await?;
        let history = app.db.history(&e.id).await?;
        (
            notes.into_iter().map(|n| (when(n.time_ms), n)).collect(),
            history.into_iter().map(|c| (when(c.time_ms), c)).collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let quarantine = app
        .db
        .quarantine_of(&e)
        .await?
        .map(|q| (when(q.event.time_ms), q));
    let message = match shown.done.as_str() {
        "triage" => Some("Triage recorded."),
        "note" => Some("Note added."),
        "release" => Some(RELEASE_SENT),
        _ => None,
    };
    render(&AlertPage {
        frame: signed.frame(),
        when: when(e.time_ms),
        words: plain_words(&e),
        device: device_label(&e),
        e: &e,
        activity,
        notes,
        history,
        quarantine,
        statuses: STATUSES,
        outcomes: OUTCOMES,
        message,
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

/// The alert `id`.
async fn alert(app: &Shared, id: &str) -> Result<Stored, Refused> {
    match app.db.event(id).await? {
        Some(e) if e.alert => Ok(e),
        _ => Err(Refused::NotFound("alert")),
    }
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
    let e = alert(&app, &id).await?;
    let decision = Triage {
        status,
        outcome: outcome.as_deref(),
        action_taken: action_taken.as_deref(),
    };
    if !app
        .db
        .triage(&e.id, &decision, signed.name(), now_ms())
        .await?
    {
        return Err(Refused::NotFound("alert"));
    }
    // The audit log says what changed, not the case detail (IT reads the audit log).
    let detail = format!("status {status}");
    signed
        .audit(&app, "triage", Some(&e.id), Some(&detail))
        .await?;
    back_to(&e.id, "triage")
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
    let e = alert(&app, &id).await?;
    if !app
        .db
        .add_note(&e.id, signed.name(), &body, now_ms())
        .await?
    {
        return Err(Refused::NotFound("alert"));
    }
    signed.audit(&app, "add_note", Some(&e.id), None).await?;
    back_to(&e.id, "note")
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
    let e = alert(&app, &id).await?;
    queue_release(&app, &signed, &e, &form.reason).await?;
    back_to(&e.id, "release")
}

/// Queues the release of `e`'s device with `reason` — and, when the event names the person
/// signed in, of that person's ban, so the DSL's release acts on the person — in the alert's
/// history and the audit log. The agent that reported the event is the one told.
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
    app.db
        .queue_release(
            &e.agent,
            device,
            e.person_username.as_deref(),
            &reason,
            signed.name(),
            Some(&e.id),
            now,
        )
        .await?;
    let what = format!("release from quarantine asked for: {reason}");
    app.db.add_change(&e.id, signed.name(), &what, now).await?;
    signed
        .audit(app, "release", Some(device), Some(&e.id))
        .await
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
    fn path_segments_are_encoded() {
        assert_eq!(urlencode("0193-ab_c"), "0193-ab_c");
        assert_eq!(urlencode("a/b?c=<d>"), "a%2Fb%3Fc%3D%3Cd%3E");
    }
}

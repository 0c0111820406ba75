//! A closed case's record, for the school's safeguarding record system: the incident, its
//! alerts with their evidence, the outcome and action taken, every note and every change
//! with who and when — as a page made for printing (or saving as PDF from the browser's
//! print dialog) and as JSON. Only the safeguarding lead's accounts export, only a resolved
//! incident (an open case is still being written), and every export is audited.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::alert::{plain_words, risk, title};
use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render};
use crate::db::cases::{Change, Note};
use crate::db::events::Stored;
use crate::db::incidents::Incident;
use crate::zone::Zone;

/// What the record names its format, so a system importing it can tell versions apart.
pub const SCHEMA: &str = "schoolgate.case/1";

#[derive(Debug, Serialize)]
pub struct Record {
    pub schema: &'static str,
    pub exported_at: String,
    pub exported_by: String,
    pub time_zone: String,
    pub incident: CaseIncident,
    pub alerts: Vec<CaseAlert>,
    pub notes: Vec<CaseNote>,
    pub history: Vec<CaseChange>,
}

#[derive(Debug, Serialize)]
pub struct CaseIncident {
    pub id: String,
    pub title: String,
    pub risk: &'static str,
    pub status: String,
    pub outcome: Option<String>,
    pub action_taken: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub gateway: String,
    pub person: Option<CasePerson>,
    pub device: CaseDevice,
    pub techniques: Vec<CaseTechnique>,
    pub attempts: i64,
    pub quarantined: bool,
}

#[derive(Debug, Serialize)]
pub struct CasePerson {
    pub username: String,
    pub name: Option<String>,
    pub class: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CaseDevice {
    pub name: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CaseTechnique {
    pub name: &'static str,
    pub words: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CaseAlert {
    pub id: String,
    pub time: String,
    pub kind: String,
    pub words: String,
    pub name: Option<String>,
    pub technique: Option<String>,
    pub destination: Option<String>,
    pub evidence: Option<String>,
    pub severity: String,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct CaseNote {
    pub author: String,
    pub time: String,
    pub body: String,
}

#[derive(Debug, Serialize)]
pub struct CaseChange {
    pub who: String,
    pub time: String,
    pub what: String,
}

impl Record {
    /// The record of incident `i`, times in `zone`, as `by` exports it at `now_ms`.
    pub fn of(
        i: &Incident,
        alerts: &[Stored],
        notes: &[Note],
        history: &[Change],
        zone: &Zone,
        by: &str,
        now_ms: i64,
    ) -> Self {
        Self {
            schema: SCHEMA,
            exported_at: zone.iso(now_ms),
            exported_by: by.to_owned(),
            time_zone: zone.name().to_owned(),
            incident: CaseIncident {
                id: i.id.clone(),
                title: title(i),
                risk: risk(i),
                status: i.status.clone(),
                outcome: i.outcome.clone(),
                action_taken: i.action_taken.clone(),
                first_seen: zone.iso(i.first_ms),
                last_seen: zone.iso(i.last_ms),
                gateway: i.agent.clone(),
                person: i.person_username.as_ref().map(|u| CasePerson {
                    username: u.clone(),
                    name: i.person_name.clone(),
                    class: i.person_class.clone(),
                    group: i.person_group.clone(),
                }),
                device: CaseDevice {
                    name: i.device_name.clone(),
                    ip: i.device_ip.clone(),
                    mac: i.device_mac.clone(),
                    owner: i.device_owner.clone(),
                },
                techniques: i
                    .techniques
                    .iter()
                    .map(|t| CaseTechnique {
                        name: t.as_str(),
                        words: t.words(),
                    })
                    .collect(),
                attempts: i.attempts,
                quarantined: i.quarantined,
            },
            alerts: alerts
                .iter()
                .map(|e| CaseAlert {
                    id: e.id.clone(),
                    time: zone.iso(e.time_ms),
                    kind: e.kind.to_string(),
                    words: plain_words(e),
                    name: e.name.clone(),
                    technique: e.technique.clone(),
                    destination: e.destination.clone(),
                    evidence: e.evidence.clone(),
                    severity: e.severity.to_string(),
                    count: e.count,
                })
                .collect(),
            notes: notes
                .iter()
                .map(|n| CaseNote {
                    author: n.author.clone(),
                    time: zone.iso(n.time_ms),
                    body: n.body.clone(),
                })
                .collect(),
            history: history
                .iter()
                .map(|c| CaseChange {
                    who: c.who.clone(),
                    time: zone.iso(c.time_ms),
                    what: c.what.clone(),
                })
                .collect(),
        }
    }
}

/// The record of incident `id`, refused unless the user handles cases and it is resolved;
/// the export audited as `how`.
async fn record(app: &Shared, signed: &Signed, id: &str, how: &str) -> Result<Record, Refused> {
    signed.handles_cases()?;
    let i = app
        .db
        .incident(&signed.scope(), id)
        .await?
        .ok_or(Refused::NotFound("incident"))?;
    if i.status != "resolved" {
        return Err(Refused::Bad(
            "Only a resolved incident's record is exported: resolve it with its outcome first."
                .into(),
        ));
    }
    let alerts = app.db.incident_events(&i.id).await?;
    let notes = app.db.notes(&i.id).await?;
    let history = app.db.history(&i.id).await?;
    signed
        .audit(app, "export_case", Some(&i.id), Some(how))
        .await?;
    Ok(Record::of(
        &i,
        &alerts,
        &notes,
        &history,
        &app.config.time_zone,
        signed.name(),
        now_ms(),
    ))
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage<'a> {
    frame: Frame<'a>,
    r: &'a Record,
    device: String,
    how: String,
}

/// `/alerts/{id}/record`: the printable record.
pub async fn page(State(app): State<Shared>, signed: Signed, Path(id): Path<String>) -> Answer {
    let r = record(&app, &signed, &id, "page").await?;
    let i = &r.incident;
    let device = match (
        &i.device.name,
        i.device.ip.as_ref().or(i.device.mac.as_ref()),
    ) {
        (Some(n), Some(a)) => format!("{n} ({a})"),
        (Some(n), None) => n.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => "not known".to_owned(),
    };
    let how = i
        .techniques
        .iter()
        .map(|t| t.words)
        .collect::<Vec<_>>()
        .join(", ");
    render(&CasePage {
        frame: signed.frame(&app),
        r: &r,
        device,
        how,
    })
}

/// `/alerts/{id}/record.json`: the same record as JSON, downloaded.
pub async fn json(State(app): State<Shared>, signed: Signed, Path(id): Path<String>) -> Answer {
    let r = record(&app, &signed, &id, "json").await?;
    let body = serde_json::to_string_pretty(&r).map_err(|_| Refused::Internal)?;
    let name = format!(
        "attachment; filename=\"case-{}.json\"",
        super::alert::urlencode(&r.incident.id)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}

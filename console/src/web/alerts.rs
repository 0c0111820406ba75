//! The incident list: one row per incident (an attempt, the quarantine it caused, repeats
//! close behind), its title in plain words, risk and status, the most recently active
//! first, narrowed by status, technique, group, device, person and dates (days in the
//! school's time zone), with counts by status; and the same as CSV.

use askama::Template;
use axum::extract::{Query, State};
use schoolgate_contract::Technique;
use serde::Deserialize;

use super::alert::{risk, title};
use super::csv::{document, download, opt};
use super::{Answer, Frame, Shared, Signed, one_page, render};
use crate::db::events::Stored;
use crate::db::incidents::{Filter, Incident};
use crate::zone::Zone;

/// Incidents on one page.
const PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    status: String,
    technique: String,
    group: String,
    device: String,
    person: String,
    /// `YYYY-MM-DD`, in the school's time zone.
    from: String,
    to: String,
    page: i64,
}

impl Params {
    pub fn filter(&self, zone: &Zone) -> Filter {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Filter {
            status: opt(&self.status),
            technique: opt(&self.technique),
            group: opt(&self.group),
            device: opt(&self.device),
            person: opt(&self.person),
            from_ms: zone.day_start(&self.from),
            // The "to" day is included.
            to_ms: zone.day_start(&self.to).map(|t| zone.add_days(t, 1)),
        }
    }

    /// The query string of these filters (without the page), for links.
    fn query(&self) -> String {
        let mut q = String::new();
        for (k, v) in [
            ("status", &self.status),
            ("technique", &self.technique),
            ("group", &self.group),
            ("device", &self.device),
            ("person", &self.person),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(k);
            q.push('=');
            q.push_str(&super::alert::urlencode(v));
        }
        q
    }
}

/// An incident as the list shows it.
#[derive(Debug)]
pub struct Listed {
    pub i: Incident,
    pub title: String,
    pub risk: &'static str,
    /// When it last grew.
    pub when: String,
    /// The school of the gateway that reported it, by name, for a reader of several.
    pub school: Option<String>,
}

impl Listed {
    pub fn of(i: Incident, zone: &Zone) -> Self {
        Self {
            title: title(&i),
            risk: risk(&i),
            when: zone.when(i.last_ms),
            school: None,
            i,
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage<'a> {
    frame: Frame<'a>,
    params: &'a Params,
    query: String,
    techniques: Vec<(&'static str, &'static str)>,
    rows: Vec<Listed>,
    counts: Vec<(String, i64)>,
    total: i64,
    page: i64,
    more: bool,
    /// The reader sees several schools: each row says which.
    schools: bool,
}

pub async fn list(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let zone = &app.config.time_zone;
    let filter = params.filter(zone);
    let page_no = params.page.max(0);
    let scope = signed.scope();
    let rows = app
        .db
        .incidents(&scope, &filter, PAGE + 1, page_no * PAGE)
        .await?;
    let counts = app.db.incident_counts(&scope, &filter).await?;
    let (rows, more) = one_page(rows, PAGE);
    // A reader of a trust (or of several of its schools) is told each incident's school.
    let schools = !app.config.schools.is_empty() && scope.schools().len() != 1;
    let of_agent = if schools {
        app.db.agent_schools(&scope).await?
    } else {
        std::collections::HashMap::new()
    };
    let rows = rows
        .into_iter()
        .map(|i| {
            let school = of_agent
                .get(&i.agent)
                .map(|id| app.config.school_name(id).to_owned());
            Listed {
                school,
                ..Listed::of(i, zone)
            }
        })
        .collect();
    let total = counts.iter().map(|(_, n)| n).sum();
    render(&AlertsPage {
        frame: signed.frame(&app),
        params: &params,
        query: params.query(),
        techniques: Technique::ALL
            .iter()
            .map(|t| (t.as_str(), t.words()))
            .collect(),
        rows,
        counts,
        total,
        page: page_no,
        more,
        schools,
    })
}

/// Incidents as CSV: outcome and action taken only for those who handle cases.
pub fn incidents_csv(incidents: &[Incident], zone: &Zone, cases: bool) -> String {
    let first = format!("first seen ({})", zone.name());
    let last = format!("last seen ({})", zone.name());
    let mut header = vec![
        "id",
        first.as_str(),
        last.as_str(),
        "incident",
        "risk",
        "status",
        "username",
        "person",
        "class",
        "device name",
        "device ip",
        "device mac",
        "belongs to",
        "group",
        "how",
        "technique",
        "attempts",
        "alerts",
        "quarantined",
        "gateway",
    ];
    if cases {
        header.extend(["outcome", "action taken"]);
    }
    document(
        &header,
        incidents.iter().map(|i| {
            let mut row = vec![
                i.id.clone(),
                zone.when_exact(i.first_ms),
                zone.when_exact(i.last_ms),
                title(i),
                risk(i).to_owned(),
                i.status.clone(),
                opt(&i.person_username),
                opt(&i.person_name),
                opt(&i.person_class),
                opt(&i.device_name),
                opt(&i.device_ip),
                opt(&i.device_mac),
                opt(&i.device_owner),
                opt(&i.group),
                i.techniques
                    .iter()
                    .map(|t| t.words())
                    .collect::<Vec<_>>()
                    .join("; "),
                i.techniques
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                i.attempts.to_string(),
                i.events.to_string(),
                if i.quarantined { "yes" } else { "no" }.to_owned(),
                i.agent.clone(),
            ];
            if cases {
                row.extend([opt(&i.outcome), opt(&i.action_taken)]);
            }
            row
        }),
    )
}

/// Events as CSV: outcome and action taken only for those who handle cases.
pub fn events_csv(events: &[Stored], zone: &Zone, cases: bool) -> String {
    let time = format!("time ({})", zone.name());
    let mut header = vec![
        "id",
        time.as_str(),
        "gateway",
        "kind",
        "severity",
        "status",
        "device ip",
        "device mac",
        "device name",
        "belongs to",
        "username",
        "person",
        "class",
        "group",
        "name",
        "technique",
        "how",
        "rule",
        "category",
        "destination",
        "evidence",
        "count",
    ];
    if cases {
        header.extend(["outcome", "action taken"]);
    }
    document(
        &header,
        events.iter().map(|e| {
            let mut row = vec![
                e.id.clone(),
                zone.when_exact(e.time_ms),
                e.agent.clone(),
                e.kind.to_string(),
                e.severity.to_string(),
                e.status.clone(),
                opt(&e.device_ip),
                opt(&e.device_mac),
                opt(&e.device_name),
                opt(&e.device_owner),
                opt(&e.person_username),
                opt(&e.person_name),
                opt(&e.person_class),
                opt(&e.group),
                opt(&e.name),
                opt(&e.technique),
                e.technique
                    .as_deref()
                    .and_then(super::technique_words)
                    .unwrap_or_default()
                    .to_owned(),
                opt(&e.rule),
                opt(&e.category),
                opt(&e.destination),
                opt(&e.evidence),
                e.count.to_string(),
            ];
            if cases {
                row.extend([opt(&e.outcome), opt(&e.action_taken)]);
            }
            row
        }),
    )
}

/// Rows in one CSV download at most.
pub const CSV_ROWS: i64 = 100_000;

/// The filtered incident list as CSV.
pub async fn export(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let zone = &app.config.time_zone;
    let rows = app
        .db
        .incidents(&signed.scope(), &params.filter(zone), CSV_ROWS, 0)
        .await?;
    signed
        .audit(
            &app,
            "export_alerts",
            None,
            Some(&format!("{} rows", rows.len())),
        )
        .await?;
    Ok(download(
        "alerts.csv",
        incidents_csv(&rows, zone, signed.role().handles_cases()),
    ))
}

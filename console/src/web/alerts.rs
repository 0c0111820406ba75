//! The alerts list: bypass attempts, quarantines and other high-severity events, newest
//! first, narrowed by status, technique, group, device and dates, with counts by status.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::csv::{document, download, opt};
use super::{Answer, Frame, Row, Shared, Signed, day_start, one_page, render, when};
use crate::db::events::{Filter, Stored};

/// Alerts on one page.
const PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    status: String,
    technique: String,
    group: String,
    device: String,
    /// `YYYY-MM-DD`, UTC.
    from: String,
    to: String,
    page: i64,
}

impl Params {
    pub fn filter(&self) -> Filter {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Filter {
            status: opt(&self.status),
            technique: opt(&self.technique),
            group: opt(&self.group),
            device: opt(&self.device),
            from_ms: day_start(&self.from),
            // The "to" day is included.
            to_ms: day_start(&self.to).map(|t| t + 86_400_000),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage<'a> {
    frame: Frame<'a>,
    params: &'a Params,
    rows: Vec<Row>,
    counts: Vec<(String, i64)>,
    total: i64,
    page: i64,
    more: bool,
}

pub async fn list(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let filter = params.filter();
    let page_no = params.page.max(0);
    let rows = app.db.alerts(&filter, PAGE + 1, page_no * PAGE).await?;
    let counts = app.db.alert_counts(&filter).await?;
    let (rows, more) = one_page(rows, PAGE);
    let rows = rows.into_iter().map(Row::of).collect();
    let total = counts.iter().map(|(_, n)| n).sum();
    render(&AlertsPage {
        frame: signed.frame(),
        params: &params,
        rows,
        counts,
        total,
        page: page_no,
        more,
    })
}

/// Events as CSV: outcome and action taken only for those who handle cases.
pub fn events_csv(events: &[Stored], cases: bool) -> String {
    let mut header = vec![
        "id",
        "time (UTC)",
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
                when(e.time_ms),
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

/// The filtered alerts list as CSV.
pub async fn export(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let rows = app.db.alerts(&params.filter(), CSV_ROWS, 0).await?;
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
        events_csv(&rows, signed.role().handles_cases()),
    ))
}

//! The alerts list: bypass attempts, quarantines and other high-severity events, newest
//! first, narrowed by status, technique, group, device and dates, with counts by status.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{Answer, Frame, Shared, Signed, render, when};
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
        let day = |s: &str| {
            s.trim()
                .parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp().as_millisecond())
        };
        Filter {
            status: opt(&self.status),
            technique: opt(&self.technique),
            group: opt(&self.group),
            device: opt(&self.device),
            from_ms: day(&self.from),
            // The "to" day is included.
            to_ms: day(&self.to).map(|t| t + 86_400_000),
        }
    }
}

#[derive(Debug)]
pub struct Row {
    pub e: Stored,
    pub when: String,
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
    let more = rows.len() as i64 > PAGE;
    let rows = rows
        .into_iter()
        .take(PAGE as usize)
        .map(|e| Row {
            when: when(e.time_ms),
            e,
        })
        .collect();
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

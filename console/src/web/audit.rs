//! The audit log page: sign-ins, every view of an alert or a device's history, every
//! action, newest first. It holds what was done and to what, never case detail, so both
//! roles read it.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::csv::{document, download, opt};
use super::{Answer, Frame, Shared, Signed, one_page, render};
use crate::db::audit::Entry;

/// Entries on one page.
const PAGE: i64 = 200;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    frame: Frame<'a>,
    rows: Vec<(String, Entry)>,
    page: i64,
    more: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    page: i64,
}

pub async fn list(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let page_no = params.page.max(0);
    let rows = app
        .db
        .audit_log(&signed.scope(), PAGE + 1, page_no * PAGE)
        .await?;
    let (rows, more) = one_page(rows, PAGE);
    let rows = rows
        .into_iter()
        .map(|e| (app.config.time_zone.when(e.time_ms), e))
        .collect();
    render(&AuditPage {
        frame: signed.frame(&app),
        rows,
        page: page_no,
        more,
    })
}

/// The audit log as CSV (the newest 100,000 entries).
pub async fn export(State(app): State<Shared>, signed: Signed) -> Answer {
    let rows = app
        .db
        .audit_log(&signed.scope(), super::alerts::CSV_ROWS, 0)
        .await?;
    signed.audit(&app, "export_audit", None, None).await?;
    let time = format!("time ({})", app.config.time_zone.name());
    let text = document(
        &[time.as_str(), "who", "action", "on", "detail", "from"],
        rows.iter().map(|e| {
            vec![
                app.config.time_zone.when_exact(e.time_ms),
                e.who.clone(),
                e.action.clone(),
                opt(&e.target),
                opt(&e.detail),
                opt(&e.address),
            ]
        }),
    );
    Ok(download("audit.csv", text))
}

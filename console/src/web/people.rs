//! People: find a pupil or member of staff by username or name, and one person's history
//! across every device they signed in on, newest first, with their quarantines and alerts.
//! Every search and every view of a person's history is audited; the case columns follow the
//! viewer's role as everywhere else.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::alert::{device_label, urlencode};
use super::alerts::{CSV_ROWS, events_csv};
use super::csv::download;
use super::{Answer, Frame, Row, Shared, Signed, one_page, render, see_other};
use crate::db::people::Found;

/// Events on one page of a person's history.
const PAGE: i64 = 200;
/// People listed for one search, at most.
const FOUND: i64 = 50;
/// The longest username looked up, in bytes (a directory's limit is 113).
const MAX_USERNAME: usize = 128;

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage<'a> {
    frame: Frame<'a>,
    q: &'a str,
    found: Vec<Found>,
    searched: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchParams {
    /// Part of a username or name.
    q: String,
}

pub async fn search(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<SearchParams>,
) -> Answer {
    let q = params.q.trim();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        signed.audit(&app, "search_people", Some(q), None).await?;
        app.db.find_people(q, FOUND).await?
    };
    // One match: straight to that person.
    if let [one] = found.as_slice() {
        return Ok(see_other(&format!("/people/{}", urlencode(&one.username))));
    }
    render(&PeoplePage {
        frame: signed.frame(),
        q,
        searched: !q.is_empty(),
        found,
    })
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonPage<'a> {
    frame: Frame<'a>,
    username: &'a str,
    name: Option<String>,
    class: Option<String>,
    group: Option<String>,
    /// The devices the person was seen on, newest first, each once.
    devices: Vec<(String, String)>,
    rows: Vec<Row>,
    page: i64,
    more: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryParams {
    page: i64,
}

pub async fn history(
    State(app): State<Shared>,
    signed: Signed,
    Path(username): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Answer {
    if username.is_empty() || username.len() > MAX_USERNAME {
        return Err(super::Refused::NotFound("person"));
    }
    signed
        .audit(&app, "view_person", Some(&username), None)
        .await?;
    let page_no = params.page.max(0);
    let rows = app
        .db
        .person_history(&username, PAGE + 1, page_no * PAGE)
        .await?;
    let (rows, more) = one_page(rows, PAGE);
    let latest = rows.first();
    let name = latest.and_then(|e| e.person_name.clone());
    let class = latest.and_then(|e| e.person_class.clone());
    let group = latest.and_then(|e| e.person_group.clone());
    let mut devices: Vec<(String, String)> = Vec::new();
    for e in &rows {
        let key = e
            .device_ip
            .clone()
            .or_else(|| e.device_mac.clone())
            .unwrap_or_default();
        if !key.is_empty() && !devices.iter().any(|(k, _)| *k == key) {
            devices.push((key, device_label(e)));
        }
    }
    let rows = rows.into_iter().map(Row::of).collect();
    render(&PersonPage {
        frame: signed.frame(),
        username: &username,
        name,
        class,
        group,
        devices,
        rows,
        page: page_no,
        more,
    })
}

/// One person's history as CSV.
pub async fn history_csv(
    State(app): State<Shared>,
    signed: Signed,
    Path(username): Path<String>,
) -> Answer {
    if username.is_empty() || username.len() > MAX_USERNAME {
        return Err(super::Refused::NotFound("person"));
    }
    let rows = app.db.person_history(&username, CSV_ROWS, 0).await?;
    signed
        .audit(&app, "export_person", Some(&username), None)
        .await?;
    Ok(download(
        "person-history.csv",
        events_csv(&rows, signed.role().handles_cases()),
    ))
}

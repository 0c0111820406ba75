//! People: find a pupil or member of staff by username or name, and one person's history
//! across every device they signed in on, newest first, with their quarantines and alerts.
//! Every search and every view of a person's history is audited; the case columns follow the
//! viewer's role as everywhere else. The DSL lifts a person's ban from school ICT here, or
//! eases it into supervised use for a while (sent to the gateway that last saw them).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::alert::{MAX_REASON, device_label, field, urlencode};
use super::alerts::{CSV_ROWS, events_csv};
use super::csv::download;
use super::{Answer, Frame, Refused, Row, Shared, Signed, now_ms, one_page, render, see_other};
use crate::db::people::Found;
use schoolgate_contract::status::SUPERVISED_MAX_MINUTES;

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
        app.db.find_people(&signed.scope(), q, FOUND).await?
    };
    // One match: straight to that person.
    if let [one] = found.as_slice() {
        return Ok(see_other(&format!("/people/{}", urlencode(&one.username))));
    }
    render(&PeoplePage {
        frame: signed.frame(&app),
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
    /// A release of the person's ban was just sent.
    sent: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryParams {
    page: i64,
    done: String,
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
        .person_history(&signed.scope(), &username, PAGE + 1, page_no * PAGE)
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
    let rows = rows
        .into_iter()
        .map(|e| Row::of(e, &app.config.time_zone))
        .collect();
    render(&PersonPage {
        frame: signed.frame(&app),
        username: &username,
        name,
        class,
        group,
        devices,
        rows,
        page: page_no,
        more,
        sent: params.done == "release",
    })
}

#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    csrf: String,
    reason: String,
    /// Minutes of supervised use; empty lifts the ban.
    #[serde(default)]
    supervised: String,
    /// After supervised use: `resume` or `end`.
    #[serde(default)]
    then: String,
}

/// Lifts a person's ban, or eases it into supervised use: a command to the gateway that
/// last reported them, audited.
pub async fn release(
    State(app): State<Shared>,
    signed: Signed,
    Path(username): Path<String>,
    Form(form): Form<ReleaseForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    signed.handles_cases()?;
    if username.is_empty() || username.len() > MAX_USERNAME {
        return Err(Refused::NotFound("person"));
    }
    let reason = field(&form.reason, MAX_REASON, "reason")?
        .ok_or_else(|| Refused::Bad("A release needs a reason. Go back and give one.".into()))?;
    let supervised = match form.supervised.trim() {
        "" => None,
        minutes => {
            let m = minutes
                .parse::<u32>()
                .ok()
                .filter(|m| (1..=SUPERVISED_MAX_MINUTES).contains(m))
                .ok_or_else(|| {
                    Refused::Bad(
                        format!(
                            "Supervised use is 1 to {SUPERVISED_MAX_MINUTES} minutes. Go back and correct it."
                        ),
                    )
                })?;
            let then = match form.then.as_str() {
                "end" => "end",
                "resume" | "" => "resume",
                _ => return Err(Refused::Bad("After supervised use: resume or end.".into())),
            };
            Some((m, then))
        }
    };
    // The gateway that last reported her, of those the user's school has.
    let latest = app
        .db
        .person_history(&signed.scope(), &username, 1, 0)
        .await?;
    let Some(last) = latest.first() else {
        return Err(Refused::NotFound("person"));
    };
    app.db
        .queue_person_release(
            &last.agent,
            &username,
            supervised,
            &reason,
            signed.name(),
            now_ms(),
        )
        .await?;
    let action = if supervised.is_some() {
        "supervise_person"
    } else {
        "release_person"
    };
    signed.audit(&app, action, Some(&username), None).await?;
    Ok(see_other(&format!(
        "/people/{}?done=release",
        urlencode(&username)
    )))
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
    let rows = app
        .db
        .person_history(&signed.scope(), &username, CSV_ROWS, 0)
        .await?;
    signed
        .audit(&app, "export_person", Some(&username), None)
        .await?;
    Ok(download(
        "person-history.csv",
        events_csv(&rows, &app.config.time_zone, signed.role().handles_cases()),
    ))
}

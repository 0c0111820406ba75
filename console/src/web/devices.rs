//! Devices: those in quarantine now (with release for the safeguarding lead), and one
//! device's history, newest first. Every view of a device's history is audited.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::alert::{RELEASE_SENT, device_label, queue_release, urlencode};
use super::alerts::{CSV_ROWS, events_csv};
use super::csv::download;
use super::{Answer, Frame, Refused, Row, Shared, Signed, one_page, render, see_other};
use crate::db::Scope;
use crate::db::devices::{DeviceKey, Quarantine};

/// Events on one page of a device's history.
const PAGE: i64 = 200;

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage<'a> {
    frame: Frame<'a>,
    quarantines: Vec<(String, String, Quarantine)>,
    message: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    /// A device to look up (IP, MAC or name): sends the browser to its history.
    device: String,
    done: String,
}

pub async fn list(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<ListParams>,
) -> Answer {
    if let Some(key) = DeviceKey::new(&params.device) {
        return Ok(see_other(&format!("/devices/{}", urlencode(key.as_str()))));
    }
    let quarantines = app
        .db
        .quarantines(&signed.scope())
        .await?
        .into_iter()
        .map(|q| {
            (
                app.config.time_zone.when(q.event.time_ms),
                device_label(&q.event),
                q,
            )
        })
        .collect();
    render(&DevicesPage {
        frame: signed.frame(&app),
        quarantines,
        message: (params.done == "release").then_some(RELEASE_SENT),
    })
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    frame: Frame<'a>,
    key: &'a str,
    /// The agent the history is narrowed to, if any.
    agent: &'a str,
    /// Without an agent, the agents that saw a device by this key, when more than one did:
    /// the page asks which is meant rather than merging them.
    choose: Vec<String>,
    rows: Vec<Row>,
    page: i64,
    more: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryParams {
    page: i64,
    /// The agent (gateway) that saw the device.
    agent: String,
}

/// `key` on `agent`, or, when no agent was named and several agents (of those `scope`
/// sees) saw a device by that key, those agents to choose from.
async fn which(
    app: &Shared,
    scope: &Scope,
    key: &str,
    agent: &str,
) -> Result<(DeviceKey, Vec<String>), Refused> {
    let key = DeviceKey::new(key)
        .ok_or(Refused::NotFound("device"))?
        .on(agent);
    if let Some(agent) = key.agent() {
        if !scope.is_trust() && !app.db.agent_in(scope, agent).await? {
            return Err(Refused::NotFound("device"));
        }
        return Ok((key, Vec::new()));
    }
    let agents = app.db.agents_of(scope, &key).await?;
    match agents.as_slice() {
        [one] => {
            let one = one.clone();
            Ok((key.on(&one), Vec::new()))
        }
        [] => Ok((key, Vec::new())),
        _ => Ok((key, agents)),
    }
}

pub async fn history(
    State(app): State<Shared>,
    signed: Signed,
    Path(key): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Answer {
    let scope = signed.scope();
    let (key, choose) = which(&app, &scope, &key, &params.agent).await?;
    if !choose.is_empty() {
        return render(&DevicePage {
            frame: signed.frame(&app),
            key: key.as_str(),
            agent: "",
            choose,
            rows: Vec::new(),
            page: 0,
            more: false,
        });
    }
    signed
        .audit(&app, "view_device", Some(&key.label()), None)
        .await?;
    let page_no = params.page.max(0);
    let rows = app
        .db
        .device_history(&scope, &key, PAGE + 1, page_no * PAGE)
        .await?;
    let (rows, more) = one_page(rows, PAGE);
    let rows = rows
        .into_iter()
        .map(|e| Row::of(e, &app.config.time_zone))
        .collect();
    render(&DevicePage {
        frame: signed.frame(&app),
        key: key.as_str(),
        agent: key.agent().unwrap_or(""),
        choose,
        rows,
        page: page_no,
        more,
    })
}

#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    csrf: String,
    /// The `quarantined` event that put the device there.
    event: String,
    reason: String,
}

/// Releases a device listed as in quarantine, from the devices page.
pub async fn release(
    State(app): State<Shared>,
    signed: Signed,
    Form(form): Form<ReleaseForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    signed.handles_cases()?;
    let e = match app.db.event(&signed.scope(), &form.event).await? {
        Some(e) if e.kind == schoolgate_contract::Kind::Quarantined => e,
        _ => return Err(Refused::NotFound("quarantine")),
    };
    queue_release(&app, &signed, &e, &form.reason).await?;
    Ok(see_other("/devices?done=release"))
}

/// One device's history as CSV.
pub async fn history_csv(
    State(app): State<Shared>,
    signed: Signed,
    Path(key): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Answer {
    let scope = signed.scope();
    let (key, choose) = which(&app, &scope, &key, &params.agent).await?;
    if !choose.is_empty() {
        return Err(Refused::Bad(
            "Several gateways saw a device by this name: open its page and choose one.".into(),
        ));
    }
    let rows = app.db.device_history(&scope, &key, CSV_ROWS, 0).await?;
    signed
        .audit(&app, "export_device", Some(&key.label()), None)
        .await?;
    Ok(download(
        "device-history.csv",
        events_csv(&rows, &app.config.time_zone, signed.role().handles_cases()),
    ))
}

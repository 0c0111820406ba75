//! Devices: those in quarantine now (with release for the safeguarding lead), and one
//! device's history, newest first. Every view of a device's history is audited.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::alert::{RELEASE_SENT, device_label, queue_release, urlencode};
use super::alerts::{CSV_ROWS, events_csv};
use super::csv::download;
use super::{Answer, Frame, Refused, Row, Shared, Signed, one_page, render, see_other, when};
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
        .quarantines()
        .await?
        .into_iter()
        .map(|q| (when(q.event.time_ms), device_label(&q.event), q))
        .collect();
    render(&DevicesPage {
        frame: signed.frame(),
        quarantines,
        message: (params.done == "release").then_some(RELEASE_SENT),
    })
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    frame: Frame<'a>,
    key: &'a str,
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
    Path(key): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Answer {
    let key = DeviceKey::new(&key).ok_or(Refused::NotFound("device"))?;
    signed
        .audit(&app, "view_device", Some(key.as_str()), None)
        .await?;
    let page_no = params.page.max(0);
    let rows = app
        .db
        .device_history(&key, PAGE + 1, page_no * PAGE)
        .await?;
    let (rows, more) = one_page(rows, PAGE);
    let rows = rows.into_iter().map(Row::of).collect();
    render(&DevicePage {
        frame: signed.frame(),
        key: key.as_str(),
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
    let e = match app.db.event(&form.event).await? {
        Some(e) if e.kind == "quarantined" => e,
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
) -> Answer {
    let key = DeviceKey::new(&key).ok_or(Refused::NotFound("device"))?;
    let rows = app.db.device_history(&key, CSV_ROWS, 0).await?;
    signed
        .audit(&app, "export_device", Some(key.as_str()), None)
        .await?;
    Ok(download(
        "device-history.csv",
        events_csv(&rows, signed.role().handles_cases()),
    ))
}

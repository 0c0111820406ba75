//! New alerts pushed to open alert pages over server-sent events. The agents' API
//! announces each batch that stored new alerts; `/alerts/live` streams them to every signed-in
//! page as JSON, and `/static/live.js` puts them at the top of the list with `textContent`
//! (so a name from a device is text there too). A page that falls behind is told to reload.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast;

use super::{Shared, Signed, when};
use schoolgate_contract::wire::Received;

/// Batches of alerts kept for pages that read slowly.
pub const BACKLOG: usize = 64;

/// One alert as a live page shows it: the alerts list's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Live {
    pub id: String,
    pub when: String,
    pub kind: String,
    pub device: String,
    pub ip: String,
    pub owner: String,
    pub group: String,
    pub name: String,
    pub technique: String,
    pub severity: String,
}

impl Live {
    pub fn of(e: &Received) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            id: e.id.to_string(),
            when: when(e.time.as_millisecond()),
            kind: e.kind.to_string(),
            device: text(&e.device.name),
            ip: e.device.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            owner: text(&e.device.owner),
            group: text(&e.group),
            name: text(&e.name),
            technique: e.technique.map(|t| t.to_string()).unwrap_or_default(),
            severity: e.severity.to_string(),
        }
    }
}

/// Where the agents' API announces new alerts.
pub type Announcer = broadcast::Sender<Arc<Vec<Live>>>;

/// Announces the alerts among `events` (a batch that stored something new). Pages drop
/// ids they already show, so a retried batch shows nothing twice.
pub fn announce(to: &Announcer, events: &[Received]) {
    let alerts: Vec<Live> = events
        .iter()
        .filter(|e| e.is_alert())
        .map(Live::of)
        .collect();
    if !alerts.is_empty() {
        // No page listening is not an error.
        let _ = to.send(Arc::new(alerts));
    }
}

/// How often an open stream re-checks its session when no alert comes.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// The stream of new alerts; 401 (not a redirect, which a stream cannot follow) without a
/// session. The session is checked again before each batch is sent and every [`RECHECK`]
/// (without counting as use), and the stream ends once it has ended: signed out, expired,
/// idle, or the user disabled.
pub async fn stream(
    State(app): State<Shared>,
    signed: Result<Signed, Response>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (Ok(_), Some(token)) = (
        signed,
        super::cookie(&headers, &app.cookie_name(super::SESSION_COOKIE)),
    ) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let session = crate::auth::token_hash(token);
    let rx = app.live.subscribe();
    let state = (rx, app, session);
    let events = futures_util::stream::unfold(state, |(mut rx, app, session)| async move {
        let event = loop {
            let next = tokio::select! {
                r = rx.recv() => Some(r),
                () = tokio::time::sleep(RECHECK) => None,
            };
            let idle_ms = app.config.session_idle_ms();
            let live = app
                .db
                .session_used(&session, super::now_ms(), idle_ms, false)
                .await;
            if !matches!(live, Ok(Some(_))) {
                return None;
            }
            match next {
                None => continue,
                Some(Ok(batch)) => {
                    break Event::default()
                        .event("alerts")
                        .json_data(&*batch)
                        .unwrap_or_else(|_| Event::default().event("reload"));
                }
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    break Event::default().event("reload");
                }
                Some(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        };
        Some((Ok::<_, Infallible>(event), (rx, app, session)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/live.js"),
    )
}

//! Incidents pushed to open incident lists over server-sent events. The agents' API
//! announces the incidents each batch started or changed; `/alerts/live` streams them to
//! every signed-in page as JSON, and `/static/live.js` puts a new one at the top of the list
//! and redraws one it shows, with `textContent` (so a name from a device is text there too).
//! A page that falls behind is told to reload.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast;

use super::Signed;
use super::alert::{risk, title};
use super::{App, Shared};
use crate::db::incidents::Incident;
use crate::zone::Zone;

/// Batches of alerts kept for pages that read slowly.
pub const BACKLOG: usize = 64;

/// One incident as a live page shows it: the incident list's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Live {
    pub id: String,
    pub when: String,
    pub title: String,
    pub risk: String,
    pub events: i64,
    pub status: String,
    pub severity: String,
    /// The school of the agent that reported it: a page is sent only the rows of its
    /// user's school. Never sent to the page.
    #[serde(skip)]
    pub school: Option<String>,
    /// That school's name, for a page that lists several schools.
    #[serde(rename = "school")]
    pub school_name: Option<String>,
}

impl Live {
    pub fn of(i: &Incident, zone: &Zone, school: Option<(String, String)>) -> Self {
        let (school, school_name) =
            school.map_or((None, None), |(id, name)| (Some(id), Some(name)));
        Self {
            school,
            school_name,
            id: i.id.clone(),
            when: zone.when(i.last_ms),
            title: title(i),
            risk: risk(i).to_owned(),
            events: i.events,
            status: i.status.clone(),
            severity: i.severity.to_string(),
        }
    }
}

/// Where the agents' API announces incidents started or changed.
pub type Announcer = broadcast::Sender<Arc<Vec<Live>>>;

/// Announces `incidents` (a batch's, started or changed), each with its agent's school
/// from `schools` (agent → the school's id and name). A page replaces a row it shows
/// already, so a retried batch adds nothing twice.
pub fn announce(
    to: &Announcer,
    incidents: &[Incident],
    zone: &Zone,
    schools: &std::collections::HashMap<String, (String, String)>,
) {
    if !incidents.is_empty() {
        let rows = incidents
            .iter()
            .map(|i| Live::of(i, zone, schools.get(&i.agent).cloned()))
            .collect();
        // No page listening is not an error.
        let _ = to.send(Arc::new(rows));
    }
}

/// Incidents `ids` were started or changed by a batch this console stored: announced here,
/// or on PostgreSQL told to every console sharing the database, this one too ([`follow`]).
pub async fn stored(app: &App, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    if app.db.postgres_url().is_some() {
        if let Err(e) = app.db.notify_incidents(ids).await {
            tracing::warn!(error = %e, "cannot tell the other consoles of new incidents");
        }
    } else {
        announce_named(app, ids).await;
    }
}

/// Reads incidents `ids` and announces them on this console. One that cannot be read is
/// stored all the same: the pages show it when next loaded.
async fn announce_named(app: &App, ids: &[String]) {
    let trust = crate::db::Scope::Trust;
    let read = async {
        let incidents = app.db.incidents_named(&trust, ids).await?;
        let of_agent = app.db.agent_schools(&trust).await?;
        Ok::<_, crate::db::DbError>((incidents, of_agent))
    };
    match read.await {
        Ok((incidents, of_agent)) => {
            let schools = of_agent
                .into_iter()
                .map(|(agent, id)| {
                    let name = app.config.school_name(&id).to_owned();
                    (agent, (id, name))
                })
                .collect();
            announce(&app.live, &incidents, &app.config.time_zone, &schools);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read incidents to announce"),
    }
}

/// Announces on this console the incidents other consoles (and this one) tell of through
/// PostgreSQL (`LISTEN`), so a page open on any console sharing the database sees what any
/// of them stored; listening again after a lost connection. `None` on SQLite, where one
/// console announces what it stores itself.
pub fn follow(app: Shared) -> Option<tokio::task::JoinHandle<()>> {
    let url = app.db.postgres_url()?.to_owned();
    Some(tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(crate::db::INCIDENTS_CHANNEL).await {
                        tracing::warn!(error = %e, "cannot listen for other consoles' incidents");
                    } else {
                        while let Ok(n) = listener.recv().await {
                            let ids: Vec<String> =
                                serde_json::from_str(n.payload()).unwrap_or_default();
                            announce_named(&app, &ids).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for other consoles' incidents"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    }))
}

/// How often an open stream re-checks its session when no alert comes.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// The stream of new alerts; 401 (not a redirect, which a stream cannot follow) without a
/// session. The session is checked again before each batch is sent and every [`RECHECK`]
/// (without counting as use), and the stream ends once it has ended: signed out, expired,
/// idle, or the user disabled. Each batch is cut to the rows of the user's school (as the
/// session says at that moment); one with none left is not sent.
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
            let scope = match live {
                Ok(Some(s)) => s.user.scope(),
                _ => return None,
            };
            match next {
                None => continue,
                Some(Ok(batch)) => {
                    let rows: Vec<&Live> = batch
                        .iter()
                        .filter(|r| scope.admits(r.school.as_deref()))
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    break Event::default()
                        .event("alerts")
                        .json_data(&rows)
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

//! The agents' API. Every call carries `Authorization: Bearer TOKEN`; the token's SHA-256
//! names the agent (only hashes are stored).
//!
//! - `POST /api/v1/events`: `{"agent", "events": [...], "status"?}` (at most [`MAX_BODY`]
//!   bytes, read only once the token is known) → `{"received": N,
//!   "new": M, "refused": [...]}`. Ids already stored are ignored, so a retried batch never
//!   duplicates; invalid events are refused with a reason and the rest stored.
//! - `GET /api/v1/commands`: the agent's pending commands (`{"commands": [...]}`).
//! - `POST /api/v1/commands/{id}/done`: the agent carried one out.
//! - `GET /api/v1/exceptions`: the agent's granted exceptions in force or to come
//!   (`{"exceptions": [...]}`, [`GrantedList`]).
//! - `POST /api/v1/explanations/{id}`: the agent's answer to a question the console asked
//!   it (an `explain` command), [`Explanation`].
//! - `POST /api/v1/policy`: the policy file the agent has in force (`{"fingerprint",
//!   "text"}`, at most [`MAX_POLICY_TEXT`] bytes of text), kept when it changed.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, internal, now_ms};
use crate::auth::token_hash;
use schoolgate_contract::granted::{Granted, GrantedList, MAX_POLICY_TEXT, PolicyText};
use schoolgate_contract::status::{Answer, Commands, Explanation, MAX_SENTENCE};
use schoolgate_contract::wire::parse_batch;

/// The agent the bearer token belongs to, or the 401 to answer.
async fn agent(app: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorised = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "a valid agent token is needed"})),
        )
            .into_response()
    };
    let Some(token) = token else {
        return Err(unauthorised());
    };
    match app.db.agent_by_token(&token_hash(token)).await {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(unauthorised()),
        Err(e) => Err(internal(&e)),
    }
}

/// The most of an agent's status kept, in bytes.
pub const MAX_STATUS: usize = 4096;

/// The largest batch body taken (agents send about 1 MiB at most).
pub const MAX_BODY: usize = 4 << 20;

pub async fn events(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    // The token first: nothing is read from a sender who has none. The read itself is
    // bounded in size here and in time by the server's request limit.
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": format!("a batch is at most {MAX_BODY} bytes")})),
            )
                .into_response();
        }
    };
    let batch = match parse_batch(&body) {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    if batch.agent != name {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": format!("this token is agent {name:?}'s, not {:?}'s", batch.agent)})),
        )
            .into_response();
    }
    let received = super::now();
    let now = received.as_millisecond();
    let events: Vec<_> = batch.events.into_iter().map(|e| e.at(received)).collect();
    let ingested = match app.db.ingest_batch(&name, &events, now).await {
        Ok(n) => n,
        Err(e) => return internal(&e),
    };
    let mut touched = ingested.incidents.clone();
    for id in thresholds(&app, &name, &events, &ingested.fresh).await {
        if !touched.contains(&id) {
            touched.push(id);
        }
    }
    super::live::stored(&app, &touched).await;
    // A status too long to keep is replaced whole, not cut: half a JSON text is no status.
    let status = batch.status.as_ref().map(|s| {
        let text = s.to_string();
        if text.len() <= MAX_STATUS {
            text
        } else {
            json!({"status_too_long_bytes": text.len()}).to_string()
        }
    });
    if let Err(e) = app.db.agent_seen(&name, status.as_deref(), now).await {
        return internal(&e);
    }
    let received = (events.len() + batch.refused.len()) as u64;
    let refused = batch
        .refused
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    Json(Answer {
        received,
        new: ingested.stored,
        refused,
    })
    .into_response()
}

pub async fn commands(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Err(e) = app.db.agent_seen(&name, None, now_ms()).await {
        return internal(&e);
    }
    match app.db.pending_commands(&name).await {
        Ok(commands) => Json(Commands { commands }).into_response(),
        Err(e) => internal(&e),
    }
}

pub async fn command_done(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    match app.db.command_done(&name, id, now_ms()).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such pending command"})),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

/// The name an exception is sent under: unique (the request's number) and readable in the
/// gateway's explanations ("youtube for 6B (request 12)").
pub fn granted_name(r: &crate::db::requests::ExceptionRequest) -> String {
    let whom: Vec<&str> = r
        .classes
        .iter()
        .chain(&r.groups)
        .chain(&r.people)
        .map(String::as_str)
        .collect();
    format!(
        "{} for {} (request {})",
        r.allow.join(", "),
        whom.join(", "),
        r.id
    )
}

/// How far ahead a repeating request's periods are sent: a gateway holds a week's lessons
/// (and a day more) from its own copy, through a console outage that long.
pub const AHEAD_MS: i64 = 8 * 24 * 3_600_000;

/// The periods of `r` a gateway is sent at `now_ms`: those not over and starting within
/// [`AHEAD_MS`], each named apart (a repeating request's by its date).
pub fn periods_sent(
    r: &crate::db::requests::ExceptionRequest,
    zone: &crate::zone::Zone,
    now_ms: i64,
) -> Vec<(String, i64, i64)> {
    let name = granted_name(r);
    r.periods(zone)
        .into_iter()
        .filter(|(from, to)| *to > now_ms && *from < now_ms.saturating_add(AHEAD_MS))
        .map(|(from, to)| {
            let named = if r.weeks > 1 {
                format!("{name}, {}", zone.date_of(from))
            } else {
                name.clone()
            };
            (named, from, to)
        })
        .collect()
}

pub async fn exceptions(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let granted = match app.db.granted(&name, now_ms()).await {
        Ok(g) => g,
        Err(e) => return internal(&e),
    };
    let time = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap_or_default();
    let now = now_ms();
    let zone = &app.config.time_zone;
    let exceptions = granted
        .iter()
        .flat_map(|r| {
            periods_sent(r, zone, now)
                .into_iter()
                .map(|(name, from, to)| Granted {
                    id: r.id,
                    name,
                    allow: r.allow.clone(),
                    groups: r.groups.clone(),
                    classes: r.classes.clone(),
                    people: r.people.clone(),
                    from: time(from),
                    to: time(to),
                    requested_by: r.requested_by.clone(),
                    approved_by: r.decided_by.clone().unwrap_or_default(),
                    reason: r.reason.clone(),
                })
        })
        .collect();
    Json(GrantedList { exceptions }).into_response()
}

pub async fn policy(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    // The text, JSON-escaped, and a little for the envelope.
    let Ok(body) = axum::body::to_bytes(body, 2 * MAX_POLICY_TEXT + 1024).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"error": format!("a policy is at most {MAX_POLICY_TEXT} bytes")})),
        )
            .into_response();
    };
    let policy: PolicyText = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("not a policy: {e}")})),
            )
                .into_response();
        }
    };
    if policy.text.len() > MAX_POLICY_TEXT || policy.fingerprint.len() > 64 {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"error": format!("a policy is at most {MAX_POLICY_TEXT} bytes")})),
        )
            .into_response();
    }
    match app
        .db
        .put_policy(&name, &policy.fingerprint, &policy.text, now_ms())
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(&e),
    }
}

/// Runs `console.yaml`'s threshold rules over the events of a batch just stored (`fresh`):
/// the incidents they started or grew. A rule with `during` needs the agent's policy; without
/// one it counts nothing yet.
async fn thresholds(
    app: &Shared,
    agent: &str,
    events: &[schoolgate_contract::wire::Received],
    fresh: &[String],
) -> Vec<String> {
    let rules = &app.config.thresholds;
    let mut out = Vec::new();
    if rules.is_empty() {
        return out;
    }
    let mut policy = None;
    for e in events.iter().filter(|e| fresh.contains(&e.id.to_string())) {
        for rule in rules.iter().filter(|r| r.matches(e)) {
            if let Some(schedule) = &rule.during {
                if policy.is_none() {
                    policy = Some(super::requests::policy_of(app, agent).await.ok());
                }
                let at = e.time.as_second();
                let inside = policy.as_ref().and_then(Option::as_ref).is_some_and(|p| {
                    p.schedules()
                        .iter()
                        .any(|s| s.name == *schedule && s.state(at).active)
                });
                if !inside {
                    continue;
                }
            }
            match app.db.threshold_hit(agent, rule, e).await {
                Ok(Some(id)) if !out.contains(&id) => out.push(id),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, rule = %rule.name, "cannot count a threshold"),
            }
        }
    }
    out
}

pub async fn explanation(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Body,
) -> Response {
    let name = match agent(&app, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let answer: Explanation = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("not an explanation: {e}")})),
            )
                .into_response();
        }
    };
    // Bounded and cleaned as an event's text is: it is shown on a page.
    let sentence = schoolgate_contract::text::bounded_to(&answer.sentence, MAX_SENTENCE);
    let decision = answer.decision.to_string();
    match app
        .db
        .answer_explanation(&name, id, &sentence, &decision, now_ms())
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such question waiting for this agent"})),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

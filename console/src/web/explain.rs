//! Explain in the browser: IT (or the DSL) asks why a site is blocked or allowed for a
//! device, and the person signed in on it, at a time, and until when. The gateway answers
//! with the same decision function and the same words as `schoolgate-agent explain`, since
//! only it has the lists and the directory: the question goes to it as a command (within
//! seconds), and this page waits for the answer, reloading itself.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render, see_other};
use crate::db::explanations::{Ask, Asked};

#[derive(Template)]
#[template(path = "explain.html")]
struct ExplainPage<'a> {
    frame: Frame<'a>,
    agents: Vec<String>,
    now: String,
}

pub async fn page(State(app): State<Shared>, signed: Signed) -> Answer {
    let agents = app
        .db
        .agents(&signed.scope())
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    render(&ExplainPage {
        frame: signed.frame(&app),
        agents,
        now: app.config.time_zone.minute(now_ms()),
    })
}

#[derive(Debug, Deserialize)]
pub struct AskForm {
    csrf: String,
    agent: String,
    client: String,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    person: String,
    name: String,
    #[serde(default)]
    at: String,
}

/// `text` trimmed, `None` when empty; refused when longer than `max` or holding spaces or
/// control characters (a name, address or username has none).
fn word(text: &str, max: usize, what: &str) -> Result<Option<String>, Refused> {
    let t = text.trim();
    if t.chars().count() > max || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refused::Bad(format!("The {what} is not one.")));
    }
    Ok(Some(t.to_owned()).filter(|t| !t.is_empty()))
}

pub async fn ask(State(app): State<Shared>, signed: Signed, Form(form): Form<AskForm>) -> Answer {
    signed.form_ok(&form.csrf)?;
    if !app.db.agent_in(&signed.scope(), &form.agent).await? {
        return Err(Refused::Bad("Choose a gateway.".into()));
    }
    let client: std::net::IpAddr = form
        .client
        .trim()
        .parse()
        .map_err(|_| Refused::Bad("The device's address is not an IP address.".into()))?;
    let mac = word(&form.mac, 17, "hardware address")?;
    let person = word(&form.person, 64, "username")?;
    let name =
        word(&form.name, 253, "site's name")?.ok_or_else(|| Refused::Bad("Which site?".into()))?;
    let now = now_ms();
    let at_ms = if form.at.trim().is_empty() {
        now
    } else {
        app.config
            .time_zone
            .local(&form.at)
            .ok_or_else(|| Refused::Bad("The time is not a date and time.".into()))?
    };
    let client = client.to_string();
    let id = app
        .db
        .ask_explanation(
            &Ask {
                agent: &form.agent,
                asked_by: signed.name(),
                client: &client,
                mac: mac.as_deref(),
                person: person.as_deref(),
                name: &name,
                at_ms,
            },
            now,
        )
        .await?;
    let detail = format!(
        "{client}{}",
        person
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    signed
        .audit(&app, "explain", Some(&name), Some(&detail))
        .await?;
    Ok(see_other(&format!("/explain/{id}")))
}

#[derive(Template)]
#[template(path = "explanation.html")]
struct AnswerPage<'a> {
    frame: Frame<'a>,
    a: &'a Asked,
    at: String,
    /// The decision, indented, when answered.
    decision: Option<String>,
}

pub async fn answer(State(app): State<Shared>, signed: Signed, Path(id): Path<i64>) -> Answer {
    let a = app
        .db
        .explanation(&signed.scope(), id)
        .await?
        .ok_or(Refused::NotFound("explanation"))?;
    let decision = a.decision.as_deref().map(|d| {
        serde_json::from_str::<serde_json::Value>(d)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| d.to_owned())
    });
    render(&AnswerPage {
        frame: signed.frame(&app),
        at: app.config.time_zone.when(a.at_ms),
        decision,
        a: &a,
    })
}

//! Teachers' requests for exceptions: a teacher asks for a category for a class, a group or
//! named pupils, now for some minutes or for the next lesson, and says why; an approver (a
//! Director, or the DSL, as `console.yaml` says) approves or declines; the gateway applies an
//! approved one within seconds (see the agents' API) until it ends or is revoked.
//!
//! What may be asked for is the policy's `requests:` section, read from the policy the
//! gateway sent: the form offers only that, and each request and each approval is checked
//! against it ([`schoolgate_engine::Policy::may_ask`]). A teacher sees their own requests
//! only, and nothing of pupils' activity. Every step is audited.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use schoolgate_engine::policy::Target;
use schoolgate_engine::{Ask, Policy};
use serde::Deserialize;

use super::alert::field;
use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render, see_other};
use crate::auth::Role;
use crate::db::requests::{
    APPROVED, DECLINED, ExceptionRequest, MAX_WEEKS, NewRequest, REQUESTED, REVOKED,
};

/// Requests listed at most.
const LISTED: i64 = 200;
/// Names in one list of a request (classes, groups, pupils) at most, and their length.
const MAX_NAMES: usize = 60;
const MAX_NAME: usize = 64;
const MAX_REASON: usize = 500;

/// The policy `agent` sent last, compiled (kept while its text is the same).
pub async fn policy_of(app: &Shared, agent: &str) -> Result<Arc<Policy>, Refused> {
    let sent = app.db.policy_of(agent).await?.ok_or_else(|| {
        Refused::Bad(format!(
            "The gateway {agent} has not sent its policy to the console yet: try again in a minute."
        ))
    })?;
    {
        let cache = app.policies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = cache.iter().find(|(t, _)| **t == *sent.text) {
            return Ok(Arc::clone(p));
        }
    }
    // Lists are not needed to check requests or find lessons: none is read.
    let no_lists = |_: &std::path::Path| Ok(String::new());
    let policy = Policy::from_yaml(&sent.text, std::path::Path::new("policy.yaml"), &no_lists)
        .map_err(|e| {
            Refused::Bad(format!(
                "The console cannot read the gateway {agent}'s policy: {}",
                e.iter().next().map(ToString::to_string).unwrap_or_default()
            ))
        })?;
    let policy = Arc::new(policy);
    let mut cache = app.policies.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(t, _)| **t != *sent.text);
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((Arc::from(sent.text.as_str()), Arc::clone(&policy)));
    Ok(policy)
}

/// A category's label in `policy` ("YouTube"), else its name.
fn label(policy: Option<&Policy>, name: &str) -> String {
    policy
        .and_then(|p| {
            p.targets().iter().find_map(|t| match t {
                Target::Category { name: n, label, .. } if n == name => Some(label.clone()),
                _ => None,
            })
        })
        .unwrap_or_else(|| name.to_owned())
}

/// A request as the page lists it.
#[derive(Debug)]
pub struct Listed {
    pub r: ExceptionRequest,
    pub what: String,
    pub whom: String,
    /// "2026-12-04 13:00 to 14:00".
    pub when: String,
    pub decided: String,
    /// Still to come or under way.
    pub live: bool,
    pub may_decide: bool,
    pub may_revoke: bool,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage<'a> {
    frame: Frame<'a>,
    message: Option<&'static str>,
    agents: Vec<String>,
    agent: String,
    /// (category name, label) the policy lets be asked for.
    categories: Vec<(String, String)>,
    /// (schedule name, label) for "the next lesson".
    schedules: Vec<(String, String)>,
    longest: u32,
    waiting: Vec<Listed>,
    listed: Vec<Listed>,
    mine_only: bool,
    approver: bool,
    unreadable: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    agent: String,
    /// A fixed message code from a form's redirect.
    done: String,
}

fn may_approve(app: &Shared, role: Role) -> bool {
    app.config.request_approvers.contains(&role)
}

pub async fn page(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let scope = signed.scope();
    let agents: Vec<String> = app
        .db
        .agents(&scope)
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let agent = if agents.contains(&params.agent) {
        params.agent.clone()
    } else {
        agents.first().cloned().unwrap_or_default()
    };
    let (policy, unreadable) = if agent.is_empty() {
        (None, None)
    } else {
        match policy_of(&app, &agent).await {
            Ok(p) => (Some(p), None),
            Err(Refused::Bad(why)) => (None, Some(why)),
            Err(other) => return Err(other),
        }
    };
    let mut categories: Vec<(String, String)> = Vec::new();
    let mut longest = 0;
    if let Some(p) = &policy {
        for rule in p.request_rules() {
            longest = longest.max(rule.longest_minutes);
            for name in &rule.allow_names {
                if !categories.iter().any(|(n, _)| n == name) {
                    categories.push((name.clone(), label(Some(p), name)));
                }
            }
        }
    }
    let schedules = policy
        .as_ref()
        .map(|p| {
            p.schedules()
                .iter()
                .filter(|s| !s.is_always())
                .map(|s| (s.name.clone(), s.label.clone()))
                .collect()
        })
        .unwrap_or_default();
    let role = signed.role();
    let approver = may_approve(&app, role);
    // A teacher sees their own; those who decide, and the DSL and IT, see every request.
    let mine_only = !(approver || role.sees_records());
    let requests = app
        .db
        .requests(&scope, mine_only.then(|| signed.name()), LISTED)
        .await?;
    let zone = &app.config.time_zone;
    let now = now_ms();
    let shown = |r: ExceptionRequest| {
        let live = r.until_ms > now;
        let decided = match (&r.decided_by, r.decided_ms) {
            (Some(by), Some(at)) => format!("{by}, {}", zone.span(at, at)),
            _ => String::new(),
        };
        Listed {
            what: r
                .allow
                .iter()
                .map(|a| label(policy.as_deref(), a))
                .collect::<Vec<_>>()
                .join(", "),
            whom: whom(&r),
            when: if r.weeks > 1 {
                format!(
                    "{}, and the same each week to {} ({} times)",
                    zone.span(r.from_ms, r.to_ms),
                    zone.date_of(r.until_ms),
                    r.weeks
                )
            } else {
                zone.span(r.from_ms, r.to_ms)
            },
            decided,
            may_decide: approver
                && live
                && r.status == REQUESTED
                && r.requested_by != signed.name(),
            may_revoke: live
                && (r.status == APPROVED || r.status == REQUESTED)
                && (approver || r.requested_by == signed.name()),
            live,
            r,
        }
    };
    let (waiting, listed): (Vec<Listed>, Vec<Listed>) =
        requests.into_iter().map(shown).partition(|l| l.may_decide);
    let message = match params.done.as_str() {
        "asked" => Some("Request sent: an approver will decide it."),
        "approved" => Some("Approved: the gateway applies it within seconds."),
        "declined" => Some("Declined."),
        "revoked" => Some("Revoked: the gateway stops applying it within seconds."),
        _ => None,
    };
    render(&RequestsPage {
        frame: signed.frame(&app),
        message,
        agents,
        agent,
        categories,
        schedules,
        longest,
        waiting,
        listed,
        mine_only,
        approver,
        unreadable,
    })
}

/// Whether `policy` lets a request for these categories, groups, classes and pupils be made
/// for `[from_ms, to_ms)` (its length in whole minutes, rounded up).
fn may_ask(
    policy: &Policy,
    (allow, groups, classes, people): (&[String], &[String], &[String], &[String]),
    (from_ms, to_ms): (i64, i64),
) -> Result<(), schoolgate_engine::AskRefused> {
    let minutes = u32::try_from((to_ms - from_ms + 59_999) / 60_000).unwrap_or(u32::MAX);
    policy
        .may_ask(&Ask {
            allow,
            groups,
            classes,
            people: people.len(),
            minutes,
        })
        .map(|_| ())
}

/// "6B, pupils, amira.k": whom a request is for.
pub fn whom(r: &ExceptionRequest) -> String {
    r.classes
        .iter()
        .map(|c| format!("class {c}"))
        .chain(r.groups.iter().map(|g| format!("group {g}")))
        .chain(r.people.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names in `text` (separated by commas or spaces), bounded and plain.
fn names(text: &str, what: &str) -> Result<Vec<String>, Refused> {
    let mut out: Vec<String> = Vec::new();
    for n in text.split(|c: char| c == ',' || c.is_whitespace()) {
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        if n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
            return Err(Refused::Bad(format!("{what}: {n:?} is not a name.")));
        }
        if !out.iter().any(|x| x == n) {
            out.push(n.to_owned());
        }
    }
    if out.len() > MAX_NAMES {
        return Err(Refused::Bad(format!(
            "{what}: at most {MAX_NAMES} in one request."
        )));
    }
    Ok(out)
}

/// The site named in `text`, as a teacher may paste it (`https://www.bbc.co.uk/bitesize`
/// is `www.bbc.co.uk`): `None` when empty; refused when it is not a site's name.
fn site(text: &str) -> Result<Option<String>, Refused> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let host = t.split_once("://").map_or(t, |(_, rest)| rest);
    let host = host
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ok = host.contains('.')
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(Some(host))
    } else {
        Err(Refused::Bad(format!(
            "{:?} is not a site's name (for example www.bbc.co.uk).",
            schoolgate_contract::text::bounded_to(t, 80)
        )))
    }
}

#[derive(Debug, Deserialize)]
pub struct AskForm {
    csrf: String,
    agent: String,
    allow: String,
    /// A site alone instead of a whole category (a name, or an address pasted whole).
    #[serde(default)]
    site: String,
    #[serde(default)]
    classes: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    people: String,
    /// `now` (for `minutes`) or `lesson` (the next window of `schedule`).
    when: String,
    #[serde(default)]
    minutes: String,
    /// For a lesson: the same period each week, this many times in all (empty: once).
    #[serde(default)]
    weeks: String,
    #[serde(default)]
    schedule: String,
    reason: String,
}

pub async fn ask(State(app): State<Shared>, signed: Signed, Form(form): Form<AskForm>) -> Answer {
    signed.form_ok(&form.csrf)?;
    let reason = field(&form.reason, MAX_REASON, "reason")?
        .ok_or_else(|| Refused::Bad("Say why: the approver reads it.".into()))?;
    let allow = match site(&form.site)? {
        Some(site) => vec![site],
        None => names(&form.allow, "What")?,
    };
    let classes = names(&form.classes, "Classes")?;
    let groups = names(&form.groups, "Groups")?;
    let people = names(&form.people, "Pupils")?;
    if !app.db.agent_in(&signed.scope(), &form.agent).await? {
        return Err(Refused::Bad("Choose a gateway.".into()));
    }
    let policy = policy_of(&app, &form.agent).await?;
    let now = now_ms();
    let (from_ms, to_ms) = match form.when.as_str() {
        "now" => {
            let minutes: i64 = form
                .minutes
                .trim()
                .parse()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| Refused::Bad("For how many minutes?".into()))?;
            (now, now.saturating_add(minutes.saturating_mul(60_000)))
        }
        "lesson" => {
            let schedule = policy
                .schedules()
                .iter()
                .find(|s| s.name == form.schedule.trim() && !s.is_always())
                .ok_or_else(|| Refused::Bad("Choose which timetable's lesson.".into()))?;
            let (start, end) = schedule
                .current_or_next(now.div_euclid(1000))
                .ok_or_else(|| Refused::Bad("No such lesson is coming.".into()))?;
            (start.saturating_mul(1000), end.saturating_mul(1000))
        }
        _ => return Err(Refused::Bad("Choose now or the next lesson.".into())),
    };
    let weeks: i64 = match (form.when.as_str(), form.weeks.trim()) {
        (_, "") | ("now", _) => 1,
        (_, n) => n
            .parse()
            .ok()
            .filter(|w| (1..=MAX_WEEKS).contains(w))
            .ok_or_else(|| {
                Refused::Bad(format!(
                    "Each week for 1 to {MAX_WEEKS} weeks (about a term)."
                ))
            })?,
    };
    let zone = &app.config.time_zone;
    let until_ms = zone.weeks_later(to_ms, weeks - 1);
    may_ask(
        &policy,
        (&allow, &groups, &classes, &people),
        (from_ms, to_ms),
    )
    .map_err(|why| Refused::Bad(format!("This cannot be asked for: {why}.")))?;
    let id = app
        .db
        .add_request(
            &NewRequest {
                agent: &form.agent,
                requested_by: signed.name(),
                allow: &allow,
                groups: &groups,
                classes: &classes,
                people: &people,
                from_ms,
                to_ms,
                weeks,
                until_ms,
                reason: &reason,
            },
            now,
        )
        .await?;
    signed
        .audit(
            &app,
            "request_exception",
            Some(&format!("request {id}")),
            None,
        )
        .await?;
    Ok(see_other("/requests?done=asked"))
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Request `id`, if it is for a gateway of `signed`'s school.
async fn the_request(app: &Shared, signed: &Signed, id: i64) -> Result<ExceptionRequest, Refused> {
    app.db
        .request(&signed.scope(), id)
        .await?
        .ok_or(Refused::NotFound("request"))
}

/// Approves or declines request `id` (`to`), by an approver who did not ask for it.
async fn decide(
    app: &Shared,
    signed: &Signed,
    id: i64,
    form: &DecideForm,
    to: &'static str,
) -> Result<(), Refused> {
    signed.form_ok(&form.csrf)?;
    if !may_approve(app, signed.role()) {
        return Err(Refused::Forbidden(
            "Only an approver's account decides requests.",
        ));
    }
    let r = the_request(app, signed, id).await?;
    if r.requested_by == signed.name() {
        return Err(Refused::Forbidden(
            "A request is decided by someone other than who asked for it.",
        ));
    }
    if to == APPROVED {
        // The policy may have changed since it was asked for: IT's word is the last.
        let policy = policy_of(app, &r.agent).await?;
        may_ask(
            &policy,
            (&r.allow, &r.groups, &r.classes, &r.people),
            (r.from_ms, r.to_ms),
        )
        .map_err(|why| Refused::Bad(format!("The policy no longer allows it: {why}.")))?;
    }
    let note = field(&form.note, MAX_REASON, "note")?;
    if !app
        .db
        .decide_request(id, REQUESTED, to, signed.name(), note.as_deref(), now_ms())
        .await?
    {
        return Err(Refused::Bad(
            "The request was decided already, withdrawn, or is over.".into(),
        ));
    }
    let action = if to == APPROVED {
        "approve_request"
    } else {
        "decline_request"
    };
    signed
        .audit(app, action, Some(&format!("request {id}")), None)
        .await
}

pub async fn approve(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Answer {
    decide(&app, &signed, id, &form, APPROVED).await?;
    Ok(see_other("/requests?done=approved"))
}

pub async fn decline(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Answer {
    decide(&app, &signed, id, &form, DECLINED).await?;
    Ok(see_other("/requests?done=declined"))
}

/// Revokes request `id`: an approver, or who asked for it, while it is waiting or in force.
pub async fn revoke(
    State(app): State<Shared>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    let r = the_request(&app, &signed, id).await?;
    if !(may_approve(&app, signed.role()) || r.requested_by == signed.name()) {
        return Err(Refused::Forbidden(
            "Only an approver, or who asked for it, revokes a request.",
        ));
    }
    let note = field(&form.note, MAX_REASON, "note")?;
    let mut done = false;
    for from in [APPROVED, REQUESTED] {
        done = done
            || app
                .db
                .decide_request(id, from, REVOKED, signed.name(), note.as_deref(), now_ms())
                .await?;
    }
    if !done {
        return Err(Refused::Bad(
            "The request is not waiting or in force: nothing to revoke.".into(),
        ));
    }
    signed
        .audit(&app, "revoke_request", Some(&format!("request {id}")), None)
        .await?;
    Ok(see_other("/requests?done=revoked"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::site;

    /// What a teacher pastes: a site's name comes out of an address, and nothing else is
    /// taken for one, however odd (never a panic, never more than a name's 253 bytes).
    #[test]
    fn a_site_is_read_from_what_a_teacher_pastes() {
        for (pasted, name) in [
            ("https://www.BBC.co.uk/bitesize?x=1#top", "www.bbc.co.uk"),
            ("http://user@media.example:8080/a", "media.example"),
            ("  youtube.com.  ", "youtube.com"),
        ] {
            assert_eq!(site(pasted).unwrap().as_deref(), Some(name), "{pasted}");
        }
        assert_eq!(site("   ").unwrap(), None);
        let long = "a.".repeat(200);
        let odd = [
            "not a site",
            "localhost",
            "://",
            "@:/",
            "a..b",
            "é.example",
            "\u{202e}evil.example",
            &long,
            "https://",
            "xn--.-.",
        ];
        for text in odd {
            match site(text) {
                Ok(Some(name)) => assert!(
                    name.len() <= 253
                        && name.contains('.')
                        && name.bytes().all(|b| b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || b"-.".contains(&b)),
                    "{text:?} → {name:?}"
                ),
                Ok(None) => panic!("{text:?} read as empty"),
                Err(_) => {}
            }
        }
        assert!(site(&long).is_err());
    }
}

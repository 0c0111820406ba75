//! The policy in force on each gateway, read-only, for IT: as the agent sent it (with its
//! fingerprint and when it arrived), its groups and who is in them, a week's grid of when
//! each group's rules apply (from the compiled schedules and the term calendar: this week or
//! any chosen week, days in the school's time), the exceptions in force and to come (the
//! file's own and the approved requests), and the history of changes.

use askama::Template;
use axum::extract::{Query, State};
use schoolgate_engine::Policy;
use schoolgate_engine::policy::{Action, Groups, Target};
use serde::Deserialize;

use super::{Answer, Frame, Shared, Signed, now_ms, render};
use crate::db::requests::AgentPolicy;

/// Changes listed in the history at most.
const HISTORY: i64 = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    agent: String,
    /// Any day of the week to show (`YYYY-MM-DD`); default this week.
    week: String,
}

/// A group as the page shows it.
#[derive(Debug)]
pub struct GroupRow {
    pub name: String,
    pub description: String,
    pub members: String,
    /// The rules that speak of it, in order: (rule, what it does, one entry a day).
    pub rules: Vec<(String, String, Vec<String>)>,
}

/// An exception as the page shows it.
#[derive(Debug)]
pub struct ExceptionRow {
    pub name: String,
    pub opens: String,
    pub whom: String,
    pub from: String,
    pub to: String,
    pub by: String,
    pub now: bool,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage<'a> {
    frame: Frame<'a>,
    agents: Vec<String>,
    agent: String,
    sent: Option<(String, String)>,
    problem: Option<String>,
    days: Vec<String>,
    week: String,
    previous: String,
    next: String,
    groups: Vec<GroupRow>,
    exceptions: Vec<ExceptionRow>,
    history: Vec<(i64, String, String)>,
    text: String,
}

/// The targets' names ("YouTube, social networking").
fn names(policy: &Policy, ids: &[schoolgate_engine::domain::TargetId]) -> String {
    ids.iter()
        .filter_map(|id| policy.target(*id))
        .map(|t| match t {
            Target::Category { label, .. } => label.clone(),
            Target::Domains { domains } => domains.join(", "),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn page(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Answer {
    let zone = &app.config.time_zone;
    let agents: Vec<String> = app
        .db
        .agents(&signed.scope())
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let agent = if agents.contains(&params.agent) {
        params.agent.clone()
    } else {
        agents.first().cloned().unwrap_or_default()
    };
    let now = now_ms();
    let day = zone.day_start(&params.week).unwrap_or(now);
    let (from, to) = zone.week_of(day);
    let days: Vec<i64> = (0..7).map(|d| zone.add_days(from, d)).collect();
    let sent: Option<AgentPolicy> = app.db.policy_of(&agent).await?;
    let (policy, problem) = match super::requests::policy_of(&app, &agent).await {
        Ok(p) => (Some(p), None),
        Err(super::Refused::Bad(why)) => (None, Some(why)),
        Err(other) => return Err(other),
    };
    let mut groups = Vec::new();
    let mut exceptions = Vec::new();
    if let Some(p) = &policy {
        for (gi, g) in p.groups().iter().enumerate() {
            let id = schoolgate_engine::policy::GroupId(u32::try_from(gi).unwrap_or(u32::MAX));
            let devices = p.devices().iter().filter(|d| d.group == id).count();
            let mut members = Vec::new();
            if !g.networks.is_empty() {
                members.push(
                    g.networks
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            if devices > 0 {
                members.push(format!("{devices} device(s) by name"));
            }
            if !g.directory.is_empty() {
                members.push(format!("directory: {}", g.directory.join(", ")));
            }
            if !g.users.is_empty() {
                members.push(format!("{} named user(s)", g.users.len()));
            }
            let mut rules = Vec::new();
            for rule in p.rules() {
                let speaks = match &rule.groups {
                    Groups::All => true,
                    Groups::Some(ids) => ids.contains(&id),
                };
                if !speaks {
                    continue;
                }
                let what = format!(
                    "{} {}",
                    match rule.action {
                        Action::Allow => "allows",
                        Action::Block => "blocks",
                    },
                    names(p, &rule.targets)
                );
                let schedule = p.schedule(rule.when);
                let per_day = days
                    .iter()
                    .map(|start| {
                        let end = zone.add_days(*start, 1);
                        let Some(s) = schedule else {
                            return String::new();
                        };
                        if s.is_always() {
                            return "all day".to_owned();
                        }
                        let windows: Vec<String> = s
                            .windows_between(start / 1000, end / 1000, p.calendar())
                            .into_iter()
                            .filter(|w| w.start < end / 1000 && w.end > start / 1000)
                            .map(|w| {
                                let a = zone.when(w.start.max(start / 1000) * 1000);
                                let b = zone.when(w.end.min(end / 1000) * 1000);
                                format!(
                                    "{}–{}",
                                    a.get(11..16).unwrap_or_default(),
                                    b.get(11..16).unwrap_or_default()
                                )
                            })
                            .collect();
                        if windows.is_empty() {
                            "—".to_owned()
                        } else {
                            windows.join(", ")
                        }
                    })
                    .collect();
                rules.push((rule.name.clone(), what, per_day));
            }
            groups.push(GroupRow {
                name: g.name.clone(),
                description: g.description.clone().unwrap_or_default(),
                members: members.join("; "),
                rules,
            });
        }
        for e in p.exceptions() {
            let to_ms = e.to.as_millisecond();
            if to_ms <= now {
                continue;
            }
            let whom: Vec<String> = e
                .groups
                .iter()
                .filter_map(|g| p.group(*g).map(|g| g.name.clone()))
                .chain(
                    e.devices
                        .iter()
                        .filter_map(|d| p.device(*d).map(|d| d.name.clone())),
                )
                .chain(e.networks.iter().map(ToString::to_string))
                .chain(
                    e.classes
                        .iter()
                        .filter_map(|c| p.class_name(*c).map(|c| format!("class {c}"))),
                )
                .chain(
                    e.people
                        .iter()
                        .filter_map(|u| p.username(*u).map(str::to_owned)),
                )
                .collect();
            exceptions.push(ExceptionRow {
                name: e.name.clone(),
                opens: names(p, &e.targets),
                whom: whom.join(", "),
                from: zone.when(e.from.as_millisecond()),
                to: zone.when(to_ms),
                by: e.approved_by.clone(),
                now: e.from.as_millisecond() <= now,
            });
        }
    }
    // The approved requests the gateway is sent, beside the file's own.
    for r in app.db.granted(&agent, now).await? {
        for (name, from_ms, to_ms) in super::api::periods_sent(&r, zone, now) {
            exceptions.push(ExceptionRow {
                name,
                opens: r.allow.join(", "),
                whom: super::requests::whom(&r),
                from: zone.when(from_ms),
                to: zone.when(to_ms),
                by: format!("{} (console)", r.decided_by.clone().unwrap_or_default()),
                now: from_ms <= now,
            });
        }
    }
    let history = app
        .db
        .policy_history(&agent, HISTORY)
        .await?
        .into_iter()
        .map(|p| (p.id, zone.when(p.received_ms), p.fingerprint))
        .collect();
    render(&PolicyPage {
        frame: signed.frame(&app),
        agents,
        agent,
        problem,
        days: days.iter().map(|d| zone.day_of(*d)).collect(),
        week: zone.date_of(from),
        previous: zone.date_of(zone.add_days(from, -7)),
        next: zone.date_of(to),
        groups,
        exceptions,
        history,
        text: sent.as_ref().map(|s| s.text.clone()).unwrap_or_default(),
        sent: sent.map(|s| (s.fingerprint, zone.when(s.received_ms))),
    })
}

/// A line of a change: `+` added, `-` removed, ` ` kept.
#[derive(Debug)]
pub struct Line {
    pub sign: char,
    pub text: String,
}

#[derive(Template)]
#[template(path = "policy_change.html")]
struct ChangePage<'a> {
    frame: Frame<'a>,
    agent: String,
    fingerprint: String,
    when: String,
    before: Option<(String, String)>,
    lines: Vec<Line>,
}

/// Lines of unchanged text kept around each change.
const CONTEXT: usize = 3;

/// `/policy/changes/{id}`: what policy `id` changed from the one its gateway applied before,
/// line by line (the whole file when it is the first).
pub async fn change(
    State(app): State<Shared>,
    signed: Signed,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Answer {
    let zone = &app.config.time_zone;
    let (this, before) = app
        .db
        .policy_change(&signed.scope(), id)
        .await?
        .ok_or(super::Refused::NotFound("policy"))?;
    let old = before.as_ref().map(|b| b.text.as_str()).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(old, &this.text);
    let mut lines = Vec::new();
    for (i, group) in diff.grouped_ops(CONTEXT).iter().enumerate() {
        if i > 0 {
            lines.push(Line {
                sign: '…',
                text: String::new(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                lines.push(Line {
                    sign: match change.tag() {
                        similar::ChangeTag::Insert => '+',
                        similar::ChangeTag::Delete => '-',
                        similar::ChangeTag::Equal => ' ',
                    },
                    text: change.value().trim_end_matches('\n').to_owned(),
                });
            }
        }
    }
    render(&ChangePage {
        frame: signed.frame(&app),
        agent: this.agent,
        fingerprint: this.fingerprint,
        when: zone.when(this.received_ms),
        before: before.map(|b| (b.fingerprint, zone.when(b.received_ms))),
        lines,
    })
}

//! Reports: blocked activity broken down by group, category, name, rule and hour; the
//! dashboard (blocks per hour and bypass attempts by technique over 7 or 30 days, the most
//! active devices, the agents' health); and the weekly report for governors, as a printable
//! page and as CSV, which names no pupil or device — only sums.

use askama::Template;
use axum::extract::{Query, State};
use schoolgate_contract::Kind;
use schoolgate_contract::status::AgentStatus;
use serde::Deserialize;

use super::chart::{bars, columns};
use super::csv::{document, download};
use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render};
use crate::auth::Role;
use crate::db::Scope;
use crate::db::accounts::Agent;
use crate::db::reports::{AlertColumn, By, HOUR_MS, TopDevice, Window};
use crate::zone::Zone;

/// Rows in each breakdown of the blocked-activity page.
const BREAKDOWN: i64 = 50;
/// An agent not heard from in this long is shown as late.
const LATE_MS: i64 = 5 * 60 * 1000;

/// Label for a key that may be missing.
fn key_or(k: Option<String>, none: &str) -> String {
    k.unwrap_or_else(|| none.to_owned())
}

/// Per-hour sums spread over every hour of `w`, with labels (`MM-DD HH:00`, local).
fn hourly(w: Window<'_>, sums: &[(i64, i64)], zone: &Zone) -> (Vec<i64>, Vec<String>) {
    let first = w.from_ms.div_euclid(HOUR_MS);
    let n = usize::try_from((w.to_ms - w.from_ms).div_euclid(HOUR_MS)).unwrap_or(0);
    let mut values = vec![0; n];
    for (h, v) in sums {
        if let Some(slot) = usize::try_from(h - first)
            .ok()
            .and_then(|i| values.get_mut(i))
        {
            *slot = *v;
        }
    }
    let labels = (0..n)
        .map(|i| zone.hour((first + i as i64) * HOUR_MS))
        .collect();
    (values, labels)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlockedParams {
    /// `YYYY-MM-DD`, local; default a week before `to`.
    from: String,
    /// `YYYY-MM-DD`, local, included; default today.
    to: String,
    group: String,
    /// For the CSV: which breakdown.
    by: String,
}

impl BlockedParams {
    /// Whole days in `zone`, from midnight to midnight (a day may be 23 or 25 hours).
    fn window<'s>(&self, now: i64, zone: &Zone, scope: &'s Scope) -> Window<'s> {
        let to = zone
            .day_start(&self.to)
            .map_or(zone.add_days(now, 1), |t| zone.add_days(t, 1));
        let from = zone.day_start(&self.from).unwrap_or(zone.add_days(to, -7));
        // At most a year, so the hourly chart stays drawable.
        let from = from.max(zone.add_days(to, -366)).min(to);
        Window {
            from_ms: from,
            to_ms: to,
            scope,
        }
    }

    fn group(&self) -> Option<&str> {
        Some(self.group.trim()).filter(|g| !g.is_empty())
    }
}

#[derive(Template)]
#[template(path = "blocked.html")]
struct BlockedPage<'a> {
    frame: Frame<'a>,
    from: String,
    to: String,
    group: &'a str,
    total: i64,
    breakdowns: Vec<(&'static str, Vec<(String, i64)>)>,
    chart: String,
}

pub async fn blocked(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<BlockedParams>,
) -> Answer {
    let zone = &app.config.time_zone;
    let scope = signed.scope();
    let w = params.window(now_ms(), zone, &scope);
    let group = params.group();
    let mut breakdowns = Vec::new();
    for by in By::ALL {
        let rows = app.db.blocked_by(by, w, group, BREAKDOWN).await?;
        let none = if by == By::Category {
            "(no category)"
        } else {
            "(none)"
        };
        breakdowns.push((
            by.as_str(),
            rows.into_iter()
                .map(|(k, n)| (key_or(k, none), n))
                .collect::<Vec<_>>(),
        ));
    }
    let sums = app.db.per_hour(Kind::Blocked, w, group).await?;
    let total = sums.iter().map(|s| s.1).sum();
    let (values, labels) = hourly(w, &sums, zone);
    let every = (values.len() / 7).max(1);
    render(&BlockedPage {
        frame: signed.frame(&app),
        from: zone.date_of(w.from_ms),
        to: zone.date_of(zone.add_days(w.to_ms, -1)),
        group: group.unwrap_or(""),
        total,
        breakdowns,
        chart: columns("Blocks per hour", &values, &labels, every),
    })
}

/// One breakdown of blocked activity as CSV (`by`: group, category, name, rule or hour).
pub async fn blocked_csv(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<BlockedParams>,
) -> Answer {
    let zone = &app.config.time_zone;
    let scope = signed.scope();
    let w = params.window(now_ms(), zone, &scope);
    let group = params.group();
    let text = if params.by == "hour" {
        let sums = app.db.per_hour(Kind::Blocked, w, group).await?;
        let hour = format!("hour ({})", zone.name());
        document(
            &[hour.as_str(), "blocks"],
            sums.into_iter()
                .map(|(h, n)| vec![zone.when_exact(h * HOUR_MS), n.to_string()]),
        )
    } else {
        let by = By::from_name(&params.by)
            .ok_or_else(|| Refused::Bad("by: group, category, name, rule or hour".into()))?;
        let rows = app.db.blocked_by(by, w, group, 100_000).await?;
        document(
            &[by.as_str(), "blocks"],
            rows.into_iter()
                .map(|(k, n)| vec![k.unwrap_or_default(), n.to_string()]),
        )
    };
    signed
        .audit(&app, "export_blocked", None, Some(&params.by))
        .await?;
    Ok(download(&format!("blocked-by-{}.csv", params.by), text))
}

/// An agent's health as the dashboard shows it.
#[derive(Debug)]
pub struct Health {
    pub agent: Agent,
    pub seen: String,
    pub late: bool,
    pub backlog: String,
    pub version: String,
    pub policy: String,
    /// Error counters the agent reported, as `name n` pairs, non-zero only.
    pub errors: String,
}

fn health(agent: Agent, now: i64, zone: &Zone) -> Health {
    let status: Option<AgentStatus> = agent
        .status
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let shown = |v: Option<String>| {
        v.filter(|t| !t.is_empty())
            .unwrap_or_else(|| "—".to_owned())
    };
    let errors = status
        .as_ref()
        .map(|s| {
            [
                ("policy rejected", s.policy_rejected),
                ("events dropped", s.events_dropped),
                ("events lost to damage", s.events_lost_to_damage),
                ("upstream errors", s.upstream_errors),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
        })
        .unwrap_or_default();
    Health {
        seen: agent
            .last_seen_ms
            .map_or("never".to_owned(), |t| zone.when(t)),
        late: agent.last_seen_ms.is_none_or(|t| now - t > LATE_MS),
        backlog: shown(status.as_ref().map(|s| s.backlog.to_string())),
        version: shown(status.as_ref().map(|s| s.version.clone())),
        policy: shown(status.and_then(|s| s.policy)),
        errors: if errors.is_empty() {
            "none".into()
        } else {
            errors
        },
        agent,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DashboardParams {
    days: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    frame: Frame<'a>,
    days: i64,
    blocks_chart: String,
    bypass_chart: String,
    blocks_total: i64,
    bypass_total: i64,
    top: Vec<TopDevice>,
    agents: Vec<Health>,
}

pub async fn dashboard(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<DashboardParams>,
) -> Answer {
    let days = if params.days == 30 { 30 } else { 7 };
    let now = now_ms();
    let zone = &app.config.time_zone;
    // Whole local days, today's ending with the hour under way: the devices' sums are kept
    // per day.
    let to = (now.div_euclid(HOUR_MS) + 1) * HOUR_MS;
    let scope = signed.scope();
    let w = Window {
        from_ms: zone.add_days(now, 1 - days),
        to_ms: to,
        scope: &scope,
    };
    let sums = app.db.per_hour(Kind::Blocked, w, None).await?;
    let (values, labels) = hourly(w, &sums, zone);
    let techniques: Vec<(String, i64)> = app
        .db
        .bypass_by_technique(w)
        .await?
        .into_iter()
        .map(|(k, n)| (technique_or(k), n))
        .collect();
    let agents = app
        .db
        .agents(&scope)
        .await?
        .into_iter()
        .map(|a| health(a, now, zone))
        .collect();
    render(&DashboardPage {
        frame: signed.frame(&app),
        days,
        blocks_total: values.iter().sum(),
        bypass_total: techniques.iter().map(|t| t.1).sum(),
        blocks_chart: columns(
            &format!("Blocks per hour, last {days} days"),
            &values,
            &labels,
            // A label a day, or every fourth day over 30.
            if days == 30 { 96 } else { 24 },
        ),
        bypass_chart: bars(
            &format!("Bypass attempts by technique, last {days} days"),
            &techniques,
        ),
        top: app.db.top_devices(w, 10).await?,
        agents,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WeeklyParams {
    /// Any day of the week wanted (`YYYY-MM-DD`); default last week.
    week: String,
}

/// The week (Monday 00:00 to Monday 00:00 in `zone`) holding `day`, or last week.
fn week_of<'s>(params: &WeeklyParams, now: i64, zone: &Zone, scope: &'s Scope) -> Window<'s> {
    let day = zone
        .day_start(&params.week)
        .unwrap_or(zone.add_days(now, -7));
    let (from_ms, to_ms) = zone.week_of(day);
    Window {
        from_ms,
        to_ms,
        scope,
    }
}

/// A technique's name in words, for the report's rows.
fn technique_or(name: Option<String>) -> String {
    match name {
        Some(n) => super::technique_words(&n).map_or(n, str::to_owned),
        None => "(unknown)".to_owned(),
    }
}

/// The weekly report's sections: a title and (label, figure) rows.
pub type Sections = Vec<(&'static str, Vec<(String, i64)>)>;

/// The weekly report's section the page also draws as a chart.
const BLOCKS_BY_DAY: &str = "Blocks by day";

/// The sections for `role`: outcomes only for those who handle cases (with the alerts list
/// and the audit log, an outcome could be tied to a child).
pub async fn weekly_sections(
    db: &crate::db::Db,
    zone: &Zone,
    w: Window<'_>,
    role: Role,
) -> Result<Sections, crate::db::DbError> {
    let named = |rows: Vec<(Option<String>, i64)>, none: &str| {
        rows.into_iter()
            .map(|(k, n)| (key_or(k, none), n))
            .collect::<Vec<_>>()
    };
    let per_hour = db.per_hour(Kind::Blocked, w, None).await?;
    // Local days: the one the clocks change on is 23 or 25 hours.
    let per_day = (0..7)
        .map(|d| {
            let start = zone.add_days(w.from_ms, d);
            let end = zone.add_days(start, 1);
            let n = per_hour
                .iter()
                .filter(|(h, _)| (start..end).contains(&(h * HOUR_MS)))
                .map(|s| s.1)
                .sum();
            (zone.day_of(start), n)
        })
        .collect();
    let mut sections = vec![
        ("Events by kind", named(db.kinds(w).await?, "(none)")),
        (BLOCKS_BY_DAY, per_day),
        (
            "Blocks by group",
            named(db.blocked_by(By::Group, w, None, 100).await?, "(none)"),
        ),
        (
            "Blocks by category",
            named(
                db.blocked_by(By::Category, w, None, 100).await?,
                "(no category)",
            ),
        ),
        (
            "Most blocked names",
            named(db.blocked_by(By::Name, w, None, 10).await?, "(none)"),
        ),
        (
            "Bypass attempts by technique",
            db.bypass_by_technique(w)
                .await?
                .into_iter()
                .map(|(k, n)| (technique_or(k), n))
                .collect(),
        ),
        (
            "Incidents by status",
            named(db.incidents_by(AlertColumn::Status, w).await?, "(none)"),
        ),
    ];
    if role.handles_cases() {
        sections.push((
            "Incidents by outcome",
            named(
                db.incidents_by(AlertColumn::Outcome, w).await?,
                "(not resolved)",
            ),
        ));
    }
    Ok(sections)
}

#[derive(Template)]
#[template(path = "weekly.html")]
struct WeeklyPage<'a> {
    frame: Frame<'a>,
    from: String,
    to: String,
    previous: String,
    next: String,
    sections: Sections,
    chart: String,
}

pub async fn weekly(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<WeeklyParams>,
) -> Answer {
    let zone = &app.config.time_zone;
    let scope = signed.scope();
    let w = week_of(&params, now_ms(), zone, &scope);
    let sections = weekly_sections(&app.db, zone, w, signed.role()).await?;
    signed
        .audit(&app, "view_report", Some(&zone.date_of(w.from_ms)), None)
        .await?;
    let per_day: Vec<i64> = sections
        .iter()
        .find(|s| s.0 == BLOCKS_BY_DAY)
        .map(|s| s.1.iter().map(|r| r.1).collect())
        .unwrap_or_default();
    let labels: Vec<String> = (0..7)
        .map(|d| zone.date_of(zone.add_days(w.from_ms, d)))
        .collect();
    render(&WeeklyPage {
        frame: signed.frame(&app),
        from: zone.date_of(w.from_ms),
        to: zone.date_of(zone.add_days(w.to_ms, -1)),
        previous: zone.date_of(zone.add_days(w.from_ms, -7)),
        next: zone.date_of(w.to_ms),
        chart: columns(BLOCKS_BY_DAY, &per_day, &labels, 1),
        sections,
    })
}

pub async fn weekly_csv(
    State(app): State<Shared>,
    signed: Signed,
    Query(params): Query<WeeklyParams>,
) -> Answer {
    let zone = &app.config.time_zone;
    let scope = signed.scope();
    let w = week_of(&params, now_ms(), zone, &scope);
    let sections = weekly_sections(&app.db, zone, w, signed.role()).await?;
    let from = zone.date_of(w.from_ms);
    signed
        .audit(&app, "export_report", Some(&from), None)
        .await?;
    let rows = sections.into_iter().flat_map(|(title, rows)| {
        rows.into_iter()
            .map(move |(k, n)| vec![title.to_owned(), k, n.to_string()])
    });
    Ok(download(
        &format!("schoolgate-week-{from}.csv"),
        document(&["section", "item", "figure"], rows),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_run_monday_to_monday() {
        let zone = Zone::default();
        let date_of = |ms| zone.date_of(ms);
        // 2026-11-25 is a Wednesday.
        let w = week_of(
            &WeeklyParams {
                week: "2026-11-25".into(),
            },
            0,
            &zone,
            &Scope::Trust,
        );
        assert_eq!(date_of(w.from_ms), "2026-11-23");
        assert_eq!(date_of(w.to_ms), "2026-11-30");
        let monday = week_of(
            &WeeklyParams {
                week: "2026-11-23".into(),
            },
            0,
            &zone,
            &Scope::Trust,
        );
        assert_eq!(monday, w);
        let sunday = week_of(
            &WeeklyParams {
                week: "2026-11-29".into(),
            },
            0,
            &zone,
            &Scope::Trust,
        );
        assert_eq!(sunday, w);
    }

    #[test]
    fn hours_without_blocks_are_zero() {
        let w = Window {
            from_ms: 10 * HOUR_MS,
            to_ms: 14 * HOUR_MS,
            scope: &Scope::Trust,
        };
        let (values, labels) = hourly(w, &[(11, 5), (13, 2), (99, 7)], &Zone::utc());
        assert_eq!(values, [0, 5, 0, 2]);
        assert_eq!(labels[0], "01-01 10:00");
    }

    #[test]
    fn an_agents_losses_show_in_its_health() {
        let agent = Agent {
            name: "gw1".into(),
            last_seen_ms: Some(1),
            status: Some(
                r#"{"events_dropped":1999,"events_lost_to_damage":3,"upstream_errors":0}"#.into(),
            ),
            school: None,
        };
        let h = health(agent, 2, &Zone::utc());
        assert_eq!(h.errors, "events dropped 1999, events lost to damage 3");
    }
}

//! Decisions put into words a teacher understands, and into JSON for tools.
//!
//! Pure formatting: the decision, the policy and the instant it was made for go in; text
//! comes out. Times are shown in the school's time zone.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

use crate::decide::{Decision, Matched, Reason};
use crate::device::Client;
use crate::person::PersonView;
use crate::policy::{Action, Policy, Target};

/// One sentence: what was decided, by what, and until when.
pub fn sentence(
    policy: &Policy,
    d: &Decision<'_>,
    client: &Client,
    person: Option<&PersonView<'_>>,
    name: &str,
    now: Timestamp,
) -> String {
    let verdict = match d.action {
        Action::Allow => "Allowed",
        Action::Block => "Blocked",
    };
    let who = subject(policy, d, client, person);
    let body = match d.reason {
        Reason::Quarantine => {
            let allowed: Vec<String> = policy
                .bypass()
                .quarantine_allow
                .iter()
                .map(|t| target_label(policy, *t))
                .collect();
            let allowed = if allowed.is_empty() {
                "nothing".to_owned()
            } else {
                allowed.join(", ")
            };
            match d.matched {
                Some(m) => format!(
                    "{who} is quarantined after a bypass attempt, but {} stays reachable (matched {})",
                    target_label(policy, m.target),
                    m.domain
                ),
                None => format!(
                    "{who} is quarantined after a bypass attempt and may reach only {allowed} \
                     until staff release it"
                ),
            }
        }
        Reason::Exception(id) => {
            let e = policy.exception(id);
            let what = matched_label(policy, d.matched);
            let (ename, approver) =
                e.map_or(("?", "?"), |e| (e.name.as_str(), e.approved_by.as_str()));
            format!(
                "{what} is open to {who} for “{ename}”, approved by {approver}{}",
                matched_note(d.matched)
            )
        }
        Reason::Rule(id) => {
            let rule = policy.rule(id);
            let rname = rule.map_or("?", |r| r.name.as_str());
            let when = rule
                .and_then(|r| policy.schedule(r.when))
                .map_or_else(String::new, |s| format!(" {}", s.label));
            let what = matched_label(policy, d.matched);
            let verb = match d.action {
                Action::Allow => "may use",
                Action::Block => "may not use",
            };
            let matched = d
                .matched
                .map_or_else(String::new, |m| format!(", matched {}", m.domain));
            // With someone signed in, say whose group the rule spoke of.
            let through = match (person, rule) {
                (Some(p), Some(r)) => {
                    let (whose, group) = if r.groups.contains(d.identity.group) {
                        ("the device's group".to_owned(), d.identity.group)
                    } else {
                        let group = d.identity.person.and_then(|i| i.group);
                        (format!("{}'s group", clean_name(p.username)), group)
                    };
                    group
                        .and_then(|g| policy.group(g))
                        .map_or_else(String::new, |g| {
                            format!("; it names {whose}, {}", g.name.replace('_', " "))
                        })
                }
                _ => String::new(),
            };
            format!("{who} {verb} {what}{when} (rule “{rname}”{matched}{through})")
        }
        Reason::NoRule if d.until.is_some() => {
            format!(
                "no rule restricts {} for {who} at this time",
                clean_name(name)
            )
        }
        Reason::NoRule => format!("no rule restricts {} for {who}", clean_name(name)),
    };
    let until = match (d.until, d.reason) {
        (Some(t), Reason::NoRule) => format!("; that changes at {}", when_phrase(policy, t, now)),
        (Some(t), _) => format!(", until {}", when_phrase(policy, t, now)),
        (None, _) => String::new(),
    };
    format!("{verdict}: {body}{until}.")
}

/// The decision as one JSON object:
/// `{"action","group","rule","exception","category","matched","until",...}`.
pub fn to_json(
    policy: &Policy,
    d: &Decision<'_>,
    client: &Client,
    person: Option<&PersonView<'_>>,
    name: &str,
    now: Timestamp,
) -> Value {
    let group = d
        .identity
        .group
        .and_then(|g| policy.group(g))
        .map(|g| g.name.clone());
    let device = d.identity.device.and_then(|id| policy.device(id));
    let rule = d.rule_name(policy).map(str::to_owned);
    let exception = match d.reason {
        Reason::Exception(id) => policy.exception(id).map(|e| e.name.clone()),
        _ => None,
    };
    let category = d
        .matched
        .and_then(|m| policy.category_name(m.target))
        .map(str::to_owned);
    json!({
        "action": d.action.as_str(),
        "group": group,
        "rule": rule,
        "exception": exception,
        "category": category,
        "matched": d.matched.map(|m| m.domain),
        "until": d.until.map(|t| rfc3339(policy, t)),
        "quarantined": d.reason == Reason::Quarantine,
        "name": clean_name(name),
        "device": {
            "ip": client.ip.map(|ip| ip.to_string()),
            "mac": client.mac.or(device.and_then(|d| d.mac)).map(|m| m.to_string()),
            "name": device.map(|d| d.name.clone()),
            "owner": device.and_then(|d| d.owner.clone()),
        },
        "person": person.map(|p| json!({
            "username": clean_name(p.username),
            "group": d
                .identity
                .person
                .and_then(|i| i.group)
                .and_then(|g| policy.group(g))
                .map(|g| g.name.clone()),
        })),
        "reason": sentence(policy, d, client, person, name, now),
    })
}

/// An instant as RFC 3339 with the school's UTC offset, e.g. `2026-11-24T15:30:00+00:00`.
pub fn rfc3339(policy: &Policy, t: Timestamp) -> String {
    t.to_zoned(policy.timezone().clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// "15:30 today", "08:30 tomorrow", "08:30 on Monday 30 November 2026".
fn when_phrase(policy: &Policy, t: Timestamp, now: Timestamp) -> String {
    let tz = policy.timezone();
    let then = t.to_zoned(tz.clone());
    let today: Date = now.to_zoned(tz.clone()).date();
    let time = then.strftime("%H:%M").to_string();
    if then.date() == today {
        format!("{time} today")
    } else if today.tomorrow().ok() == Some(then.date()) {
        format!("{time} tomorrow ({})", then.strftime("%A %-d %B"))
    } else {
        format!("{time} on {}", then.strftime("%A %-d %B %Y"))
    }
}

fn subject(
    policy: &Policy,
    d: &Decision<'_>,
    client: &Client,
    person: Option<&PersonView<'_>>,
) -> String {
    let device = device_subject(policy, d, client);
    let Some(p) = person else {
        return device;
    };
    let group = d
        .identity
        .person
        .and_then(|i| i.group)
        .and_then(|g| policy.group(g))
        .map_or_else(|| "in no group".to_owned(), |g| g.name.replace('_', " "));
    format!("{} ({group}) on {device}", clean_name(p.username))
}

fn device_subject(policy: &Policy, d: &Decision<'_>, client: &Client) -> String {
    let group = d
        .identity
        .group
        .and_then(|g| policy.group(g))
        .map(|g| g.name.replace('_', " "));
    let device = d.identity.device.and_then(|id| policy.device(id));
    match (device, group) {
        (Some(dev), Some(g)) => format!("{} ({g})", dev.name),
        (None, Some(g)) if d.reason == Reason::Quarantine => format!("this device ({g})"),
        (None, Some(g)) => g,
        _ => match client.ip {
            Some(ip) => format!("{ip} (in no group)"),
            None => "this device (in no group)".to_owned(),
        },
    }
}

fn target_label(policy: &Policy, id: crate::domain::TargetId) -> String {
    match policy.target(id) {
        Some(Target::Category { label, .. }) => label.clone(),
        Some(Target::Domains { domains }) => domains.join(", "),
        None => "?".to_owned(),
    }
}

fn matched_label(policy: &Policy, m: Option<Matched<'_>>) -> String {
    match m.and_then(|m| policy.target(m.target).map(|t| (m, t))) {
        Some((_, Target::Category { label, .. })) => label.clone(),
        Some((m, Target::Domains { .. })) => m.domain.to_owned(),
        None => "this site".to_owned(),
    }
}

fn matched_note(m: Option<Matched<'_>>) -> String {
    m.map_or_else(String::new, |m| format!(" (matched {})", m.domain))
}

/// A name from a device, made safe to print: normalised as it was matched where it can be,
/// at most 253 characters, control and non-ASCII characters shown as escapes.
fn clean_name(name: &str) -> String {
    match crate::domain::QueryName::new(name) {
        Some(q) => q.as_str().escape_default().to_string(),
        None => {
            let bounded: String = name.chars().take(crate::domain::MAX_NAME_LEN).collect();
            bounded.escape_default().to_string()
        }
    }
}

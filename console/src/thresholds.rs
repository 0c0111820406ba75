//! Threshold alerts: what no single event is, many are. IT lists the rules in
//! `console.yaml` (`thresholds:`): events of a kind (blocked, presence…), of a category and a
//! group, perhaps only during one of the gateway's schedules (its policy, as the agent sent
//! it), counted per person (or per device where nobody was signed in); when a window of
//! `minutes` holds `count` of them, they become an incident with those events as its
//! evidence ("a person blocked from social networking 5 times in 10 minutes", "staff on
//! social networking in lesson time", "a phone seen in the school day").
//!
//! Matching is pure ([`Threshold::matches`]); counting and the incident are the database's
//! ([`crate::db::incidents`]).

use schoolgate_contract::{Event, Kind, Severity};
use serde::Deserialize;

/// The longest window a rule counts over: a week.
pub const MAX_MINUTES: u32 = 7 * 24 * 60;

/// One threshold rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold {
    /// Says what crossing it means; the incident's title ("Blocked from social networking
    /// again and again").
    pub name: String,
    pub kind: Kind,
    pub category: Option<String>,
    /// The device's group, or the person's group or class.
    pub group: Option<String>,
    /// A schedule of the gateway's policy the event must fall in.
    pub during: Option<String>,
    pub count: u32,
    pub minutes: u32,
    pub risk: Severity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    kind: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    during: Option<String>,
    count: u32,
    minutes: u32,
    #[serde(default = "medium")]
    risk: String,
}

fn medium() -> String {
    "medium".to_owned()
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Raw::deserialize(d)?;
        let kind: Kind = raw.kind.parse().map_err(D::Error::custom)?;
        if matches!(kind, Kind::BypassAttempt | Kind::Quarantined) {
            return Err(D::Error::custom(format!(
                "threshold {:?}: {kind} events are incidents already; count blocked, presence \
                 or supervised events",
                raw.name
            )));
        }
        let risk: Severity = raw.risk.parse().map_err(D::Error::custom)?;
        if raw.count == 0 || raw.minutes == 0 || raw.minutes > MAX_MINUTES {
            return Err(D::Error::custom(format!(
                "threshold {:?}: `count` is at least 1 and `minutes` between 1 and {MAX_MINUTES}",
                raw.name
            )));
        }
        let name = raw.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(D::Error::custom(
                "a threshold's name is 1 to 120 characters",
            ));
        }
        Ok(Self {
            name,
            kind,
            category: raw.category,
            group: raw.group,
            during: raw.during,
            count: raw.count,
            minutes: raw.minutes,
            risk,
        })
    }
}

impl Threshold {
    /// Whether `e` counts towards this rule (its schedule aside, which needs the policy).
    pub fn matches(&self, e: &Event) -> bool {
        if e.kind != self.kind || e.is_alert() {
            return false;
        }
        if let Some(c) = &self.category
            && e.category.as_deref() != Some(c.as_str())
        {
            return false;
        }
        if let Some(g) = &self.group {
            let person = e.person.as_ref();
            let named = e.group.as_deref() == Some(g.as_str())
                || person.and_then(|p| p.group.as_deref()) == Some(g.as_str())
                || person
                    .and_then(|p| p.class.as_deref())
                    .is_some_and(|c| c.eq_ignore_ascii_case(g));
            if !named {
                return false;
            }
        }
        true
    }

    /// The window counted, in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.minutes) * 60_000
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use schoolgate_contract::wire::parse_event;

    fn rule(yaml: &str) -> Result<Threshold, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    fn event(kind: &str, category: &str, group: &str, class: &str) -> Event {
        parse_event(serde_json::json!({
            "id": "0193abcd-0000-7000-8000-000000000000", "time": "2026-06-15T08:10:03Z",
            "kind": kind, "severity": "low", "device": {"ip": "10.10.3.7"}, "group": group,
            "category": category,
            "person": {"username": "amira.k", "class": class, "group": "pupils"},
        }))
        .unwrap()
        .event
    }

    #[test]
    fn a_rule_counts_its_kind_category_and_group_only() {
        let r = rule(
            "{ name: Blocked from social networking again and again, kind: blocked, \
             category: social_networking, group: 6B, count: 5, minutes: 10 }",
        )
        .unwrap();
        assert_eq!(r.risk, Severity::Medium);
        assert!(r.matches(&event("blocked", "social_networking", "pupils", "6b")));
        assert!(!r.matches(&event("blocked", "social_networking", "pupils", "6A")));
        assert!(!r.matches(&event("blocked", "gaming", "pupils", "6B")));
        assert!(!r.matches(&event("presence", "social_networking", "pupils", "6B")));
        assert_eq!(r.window_ms(), 600_000);
    }

    #[test]
    fn a_rule_that_cannot_work_is_refused_saying_why() {
        assert!(
            rule("{ name: x, kind: bypass_attempt, count: 1, minutes: 1 }")
                .unwrap_err()
                .contains("incidents already")
        );
        assert!(
            rule("{ name: x, kind: blocked, count: 0, minutes: 1 }")
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(rule("{ name: x, kind: teleport, count: 1, minutes: 1 }").is_err());
        assert!(rule("{ name: x, kind: blocked, count: 1, minutes: 1, risk: dire }").is_err());
    }
}

//! Whether a teacher's request is one the policy lets them make: the `requests:` section
//! names which categories may be asked for, for whom and for how long. The console checks a
//! request here before an approver sees it, and the agent checks it again before applying
//! it, so what IT wrote decides even if the console's copy of the policy is old.

use crate::policy::{Policy, RequestRule};

/// What a request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Category names, or sites (a name with a dot): a site alone is opened, and may be
    /// asked for where every category that lists it may be.
    pub allow: &'a [String],
    pub groups: &'a [String],
    pub classes: &'a [String],
    /// How many pupils it names one by one.
    pub people: usize,
    pub minutes: u32,
}

/// Why a request may not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskRefused {
    #[error("a request opens at least one category or site")]
    NothingAsked,
    #[error("{site} is in no category of the policy: there is nothing to open")]
    NoCategory { site: String },
    #[error("a request is for at least one group, class or pupil")]
    NobodyAsked,
    #[error("the policy does not let teachers ask for {categories}")]
    NotRequestable { categories: String },
    #[error("{categories} may not be asked for the group {group}")]
    Group { categories: String, group: String },
    #[error("{categories} may not be asked for class {class}")]
    Class { categories: String, class: String },
    #[error("{categories} may not be asked for pupils named one by one")]
    People { categories: String },
    #[error("{categories} may be asked for at most {longest} minutes, not {minutes}")]
    TooLong {
        categories: String,
        longest: u32,
        minutes: u32,
    },
}

impl Policy {
    /// The request rule that lets `ask` be made, or why none does (the first rule that opens
    /// everything asked says why).
    pub fn may_ask(&self, ask: &Ask<'_>) -> Result<&RequestRule, AskRefused> {
        if ask.allow.is_empty() {
            return Err(AskRefused::NothingAsked);
        }
        if ask.groups.is_empty() && ask.classes.is_empty() && ask.people == 0 {
            return Err(AskRefused::NobodyAsked);
        }
        let categories = ask.allow.join(", ");
        // Each thing asked for, as the categories it stands for: a category itself, or
        // every category listing a site.
        let mut wanted: Vec<Vec<&str>> = Vec::with_capacity(ask.allow.len());
        for a in ask.allow {
            let a = a.trim();
            if a.contains('.') {
                let of = self.categories_listing(a);
                if of.is_empty() {
                    return Err(AskRefused::NoCategory { site: a.to_owned() });
                }
                wanted.push(of);
            } else {
                wanted.push(vec![a]);
            }
        }
        let mut first = None;
        for rule in self.request_rules() {
            if !wanted
                .iter()
                .flatten()
                .all(|c| rule.allow_names.iter().any(|n| n == c))
            {
                continue;
            }
            match self.refusal(rule, ask, &categories) {
                None => return Ok(rule),
                Some(why) => {
                    first.get_or_insert(why);
                }
            }
        }
        Err(first.unwrap_or(AskRefused::NotRequestable { categories }))
    }

    /// The categories whose lists cover the site `name` (none for a name that is not one).
    pub fn categories_listing(&self, name: &str) -> Vec<&str> {
        let mut matches = crate::domain::Matches::new();
        if let Some(q) = crate::domain::QueryName::new(name) {
            self.index.lookup(q.as_str(), &mut matches);
        }
        matches
            .iter()
            .filter_map(|(t, _)| self.category_name(*t))
            .collect()
    }

    fn refusal(&self, rule: &RequestRule, ask: &Ask<'_>, categories: &str) -> Option<AskRefused> {
        for g in ask.groups {
            let named = rule
                .groups
                .iter()
                .filter_map(|id| self.group(*id))
                .any(|group| group.name == g.trim());
            if !named {
                return Some(AskRefused::Group {
                    categories: categories.to_owned(),
                    group: g.clone(),
                });
            }
        }
        for c in ask.classes {
            let named = rule.any_class
                || rule
                    .classes
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(c.trim()));
            if !named {
                return Some(AskRefused::Class {
                    categories: categories.to_owned(),
                    class: c.clone(),
                });
            }
        }
        if ask.people > 0 && !rule.people {
            return Some(AskRefused::People {
                categories: categories.to_owned(),
            });
        }
        if ask.minutes > rule.longest_minutes {
            return Some(AskRefused::TooLong {
                categories: categories.to_owned(),
                longest: rule.longest_minutes,
                minutes: ask.minutes,
            });
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    const POLICY: &str = r#"
version: 1
school: { name: Test, timezone: Europe/London }
schedules:
  lessons: { days: [mon, tue, wed, thu, fri], times: ["09:00-10:00", "11:00-12:00"] }
categories:
  youtube: { domains: [youtube.com] }
  social_networking: { domains: [instagram.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  staff: { networks: [10.20.0.0/16] }
requests:
  - { name: Lesson video, allow: [youtube], groups: [pupils], classes: [5A, 5B, 6A, 6B], people: true, longest_minutes: 120 }
  - { name: Year 6 media, allow: [youtube, social_networking], classes: [6A, 6B], longest_minutes: 60 }
"#;

    fn policy() -> Policy {
        Policy::from_yaml(POLICY, Path::new("p.yaml"), &|_: &Path| Ok(String::new())).unwrap()
    }

    fn ask<'a>(allow: &'a [String], classes: &'a [String], minutes: u32) -> Ask<'a> {
        Ask {
            allow,
            groups: &[],
            classes,
            people: 0,
            minutes,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    /// A site alone may be asked for where its categories may: a YouTube address under the
    /// video rule, Instagram only for Year 6, and a site in no category not at all.
    #[test]
    fn a_site_is_asked_for_as_the_categories_that_list_it() {
        let p = policy();
        let six_b = s(&["6B"]);
        let watch = s(&["www.youtube.com"]);
        assert_eq!(
            p.may_ask(&ask(&watch, &six_b, 60)).unwrap().name,
            "Lesson video"
        );
        let insta = s(&["instagram.com"]);
        assert_eq!(
            p.may_ask(&ask(&insta, &six_b, 60)).unwrap().name,
            "Year 6 media"
        );
        assert!(matches!(
            p.may_ask(&ask(&insta, &s(&["5A"]), 60)),
            Err(AskRefused::NotRequestable { .. } | AskRefused::Class { .. })
        ));
        assert_eq!(
            p.may_ask(&ask(&s(&["homework.example"]), &six_b, 60))
                .unwrap_err(),
            AskRefused::NoCategory {
                site: "homework.example".into()
            }
        );
        assert_eq!(p.categories_listing("m.youtube.com"), ["youtube"]);
    }

    #[test]
    fn a_request_is_let_by_the_first_rule_that_covers_it_all() {
        let p = policy();
        let youtube = s(&["youtube"]);
        let social = s(&["social_networking"]);
        let six_b = s(&["6b"]);
        assert_eq!(
            p.may_ask(&ask(&youtube, &six_b, 90)).unwrap().name,
            "Lesson video"
        );
        // Social networking only for Year 6, and for an hour at most.
        assert_eq!(
            p.may_ask(&ask(&social, &six_b, 60)).unwrap().name,
            "Year 6 media"
        );
        assert_eq!(
            p.may_ask(&ask(&social, &s(&["3A"]), 30)).unwrap_err(),
            (AskRefused::Class {
                categories: "social_networking".into(),
                class: "3A".into()
            })
        );
        assert!(matches!(
            p.may_ask(&ask(&social, &six_b, 61)),
            Err(AskRefused::TooLong { longest: 60, .. })
        ));
        assert!(matches!(
            p.may_ask(&ask(&s(&["vle"]), &six_b, 10)),
            Err(AskRefused::NotRequestable { .. })
        ));
        let staff = s(&["staff"]);
        let for_staff = Ask {
            groups: &staff,
            ..ask(&youtube, &[], 10)
        };
        assert!(matches!(
            p.may_ask(&for_staff),
            Err(AskRefused::Group { .. })
        ));
        let named = Ask {
            people: 2,
            ..ask(&social, &six_b, 10)
        };
        assert!(matches!(p.may_ask(&named), Err(AskRefused::People { .. })));
        assert_eq!(
            p.may_ask(&ask(&[], &six_b, 10)).unwrap_err(),
            AskRefused::NothingAsked
        );
        assert_eq!(
            p.may_ask(&ask(&youtube, &[], 10)).unwrap_err(),
            AskRefused::NobodyAsked
        );
    }

    #[test]
    fn the_next_lesson_is_the_one_under_way_or_the_one_to_come() {
        let p = policy();
        let lessons = p.schedules().iter().find(|s| s.name == "lessons").unwrap();
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_second();
        // Tuesday 1 December 2026, GMT.
        assert_eq!(
            lessons.current_or_next(at("2026-12-01T09:30:00Z")),
            Some((at("2026-12-01T09:30:00Z"), at("2026-12-01T10:00:00Z")))
        );
        assert_eq!(
            lessons.current_or_next(at("2026-12-01T10:15:00Z")),
            Some((at("2026-12-01T11:00:00Z"), at("2026-12-01T12:00:00Z")))
        );
        // Friday afternoon: Monday's first lesson.
        assert_eq!(
            lessons.current_or_next(at("2026-12-04T15:00:00Z")),
            Some((at("2026-12-07T09:00:00Z"), at("2026-12-07T10:00:00Z")))
        );
    }

    #[test]
    fn bad_request_rules_are_refused_where_they_are() {
        let bad = POLICY
            .replace("longest_minutes: 60", "longest_minutes: 0")
            .replace("allow: [youtube], groups", "allow: [youtub], groups");
        let e = Policy::from_yaml(&bad, Path::new("p.yaml"), &|_: &Path| Ok(String::new()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("youtub") && e.contains("p.yaml:"), "{e}");
        assert!(e.contains("at most 0 minutes"), "{e}");
    }
}

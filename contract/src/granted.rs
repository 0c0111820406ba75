//! Exceptions the console grants: a teacher's request an approver approved, as the console
//! sends it to the agent of the school it is for (`GET /api/v1/exceptions`), and the policy
//! text an agent has in force, as it sends it to the console (`POST /api/v1/policy`), so the
//! console checks requests against the policy IT wrote.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The longest policy text an agent sends, in bytes: a school's policy is a few kilobytes;
/// its lists are separate files and are not sent.
pub const MAX_POLICY_TEXT: usize = 1024 * 1024;

/// Exceptions an agent is sent at most; more is a console fault, refused whole.
pub const MAX_GRANTED: usize = 1000;

/// One approved exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    /// The console's request number.
    pub id: i64,
    /// Unique among those sent ("Lesson video for 6B (request 12)").
    pub name: String,
    /// Category names it opens.
    pub allow: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub classes: Vec<String>,
    /// Usernames.
    #[serde(default)]
    pub people: Vec<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Who asked, and who approved, at the console.
    pub requested_by: String,
    pub approved_by: String,
    pub reason: String,
}

impl Granted {
    /// How long it lasts, in whole minutes (rounded up), as `requests:` bounds it.
    pub fn minutes(&self) -> u32 {
        let seconds = self
            .to
            .as_second()
            .saturating_sub(self.from.as_second())
            .max(0);
        u32::try_from((seconds + 59) / 60).unwrap_or(u32::MAX)
    }
}

/// `GET /api/v1/exceptions`'s answer: every exception in force or to come for this agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedList {
    pub exceptions: Vec<Granted>,
}

/// `POST /api/v1/policy`'s body: the policy file in force on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyText {
    /// The agent's fingerprint of what it read (its status names the same).
    pub fingerprint: String,
    pub text: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_reads_back_and_knows_its_length() {
        let g = Granted {
            id: 12,
            name: "Lesson video for 6B (request 12)".into(),
            allow: vec!["youtube".into()],
            groups: vec![],
            classes: vec!["6B".into()],
            people: vec![],
            from: "2026-12-01T13:00:00Z".parse().unwrap(),
            to: "2026-12-01T14:00:30Z".parse().unwrap(),
            requested_by: "mr.osei".into(),
            approved_by: "head".into(),
            reason: "Media unit".into(),
        };
        let text = serde_json::to_string(&GrantedList {
            exceptions: vec![g.clone()],
        })
        .unwrap();
        assert!(text.contains("\"from\":\"2026-12-01T13:00:00Z\""), "{text}");
        let back: GrantedList = serde_json::from_str(&text).unwrap();
        assert_eq!(back.exceptions, std::slice::from_ref(&g));
        assert_eq!(g.minutes(), 61);
    }
}

//! What an agent says of itself with each batch, what the console answers, and the
//! commands the console hands an agent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An agent's health, sent with each batch and shown on the console's dashboard. Every
/// counter counts since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentStatus {
    /// The policy in force: its fingerprint (16 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Policy edits refused.
    #[serde(default)]
    pub policy_rejected: u64,
    /// Events lost before they reached the journal or the console (`events_dropped`).
    #[serde(default)]
    pub events_dropped: u64,
    /// Events lost to damage found in the journal (`journal_damaged`).
    #[serde(default)]
    pub events_lost_to_damage: u64,
    /// Questions the upstream resolvers did not answer.
    #[serde(default)]
    pub upstream_errors: u64,
    /// Events in the journal not yet sent, once this batch is taken.
    #[serde(default)]
    pub backlog: u64,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

impl AgentStatus {
    /// A status of this build's agent: its version set, every count 0.
    pub fn of_version(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            ..Self::default()
        }
    }
}

/// The console's answer to a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Events in the batch, taken or refused.
    pub received: u64,
    /// Events stored or superseded (the rest were there already).
    pub new: u64,
    /// The refusals, each with its index, id and reason ([`crate::wire::Refusal`]).
    #[serde(default)]
    pub refused: Vec<Value>,
}

/// What the console asks an agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: i64,
    /// `release`: let a device out of quarantine. An agent skips kinds it does not know.
    pub kind: String,
    pub device: String,
    /// For a release: the person whose ban is lifted, with every device held for them (an
    /// older console sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// For a person: not lifted, but eased into supervised use for this many minutes...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_minutes: Option<u32>,
    /// ...after which the ban resumes (`resume`) or ends (`end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    pub reason: String,
    /// Who asked, at the console.
    pub by: String,
    /// For `explain`: what to explain (an older console sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Question>,
}

/// The kind of command that asks the agent to explain a decision.
pub const EXPLAIN: &str = "explain";

/// What the console asks an agent to explain: what its policy decides for this device (and
/// this person signed in on it) and this site at this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The console's number for the explanation, which the answer is sent to.
    pub id: i64,
    /// The device's IP address.
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// A username, as the gateway's directory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The site's name.
    pub name: String,
    pub at: jiff::Timestamp,
}

/// The longest explanation sentence an agent sends, in bytes.
pub const MAX_SENTENCE: usize = 4096;

/// The agent's answer (`POST /api/v1/explanations/{id}`): the decision in the words the
/// command line uses, and as JSON (the rule, the category, until when).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub sentence: String,
    pub decision: serde_json::Value,
}

/// The longest supervised use a release may ask for, in minutes: a week. The console, the
/// agent's command line and the agent reading release requests all hold to it.
pub const SUPERVISED_MAX_MINUTES: u32 = 7 * 24 * 60;

/// The kind of command that releases a device.
pub const RELEASE: &str = "release";

/// `GET /api/v1/commands`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commands {
    pub commands: Vec<Command>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_and_an_older_one_still_reads() {
        let mut s = AgentStatus::of_version("0.1.0");
        s.policy = Some("00ff".into());
        s.events_dropped = 1999;
        s.backlog = 7;
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<AgentStatus>(&text).unwrap(), s);
        let older: AgentStatus = serde_json::from_str(r#"{"backlog":3,"new_counter":1}"#).unwrap();
        assert_eq!(older.backlog, 3);
        assert_eq!(older.events_dropped, 0);
    }
}

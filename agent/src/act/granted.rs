//! The console's granted exceptions, and the policy the console checks requests against.
//!
//! Every [`POLL`](crate::report::shipper::POLL) the agent asks `/api/v1/exceptions` for the
//! exceptions in force or to come, checks each against the policy's `requests:` again (IT's
//! file decides, whatever the console thought), and keeps those that pass in the state
//! directory's [`ADDED_FILE`]: the policy watch sees the file change and reloads, so an
//! approved exception reaches DNS, the firewall and inspection within seconds, and a revoked
//! one leaves them. The file outlives a console outage and a restart: an exception ends at
//! its own time, whether the console can be reached or not.
//!
//! After each new policy the agent also sends the policy file's text (`/api/v1/policy`), so
//! the console offers and checks requests against the policy in force.

use std::path::Path;
use std::sync::Arc;

use schoolgate_contract::granted::{GrantedList, MAX_GRANTED, MAX_POLICY_TEXT, PolicyText};
use schoolgate_engine::{Ask, Policy};
use serde::Serialize;
use tracing::{info, warn};

use crate::reload::LivePolicy;
use crate::report::events::bounded;

/// Why one round ended early (tried again at the next poll).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantedError {
    #[error("cannot reach the console: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the console answered {0}")]
    Refused(reqwest::StatusCode),
    #[error("the console sent {0} exceptions, more than {MAX_GRANTED}")]
    TooMany(usize),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One exception as the engine reads an added document (the keys of `exceptions:`).
#[derive(Debug, Serialize)]
struct Added<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    classes: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    people: &'a [String],
    allow: &'a [String],
    from: String,
    to: String,
    approved_by: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct AddedDocument<'a> {
    exceptions: Vec<Added<'a>>,
}

/// The added document for `list`: the exceptions not yet over at `now` that the policy's
/// `requests:` let be asked for (the others logged and left out).
pub fn document(list: &GrantedList, policy: &Policy, now: jiff::Timestamp) -> String {
    let mut exceptions = Vec::new();
    for g in &list.exceptions {
        if g.to <= now {
            continue;
        }
        let ask = Ask {
            allow: &g.allow,
            groups: &g.groups,
            classes: &g.classes,
            people: g.people.len(),
            minutes: g.minutes(),
        };
        if let Err(why) = policy.may_ask(&ask) {
            warn!(request = g.id, %why, "the console granted an exception the policy's requests do not allow; it is left out");
            continue;
        }
        exceptions.push(Added {
            name: &g.name,
            groups: &g.groups,
            classes: &g.classes,
            people: &g.people,
            allow: &g.allow,
            from: g.from.to_string(),
            to: g.to.to_string(),
            approved_by: format!("{} (console)", g.approved_by),
            reason: format!("{} (asked by {})", g.reason, g.requested_by),
        });
    }
    // Pretty, one key a line: an error in it names a line worth reading.
    serde_json::to_string_pretty(&AddedDocument { exceptions }).unwrap_or_default()
}

/// Writes `text` to `path` (through a temporary file, so the watch never reads half of it)
/// when it differs from what is there; whether it did.
pub fn write_if_changed(path: &Path, text: &str) -> Result<bool, GrantedError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let temporary = path.with_extension("json.new");
    let write = || -> std::io::Result<()> {
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|source| GrantedError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(true)
}

/// One round: the granted exceptions fetched, checked and kept in `file`.
pub async fn sync_once(
    base: &str,
    token: &str,
    client: &reqwest::Client,
    live: &LivePolicy,
    file: &Path,
) -> Result<(), GrantedError> {
    let res = client
        .get(format!("{base}/api/v1/exceptions"))
        .bearer_auth(token)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(GrantedError::Refused(res.status()));
    }
    let list: GrantedList = res.json().await?;
    if list.exceptions.len() > MAX_GRANTED {
        return Err(GrantedError::TooMany(list.exceptions.len()));
    }
    let text = document(&list, &live.current(), crate::clock::now());
    if write_if_changed(file, &text)? {
        info!(
            exceptions = list.exceptions.len(),
            "granted exceptions from the console kept; the policy reloads with them"
        );
    }
    Ok(())
}

/// Sends the policy file's text in force when its fingerprint is not `sent` (the last one
/// the console took); the fingerprint it took.
pub async fn send_policy(
    base: &str,
    token: &str,
    client: &reqwest::Client,
    live: &Arc<LivePolicy>,
    sent: Option<u64>,
) -> Result<Option<u64>, GrantedError> {
    let fingerprint = live.fingerprint();
    if sent == Some(fingerprint) {
        return Ok(sent);
    }
    let text = live.text();
    if text.len() > MAX_POLICY_TEXT {
        warn!(
            bytes = text.len(),
            "the policy file is too long to send to the console"
        );
        return Ok(Some(fingerprint));
    }
    let body = PolicyText {
        fingerprint: format!("{fingerprint:016x}"),
        text: text.to_string(),
    };
    let res = client
        .post(format!("{base}/api/v1/policy"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    if !status.is_success() {
        let answer = bounded(&res.text().await.unwrap_or_default());
        warn!(%status, %answer, "the console did not take the policy");
        return Err(GrantedError::Refused(status));
    }
    Ok(Some(fingerprint))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use schoolgate_contract::granted::Granted;

    const POLICY: &str = r#"
version: 1
school: { name: Test, timezone: Europe/London }
categories:
  youtube: { domains: [youtube.com] }
  social_networking: { domains: [instagram.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
requests:
  - { name: Lesson video, allow: [youtube], classes: [all], longest_minutes: 120 }
"#;

    fn policy() -> Policy {
        Policy::from_yaml(POLICY, Path::new("p.yaml"), &|_: &Path| Ok(String::new())).unwrap()
    }

    /// The test policy with the document `text` added, as the agent reloads it.
    fn with_added(text: &str) -> (Policy, Vec<schoolgate_engine::PolicyError>) {
        Policy::from_yaml_with(
            POLICY,
            Path::new("p.yaml"),
            &|_: &Path| Ok(String::new()),
            Some((text, Path::new("console-exceptions.json"))),
        )
        .unwrap()
    }

    fn granted(id: i64, allow: &str, from: &str, to: &str) -> Granted {
        Granted {
            id,
            name: format!("{allow} for 6B (request {id})"),
            allow: vec![allow.into()],
            groups: vec![],
            classes: vec!["6B".into()],
            people: vec![],
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            requested_by: "mr.osei".into(),
            approved_by: "head".into(),
            reason: "Media unit".into(),
        }
    }

    #[test]
    fn only_what_the_policy_lets_be_asked_for_and_not_yet_over_is_kept() {
        let policy = policy();
        let list = GrantedList {
            exceptions: vec![
                granted(1, "youtube", "2026-12-01T13:00:00Z", "2026-12-01T14:00:00Z"),
                // Not in `requests:`: the console's word is not enough.
                granted(
                    2,
                    "social_networking",
                    "2026-12-01T13:00:00Z",
                    "2026-12-01T14:00:00Z",
                ),
                // Longer than the rule allows.
                granted(3, "youtube", "2026-12-01T13:00:00Z", "2026-12-01T16:00:00Z"),
                // Over already.
                granted(4, "youtube", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"),
            ],
        };
        let now = "2026-12-01T12:00:00Z".parse().unwrap();
        let text = document(&list, &policy, now);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kept = doc["exceptions"].as_array().unwrap();
        assert_eq!(kept.len(), 1, "{text}");
        assert_eq!(kept[0]["name"], "youtube for 6B (request 1)");
        assert_eq!(kept[0]["approved_by"], "head (console)");
        assert_eq!(kept[0]["reason"], "Media unit (asked by mr.osei)");
        // The engine takes it as written: the document is one it reads.
        let (with, skipped) = with_added(&text);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(with.exceptions().len(), 1);
    }

    /// A site alone, approved where its category may be asked for, opens that site and not
    /// the rest of its category; one in a category no request may open is left out.
    #[test]
    fn an_approved_site_opens_that_site_alone() {
        let policy = policy();
        let list = GrantedList {
            exceptions: vec![
                granted(
                    5,
                    "www.youtube.com",
                    "2026-12-01T11:00:00Z",
                    "2026-12-01T13:00:00Z",
                ),
                granted(
                    6,
                    "instagram.com",
                    "2026-12-01T11:00:00Z",
                    "2026-12-01T13:00:00Z",
                ),
            ],
        };
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let text = document(&list, &policy, now);
        let (with, skipped) = with_added(&text);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(with.exceptions().len(), 1, "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["exceptions"][0]["allow"],
            serde_json::json!(["www.youtube.com"])
        );
    }

    #[test]
    fn the_file_is_written_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("console-exceptions.json");
        assert!(write_if_changed(&file, "{\"exceptions\": []}").unwrap());
        assert!(!write_if_changed(&file, "{\"exceptions\": []}").unwrap());
        assert!(write_if_changed(&file, "{\"exceptions\": [1]}").unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\"exceptions\": [1]}"
        );
    }
}

//! The console's questions (`explain` commands): what the policy in force decides for a
//! device, the person the console names (looked up in this gateway's directory) and a site
//! at a time, answered with the decision function and the sentence `schoolgate-agent
//! explain` prints, and sent back to `/api/v1/explanations/{id}`.

use schoolgate_contract::status::{Explanation, Question};
use schoolgate_engine::{Client, MacAddr, PersonView, Policy, decide, explain};

use crate::people::sessions::LiveSessions;
use crate::report::events::bounded;

/// The answer to `q` under `policy`, the person found in `people`'s directory.
pub fn answer(policy: &Policy, people: Option<&LiveSessions>, q: &Question) -> Explanation {
    let Ok(ip) = q.client.trim().parse::<std::net::IpAddr>() else {
        return Explanation {
            sentence: format!(
                "The console asked about {}, which is not an IP address.",
                bounded(&q.client)
            ),
            decision: serde_json::Value::Null,
        };
    };
    let mac = q
        .mac
        .as_deref()
        .and_then(|m| m.trim().parse::<MacAddr>().ok());
    let client = Client::new(ip, mac);
    let found = q
        .person
        .as_deref()
        .and_then(|u| people.and_then(|p| p.person_named(u)));
    let view = found.as_ref().map(|p| PersonView {
        username: p.username.as_str(),
        class: p.class.as_deref(),
        groups: &p.groups,
    });
    let decision = decide(policy, &client, view.as_ref(), &q.name, q.at, false);
    let mut sentence = explain::sentence(policy, &decision, &client, view.as_ref(), &q.name, q.at);
    if let (Some(user), None) = (&q.person, &found) {
        sentence = format!(
            "{} is not in this gateway's directory of pupils and staff; for the device alone: \
             {sentence}",
            bounded(user)
        );
    }
    Explanation {
        decision: explain::to_json(policy, &decision, &client, view.as_ref(), &q.name, q.at),
        sentence,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    const POLICY: &str = r#"
version: 1
school: { name: Test, timezone: UTC }
categories:
  video: { label: online video, domains: [youtube.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
rules:
  - { name: No video, groups: [pupils], block: [video] }
"#;

    fn question(client: &str, person: Option<&str>) -> Question {
        Question {
            id: 1,
            client: client.into(),
            mac: None,
            person: person.map(str::to_owned),
            name: "www.youtube.com".into(),
            at: "2026-12-01T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_question_is_answered_as_the_command_line_answers_it() {
        let policy =
            Policy::from_yaml(POLICY, Path::new("p.yaml"), &|_: &Path| Ok(String::new())).unwrap();
        let a = answer(&policy, None, &question("10.10.3.7", None));
        assert!(a.sentence.starts_with("Blocked:"), "{}", a.sentence);
        assert!(a.sentence.contains("No video"), "{}", a.sentence);
        assert_eq!(a.decision["action"], "block", "{}", a.decision);
        let unknown = answer(&policy, None, &question("10.10.3.7", Some("nobody")));
        assert!(
            unknown
                .sentence
                .starts_with("nobody is not in this gateway's directory")
        );
        let bad = answer(&policy, None, &question("<script>", None));
        assert!(bad.sentence.contains("not an IP address"));
    }
}

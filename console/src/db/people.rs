//! People as the events name them: one person's history across devices, and finding people
//! by username or name. A person is known here only by what agents reported with events
//! (username, display name, class); the console keeps no directory of its own.

use sqlx::Row as _;

use super::events::{Stored, stored};
use super::{Db, DbError, Scope, Statement};

/// A person found by a search: their username, and the latest name and class reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub username: String,
    pub name: Option<String>,
    pub class: Option<String>,
}

/// The longest search text used, in characters.
const MAX_SEARCH: usize = 64;

impl Db {
    /// `username`'s events on every device in `scope`, newest first: `limit` from `offset`.
    pub async fn person_history(
        &self,
        scope: &Scope,
        username: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Stored>, DbError> {
        let mut q = Statement::new(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE person_username = "
        ));
        q.bind(username);
        scope.push(&mut q, "agent");
        q.push(" ORDER BY time_ms DESC, id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        self.rows(q.query(), "read a person's history", stored)
            .await
    }

    /// People whose username or name holds `text` (without case), at most `limit`, by
    /// username, from the events in `scope`.
    pub async fn find_people(
        &self,
        scope: &Scope,
        text: &str,
        limit: i64,
    ) -> Result<Vec<Found>, DbError> {
        // The text is a pattern's literal part: `%`, `_` and `\` in it match themselves.
        let literal: String = text
            .trim()
            .chars()
            .take(MAX_SEARCH)
            .flat_map(char::to_lowercase)
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{literal}%");
        let mut q = Statement::new(
            "SELECT person_username, MAX(person_name) AS person_name, \
             MAX(person_class) AS person_class FROM events \
             WHERE person_username IS NOT NULL AND (LOWER(person_username) LIKE ",
        );
        q.bind(pattern.as_str())
            .push(" ESCAPE '\\' OR LOWER(person_name) LIKE ")
            .bind(pattern.as_str())
            .push(" ESCAPE '\\')");
        scope.push(&mut q, "agent");
        q.push(" GROUP BY person_username ORDER BY person_username LIMIT ")
            .bind(limit);
        self.rows(q.query(), "find people", |r| {
            Ok(Found {
                username: r.try_get("person_username")?,
                name: r.try_get("person_name")?,
                class: r.try_get("person_class")?,
            })
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use schoolgate_contract::wire::parse_event;

    use crate::db::testing;

    fn event(user: &str, name: &str, ip: &str, kind: &str) -> schoolgate_contract::wire::Received {
        parse_event(serde_json::json!({
            "id": uuid::Uuid::now_v7().to_string(), "time": jiff::Timestamp::now().to_string(),
            "kind": kind, "device": {"ip": ip}, "name": "vpn.example", "severity": "high",
            "person": {"username": user, "display_name": name, "class": "6B", "group": "pupils"},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_persons_history_spans_devices_and_people_are_found_by_name() {
        for (db, _dir) in testing::each().await {
            let batch = [
                event("amira.k", "Amira Khan", "10.10.4.21", "bypass_attempt"),
                event("amira.k", "Amira Khan", "10.10.4.22", "quarantined"),
                event("ben.t", "Ben Taylor", "10.10.4.21", "blocked"),
                event("x_y", "100% Sure", "10.10.4.23", "blocked"),
            ];
            db.ingest("gw1", &batch, 1).await.unwrap();
            let amira = db
                .person_history(&crate::db::Scope::Trust, "amira.k", 10, 0)
                .await
                .unwrap();
            assert_eq!(amira.len(), 2);
            assert_eq!(amira[0].device_ip.as_deref(), Some("10.10.4.22"));
            assert_eq!(amira[1].device_ip.as_deref(), Some("10.10.4.21"));
            let found = db
                .find_people(&crate::db::Scope::Trust, "KHAN", 10)
                .await
                .unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].username, "amira.k");
            assert_eq!(found[0].class.as_deref(), Some("6B"));
            let a: Vec<String> = db
                .find_people(&crate::db::Scope::Trust, "a", 10)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.username)
                .collect();
            assert_eq!(a, ["amira.k", "ben.t"], "by username or name, in order");
            // Pattern characters match themselves.
            let literal = db
                .find_people(&crate::db::Scope::Trust, "%", 10)
                .await
                .unwrap();
            assert_eq!(literal.len(), 1, "{literal:?}");
            assert_eq!(
                db.find_people(&crate::db::Scope::Trust, "_", 10)
                    .await
                    .unwrap()[0]
                    .username,
                "x_y"
            );
            assert!(
                db.find_people(&crate::db::Scope::Trust, "nobody", 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

//! What the safeguarding lead records on an incident: its triage status (new → acknowledged
//! → resolved, with outcome and action taken), case notes, and the history of every change
//! with who made it and when. A change and its history line are written in one transaction;
//! the status is copied onto the incident's alerts, so every list of events agrees.

use sqlx::{Any, Row};

use super::{Db, DbError, sql};

/// Triage states, in the order an alert moves through them.
pub const STATUSES: [&str; 3] = ["new", "acknowledged", "resolved"];

/// A case note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub author: String,
    pub time_ms: i64,
    pub body: String,
}

/// One change to an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub who: String,
    pub time_ms: i64,
    pub what: String,
}

/// A triage decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triage<'a> {
    pub status: &'a str,
    pub outcome: Option<&'a str>,
    pub action_taken: Option<&'a str>,
}

impl Triage<'_> {
    /// The history line for this decision.
    fn describe(&self) -> String {
        let mut what = format!("status {}", self.status);
        if let Some(o) = self.outcome {
            what.push_str("; outcome: ");
            what.push_str(o);
        }
        if let Some(a) = self.action_taken {
            what.push_str("; action taken: ");
            what.push_str(a);
        }
        what
    }
}

impl Db {
    /// Records `triage` on incident `id` by `who`; false if there is no such incident.
    pub async fn triage(
        &self,
        id: &str,
        triage: &Triage<'_>,
        who: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin triage"))?;
        let done = sqlx::query::<Any>(
            "UPDATE incidents SET status = $1, outcome = $2, action_taken = $3 WHERE id = $4",
        )
        .bind(triage.status)
        .bind(triage.outcome)
        .bind(triage.action_taken)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(sql("record triage"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query::<Any>(
            "UPDATE events SET status = $1, outcome = $2, action_taken = $3 WHERE incident = $4",
        )
        .bind(triage.status)
        .bind(triage.outcome)
        .bind(triage.action_taken)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(sql("record triage on the alerts"))?;
        record(&mut tx, id, who, &triage.describe(), now_ms).await?;
        tx.commit().await.map_err(sql("commit triage"))?;
        Ok(true)
    }

    /// Adds a case note to incident `id`; false if there is no such incident.
    pub async fn add_note(
        &self,
        id: &str,
        author: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a note"))?;
        let done = sqlx::query::<Any>(
            "INSERT INTO notes (event_id, author, time_ms, body) \
             SELECT id, $1, $2, $3 FROM incidents WHERE id = $4",
        )
        .bind(author)
        .bind(now_ms)
        .bind(body)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(sql("add a note"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // The history says a note was written, not what it says: IT reads the history.
        record(&mut tx, id, author, "note added", now_ms).await?;
        tx.commit().await.map_err(sql("commit a note"))?;
        Ok(true)
    }

    /// Adds a line to incident `id`'s history (an action taken elsewhere, such as a release).
    pub async fn add_change(
        &self,
        id: &str,
        who: &str,
        what: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a change"))?;
        record(&mut tx, id, who, what, now_ms).await?;
        tx.commit().await.map_err(sql("commit a change"))
    }

    /// Alert `id`'s notes, oldest first.
    pub async fn notes(&self, id: &str) -> Result<Vec<Note>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT author, time_ms, body FROM notes WHERE event_id = $1 ORDER BY time_ms, id",
        )
        .bind(id);
        self.rows(q, "read notes", |r| {
            Ok(Note {
                author: r.try_get("author")?,
                time_ms: r.try_get("time_ms")?,
                body: r.try_get("body")?,
            })
        })
        .await
    }

    /// Alert `id`'s history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Change>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT who, time_ms, what FROM alert_history WHERE event_id = $1 \
             ORDER BY time_ms, id",
        )
        .bind(id);
        self.rows(q, "read an alert's history", |r| {
            Ok(Change {
                who: r.try_get("who")?,
                time_ms: r.try_get("time_ms")?,
                what: r.try_get("what")?,
            })
        })
        .await
    }
}

async fn record(
    tx: &mut sqlx::Transaction<'_, Any>,
    id: &str,
    who: &str,
    what: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query::<Any>(
        "INSERT INTO alert_history (event_id, who, time_ms, what) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(who)
    .bind(now_ms)
    .bind(what)
    .execute(&mut **tx)
    .await
    .map_err(sql("record a change"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::event;
    use crate::db::testing;

    #[tokio::test]
    async fn triage_and_notes_are_recorded_with_who_and_when() {
        for (db, _dir) in testing::each().await {
            let alert = event(1, "bypass_attempt");
            let blocked = event(2, "blocked");
            db.ingest("gw1", &[alert.clone(), blocked.clone()], 1)
                .await
                .unwrap();
            let id = alert.id.to_string();
            let ack = Triage {
                status: "acknowledged",
                outcome: None,
                action_taken: None,
            };
            assert!(db.triage(&id, &ack, "dsl", 10).await.unwrap());
            let done = Triage {
                status: "resolved",
                outcome: Some("spoken to pupil"),
                action_taken: Some("ICT ban, supervised use only"),
            };
            assert!(db.triage(&id, &done, "dsl", 20).await.unwrap());
            assert!(db.add_note(&id, "dsl", "Mum phoned.", 15).await.unwrap());
            // Blocked activity is not an alert: it is not triaged and takes no notes.
            let other = blocked.id.to_string();
            assert!(!db.triage(&other, &ack, "dsl", 30).await.unwrap());
            assert!(!db.add_note(&other, "dsl", "x", 30).await.unwrap());
            assert!(!db.add_note("missing", "dsl", "x", 30).await.unwrap());

            let e = db
                .event(&crate::db::Scope::Trust, &id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(e.status, "resolved");
            assert_eq!(e.outcome.as_deref(), Some("spoken to pupil"));
            assert_eq!(
                db.notes(&id).await.unwrap(),
                [Note {
                    author: "dsl".into(),
                    time_ms: 15,
                    body: "Mum phoned.".into()
                }]
            );
            let history: Vec<_> = db
                .history(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.time_ms, c.what))
                .collect();
            assert_eq!(
                history,
                [
                    (10, "status acknowledged".to_owned()),
                    (15, "note added".to_owned()),
                    (
                        20,
                        "status resolved; outcome: spoken to pupil; \
                         action taken: ICT ban, supervised use only"
                            .to_owned()
                    ),
                ]
            );
            assert!(db.history(&other).await.unwrap().is_empty());
        }
    }
}

//! Explanations asked of a gateway: "why is this site blocked or allowed for this device
//! (and this person) at this time, and until when". The console cannot decide itself (the
//! lists and the directory are the gateway's), so the question goes to the agent as an
//! `explain` command and the agent's answer, in the words its command line uses, comes back.

use schoolgate_contract::status::{EXPLAIN, Question};
use sqlx::{Any, Row};

use super::{Db, DbError, sql};

/// An explanation asked for, answered or not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub id: i64,
    pub agent: String,
    pub asked_by: String,
    pub client: String,
    pub mac: Option<String>,
    pub person: Option<String>,
    pub name: String,
    pub at_ms: i64,
    pub asked_ms: i64,
    pub answered_ms: Option<i64>,
    pub sentence: Option<String>,
    /// The decision as JSON text.
    pub decision: Option<String>,
}

/// A question as the console asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask<'a> {
    pub agent: &'a str,
    pub asked_by: &'a str,
    pub client: &'a str,
    pub mac: Option<&'a str>,
    pub person: Option<&'a str>,
    pub name: &'a str,
    pub at_ms: i64,
}

impl Db {
    /// Stores the question and queues it for its agent, in one transaction; its number.
    pub async fn ask_explanation(&self, a: &Ask<'_>, now_ms: i64) -> Result<i64, DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a question"))?;
        let id = sqlx::query_scalar::<Any, i64>(
            "INSERT INTO explanations (agent, asked_by, client, mac, person, name, at_ms, \
             asked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(a.agent)
        .bind(a.asked_by)
        .bind(a.client)
        .bind(a.mac)
        .bind(a.person)
        .bind(a.name)
        .bind(a.at_ms)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("store a question"))?;
        let question = Question {
            id,
            client: a.client.to_owned(),
            mac: a.mac.map(str::to_owned),
            person: a.person.map(str::to_owned),
            name: a.name.to_owned(),
            at: jiff::Timestamp::from_millisecond(a.at_ms).unwrap_or_default(),
        };
        let text = serde_json::to_string(&question).unwrap_or_default();
        sqlx::query::<Any>(
            "INSERT INTO commands (agent, kind, device, reason, by_user, created_ms, question) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.agent)
        .bind(EXPLAIN)
        .bind(a.client)
        .bind(a.name)
        .bind(a.asked_by)
        .bind(now_ms)
        .bind(text)
        .execute(&mut *tx)
        .await
        .map_err(sql("queue a question"))?;
        tx.commit().await.map_err(sql("commit a question"))?;
        Ok(id)
    }

    /// Question `id`, if it was put to an agent in `scope`.
    pub async fn explanation(
        &self,
        scope: &super::Scope,
        id: i64,
    ) -> Result<Option<Asked>, DbError> {
        let mut q = super::Statement::new(
            "SELECT id, agent, asked_by, client, mac, person, name, at_ms, asked_ms, \
             answered_ms, sentence, decision FROM explanations WHERE id = ",
        );
        q.bind(id);
        scope.push(&mut q, "agent");
        let rows = self
            .rows(q.query(), "read an explanation", |r| {
                Ok(Asked {
                    id: r.try_get("id")?,
                    agent: r.try_get("agent")?,
                    asked_by: r.try_get("asked_by")?,
                    client: r.try_get("client")?,
                    mac: r.try_get("mac")?,
                    person: r.try_get("person")?,
                    name: r.try_get("name")?,
                    at_ms: r.try_get("at_ms")?,
                    asked_ms: r.try_get("asked_ms")?,
                    answered_ms: r.try_get("answered_ms")?,
                    sentence: r.try_get("sentence")?,
                    decision: r.try_get("decision")?,
                })
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    /// `agent`'s answer to its question `id`; false if the question is not its own or was
    /// answered already.
    pub async fn answer_explanation(
        &self,
        agent: &str,
        id: i64,
        sentence: &str,
        decision: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE explanations SET answered_ms = $1, sentence = $2, decision = $3 \
             WHERE id = $4 AND agent = $5 AND answered_ms IS NULL",
        )
        .bind(now_ms)
        .bind(sentence)
        .bind(decision)
        .bind(id)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(sql("store an answer"))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[tokio::test]
    async fn a_question_goes_to_its_agent_and_only_it_answers() {
        for (db, _dir) in testing::each().await {
            let ask = Ask {
                agent: "gw1",
                asked_by: "it",
                client: "10.77.0.10",
                mac: None,
                person: Some("amira.k"),
                name: "youtube.com",
                at_ms: 1_795_946_523_000,
            };
            let id = db.ask_explanation(&ask, 5).await.unwrap();
            let pending = db.pending_commands("gw1").await.unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].kind, "explain");
            let q = pending[0].explain.as_ref().unwrap();
            assert_eq!((q.id, q.person.as_deref()), (id, Some("amira.k")));
            assert_eq!(q.at.as_millisecond(), 1_795_946_523_000);
            assert!(db.pending_commands("gw2").await.unwrap().is_empty());
            assert!(
                !db.answer_explanation("gw2", id, "x", "{}", 6)
                    .await
                    .unwrap()
            );
            assert!(
                db.answer_explanation("gw1", id, "Allowed: …", "{}", 6)
                    .await
                    .unwrap()
            );
            assert!(
                !db.answer_explanation("gw1", id, "again", "{}", 7)
                    .await
                    .unwrap()
            );
            let a = db
                .explanation(&crate::db::Scope::Trust, id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(a.sentence.as_deref(), Some("Allowed: …"));
        }
    }
}

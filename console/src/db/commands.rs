//! Commands waiting for agents: release a device from quarantine (and the person whose ban
//! it is, where the alert names one), with who and why. The
//! agent polls for its own, carries each out, and says so; a command is handed out until
//! it is marked done, so one lost on the way is sent again.

use schoolgate_contract::status::{Command, RELEASE};
use sqlx::{Any, Row};

use super::{Db, DbError, sql};

impl Db {
    /// Queues a release for `agent` of `device` and, if named, `person`'s ban; its id.
    #[allow(clippy::too_many_arguments, reason = "one column each")]
    pub async fn queue_release(
        &self,
        agent: &str,
        device: &str,
        person: Option<&str>,
        reason: &str,
        by: &str,
        event_id: Option<&str>,
        now_ms: i64,
    ) -> Result<i64, DbError> {
        sqlx::query_scalar::<Any, i64>(
            "INSERT INTO commands (agent, kind, device, person, reason, by_user, event_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(agent)
        .bind(RELEASE)
        .bind(device)
        .bind(person)
        .bind(reason)
        .bind(by)
        .bind(event_id)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("queue a command"))
    }

    /// Queues for `agent` the lifting of `person`'s ban, or with `supervised` (minutes, and
    /// `resume` or `end` after), supervised use; its id.
    pub async fn queue_person_release(
        &self,
        agent: &str,
        person: &str,
        supervised: Option<(u32, &str)>,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<i64, DbError> {
        sqlx::query_scalar::<Any, i64>(
            "INSERT INTO commands (agent, kind, device, person, supervised_minutes, then_what, \
             reason, by_user, created_ms) VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(agent)
        .bind(RELEASE)
        .bind(person)
        .bind(supervised.map(|(m, _)| i64::from(m)))
        .bind(supervised.map(|(_, t)| t))
        .bind(reason)
        .bind(by)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("queue a command"))
    }

    /// The commands `agent` has not yet carried out, oldest first.
    pub async fn pending_commands(&self, agent: &str) -> Result<Vec<Command>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT id, kind, device, person, supervised_minutes, then_what, reason, by_user, \
             question FROM commands \
             WHERE agent = $1 AND done_ms IS NULL ORDER BY id LIMIT 100",
        )
        .bind(agent);
        self.rows(q, "read commands", |r| {
            Ok(Command {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                device: r.try_get("device")?,
                person: r.try_get("person")?,
                supervised_minutes: r
                    .try_get::<Option<i64>, _>("supervised_minutes")?
                    .and_then(|m| u32::try_from(m).ok()),
                then: r.try_get("then_what")?,
                reason: r.try_get("reason")?,
                by: r.try_get("by_user")?,
                // Written by this console from a `Question`: one it cannot read is left out.
                explain: r
                    .try_get::<Option<String>, _>("question")?
                    .and_then(|q| serde_json::from_str(&q).ok()),
            })
        })
        .await
    }

    /// `agent` carried out command `id`; whether it was one of its own, pending.
    pub async fn command_done(&self, agent: &str, id: i64, now_ms: i64) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE commands SET done_ms = $1 WHERE id = $2 AND agent = $3 AND done_ms IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(sql("mark a command done"))?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::db::testing;

    #[tokio::test]
    async fn a_release_is_handed_out_until_its_agent_says_done() {
        for (db, _dir) in testing::each().await {
            let id = db
                .queue_release(
                    "gw1",
                    "10.10.3.7",
                    Some("amira.k"),
                    "spoken to",
                    "dsl",
                    None,
                    1,
                )
                .await
                .unwrap();
            db.queue_release("gw2", "10.10.3.8", None, "other school", "dsl", None, 1)
                .await
                .unwrap();
            let pending = db.pending_commands("gw1").await.unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(
                (
                    pending[0].kind.as_str(),
                    pending[0].device.as_str(),
                    pending[0].by.as_str()
                ),
                ("release", "10.10.3.7", "dsl")
            );
            assert_eq!(pending[0].person.as_deref(), Some("amira.k"));
            assert_eq!(db.pending_commands("gw2").await.unwrap()[0].person, None);
            // Asked again (an answer lost on the way): handed out again.
            assert_eq!(db.pending_commands("gw1").await.unwrap(), pending);
            assert!(!db.command_done("gw2", id, 2).await.unwrap(), "not gw2's");
            assert!(db.command_done("gw1", id, 2).await.unwrap());
            assert!(!db.command_done("gw1", id, 3).await.unwrap(), "done once");
            assert!(db.pending_commands("gw1").await.unwrap().is_empty());
            assert_eq!(db.pending_commands("gw2").await.unwrap().len(), 1);
        }
    }
}

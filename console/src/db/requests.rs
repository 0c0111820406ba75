//! Teachers' requests for exceptions and what became of them, and the policy text each
//! agent has in force (which the requests are checked against).
//!
//! A request moves from `requested` to `approved` or `declined`; an approved or waiting one
//! may be `revoked`. Every change is conditional on the status it moves from, so two
//! approvers deciding at once cannot both win, and a revoked request cannot be approved.

use sqlx::{Any, Row};

use super::{Db, DbError, sql};

pub const REQUESTED: &str = "requested";
pub const APPROVED: &str = "approved";
pub const DECLINED: &str = "declined";
pub const REVOKED: &str = "revoked";

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRequest {
    pub id: i64,
    /// The gateway (school) it is for.
    pub agent: String,
    pub requested_by: String,
    /// Category names.
    pub allow: Vec<String>,
    pub groups: Vec<String>,
    pub classes: Vec<String>,
    /// Usernames.
    pub people: Vec<String>,
    /// Its first period.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The same period each week, this many times in all (1: once).
    pub weeks: i64,
    /// The end of its last period: after it, the request is over.
    pub until_ms: i64,
    pub reason: String,
    pub status: String,
    pub created_ms: i64,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub decision_note: Option<String>,
}

impl ExceptionRequest {
    /// Its periods, `(from_ms, to_ms)`, a week apart at the same time of day in `zone`.
    pub fn periods(&self, zone: &crate::zone::Zone) -> Vec<(i64, i64)> {
        (0..self.weeks.clamp(1, MAX_WEEKS))
            .map(|k| {
                (
                    zone.weeks_later(self.from_ms, k),
                    zone.weeks_later(self.to_ms, k),
                )
            })
            .collect()
    }
}

/// Weeks a request may repeat at most: about a term.
pub const MAX_WEEKS: i64 = 14;

/// A request as a teacher makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest<'a> {
    pub agent: &'a str,
    pub requested_by: &'a str,
    pub allow: &'a [String],
    pub groups: &'a [String],
    pub classes: &'a [String],
    pub people: &'a [String],
    pub from_ms: i64,
    pub to_ms: i64,
    /// Times in all, a week apart (1: once).
    pub weeks: i64,
    /// The end of the last time.
    pub until_ms: i64,
    pub reason: &'a str,
}

const COLUMNS: &str = "id, agent, requested_by, allow, groups_for, classes, people, from_ms, \
     to_ms, weeks, until_ms, reason, status, created_ms, decided_by, decided_ms, decision_note";

fn lines(text: String) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn request(row: &sqlx::any::AnyRow) -> Result<ExceptionRequest, sqlx::Error> {
    Ok(ExceptionRequest {
        id: row.try_get("id")?,
        agent: row.try_get("agent")?,
        requested_by: row.try_get("requested_by")?,
        allow: lines(row.try_get("allow")?),
        groups: lines(row.try_get("groups_for")?),
        classes: lines(row.try_get("classes")?),
        people: lines(row.try_get("people")?),
        from_ms: row.try_get("from_ms")?,
        to_ms: row.try_get("to_ms")?,
        weeks: row.try_get("weeks")?,
        until_ms: row.try_get::<Option<i64>, _>("until_ms")?.unwrap_or(0),
        reason: row.try_get("reason")?,
        status: row.try_get("status")?,
        created_ms: row.try_get("created_ms")?,
        decided_by: row.try_get("decided_by")?,
        decided_ms: row.try_get("decided_ms")?,
        decision_note: row.try_get("decision_note")?,
    })
}

impl Db {
    /// Stores a new request, waiting for a decision; its number.
    pub async fn add_request(&self, r: &NewRequest<'_>, now_ms: i64) -> Result<i64, DbError> {
        sqlx::query_scalar::<Any, i64>(
            "INSERT INTO exception_requests (agent, requested_by, allow, groups_for, classes, \
             people, from_ms, to_ms, reason, status, created_ms, weeks, until_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(r.agent)
        .bind(r.requested_by)
        .bind(r.allow.join("\n"))
        .bind(r.groups.join("\n"))
        .bind(r.classes.join("\n"))
        .bind(r.people.join("\n"))
        .bind(r.from_ms)
        .bind(r.to_ms)
        .bind(r.reason)
        .bind(REQUESTED)
        .bind(now_ms)
        .bind(r.weeks.max(1))
        .bind(r.until_ms.max(r.to_ms))
        .fetch_one(&self.pool)
        .await
        .map_err(sql("store a request"))
    }

    /// Request `id`, if it is for an agent in `scope`.
    pub async fn request(
        &self,
        scope: &super::Scope,
        id: i64,
    ) -> Result<Option<ExceptionRequest>, DbError> {
        let mut q = super::Statement::new(&format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE id = "
        ));
        q.bind(id);
        scope.push(&mut q, "agent");
        Ok(self
            .rows(q.query(), "read a request", request)
            .await?
            .into_iter()
            .next())
    }

    /// Requests for agents in `scope`, newest first, at most `limit`: only `by`'s when
    /// given.
    pub async fn requests(
        &self,
        scope: &super::Scope,
        by: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExceptionRequest>, DbError> {
        let mut q = super::Statement::new(&format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE 1 = 1"
        ));
        if let Some(user) = by {
            q.push(" AND requested_by = ").bind(user);
        }
        scope.push(&mut q, "agent");
        q.push(" ORDER BY id DESC LIMIT ").bind(limit);
        self.rows(q.query(), "list requests", request).await
    }

    /// Moves request `id` from status `from` to `to`, as `who` decides at `now_ms` with
    /// `note`; false when it is no longer in `from` (someone decided first, or it was
    /// revoked) or is over.
    pub async fn decide_request(
        &self,
        id: i64,
        from: &str,
        to: &str,
        who: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE exception_requests SET status = $1, decided_by = $2, decided_ms = $3, \
             decision_note = $4 WHERE id = $5 AND status = $6 AND until_ms > $3",
        )
        .bind(to)
        .bind(who)
        .bind(now_ms)
        .bind(note)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await
        .map_err(sql("decide a request"))?;
        Ok(done.rows_affected() == 1)
    }

    /// `agent`'s approved requests not over at `now_ms`: what it is to apply.
    pub async fn granted(
        &self,
        agent: &str,
        now_ms: i64,
    ) -> Result<Vec<ExceptionRequest>, DbError> {
        let q = sqlx::query::<Any>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM exception_requests \
             WHERE agent = $1 AND status = $2 AND until_ms > $3 ORDER BY id"
        )))
        .bind(agent)
        .bind(APPROVED)
        .bind(now_ms);
        self.rows(q, "read granted requests", request).await
    }

    /// Keeps `text` as `agent`'s policy in force, unless it is the one kept last; whether
    /// it was new.
    pub async fn put_policy(
        &self,
        agent: &str,
        fingerprint: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        if self
            .policy_of(agent)
            .await?
            .is_some_and(|p| p.fingerprint == fingerprint && p.text == text)
        {
            return Ok(false);
        }
        sqlx::query::<Any>(
            "INSERT INTO policies (agent, fingerprint, text, received_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(agent)
        .bind(fingerprint)
        .bind(text)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("keep a policy"))?;
        Ok(true)
    }

    /// The policy `agent` sent last.
    pub async fn policy_of(&self, agent: &str) -> Result<Option<AgentPolicy>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT id, agent, fingerprint, text, received_ms FROM policies WHERE agent = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(agent);
        let rows = self.rows(q, "read a policy", agent_policy).await?;
        Ok(rows.into_iter().next())
    }
}

impl Db {
    /// The policies `agent` sent, newest first, at most `limit` (their text left out).
    pub async fn policy_history(
        &self,
        agent: &str,
        limit: i64,
    ) -> Result<Vec<AgentPolicy>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT id, agent, fingerprint, '' AS text, received_ms FROM policies \
             WHERE agent = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(agent)
        .bind(limit);
        self.rows(q, "read the policies' history", agent_policy)
            .await
    }

    /// Policy `id` as its agent sent it, and the one the same agent sent before it, if the
    /// agent is in `scope`.
    pub async fn policy_change(
        &self,
        scope: &super::Scope,
        id: i64,
    ) -> Result<Option<(AgentPolicy, Option<AgentPolicy>)>, DbError> {
        let read = agent_policy;
        let mut q = super::Statement::new(
            "SELECT id, agent, fingerprint, text, received_ms FROM policies WHERE id = ",
        );
        q.bind(id);
        scope.push(&mut q, "agent");
        let Some(this) = self
            .rows(q.query(), "read a policy", read)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let q = sqlx::query::<Any>(
            "SELECT id, agent, fingerprint, text, received_ms FROM policies \
             WHERE agent = $1 AND id < $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(this.agent.clone())
        .bind(id);
        let before = self
            .rows(q, "read a policy", read)
            .await?
            .into_iter()
            .next();
        Ok(Some((this, before)))
    }
}

fn agent_policy(r: &sqlx::any::AnyRow) -> Result<AgentPolicy, sqlx::Error> {
    Ok(AgentPolicy {
        id: r.try_get("id")?,
        agent: r.try_get("agent")?,
        fingerprint: r.try_get("fingerprint")?,
        text: r.try_get("text")?,
        received_ms: r.try_get("received_ms")?,
    })
}

/// The policy file an agent has in force, as it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPolicy {
    pub id: i64,
    pub agent: String,
    pub fingerprint: String,
    pub text: String,
    pub received_ms: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[tokio::test]
    async fn a_request_is_decided_once_and_granted_until_it_ends() {
        for (db, _dir) in testing::each().await {
            let six_b = vec!["6B".to_owned()];
            let youtube = vec!["youtube".to_owned()];
            let new = NewRequest {
                agent: "gw1",
                requested_by: "mr.osei",
                allow: &youtube,
                groups: &[],
                classes: &six_b,
                people: &[],
                from_ms: 1_000,
                to_ms: 5_000,
                weeks: 1,
                until_ms: 5_000,
                reason: "Media unit",
            };
            let id = db.add_request(&new, 10).await.unwrap();
            let other = db
                .add_request(
                    &NewRequest {
                        requested_by: "ms.ade",
                        ..new.clone()
                    },
                    11,
                )
                .await
                .unwrap();
            assert_eq!(
                db.requests(&crate::db::Scope::Trust, Some("mr.osei"), 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                db.requests(&crate::db::Scope::Trust, None, 10)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            assert!(db.granted("gw1", 100).await.unwrap().is_empty());

            assert!(
                db.decide_request(id, REQUESTED, APPROVED, "head", None, 100)
                    .await
                    .unwrap()
            );
            // Decided already: a second approver's decline changes nothing.
            assert!(
                !db.decide_request(id, REQUESTED, DECLINED, "dsl", Some("no"), 101)
                    .await
                    .unwrap()
            );
            let granted = db.granted("gw1", 100).await.unwrap();
            assert_eq!(granted.len(), 1);
            assert_eq!(granted[0].classes, six_b);
            assert_eq!(granted[0].decided_by.as_deref(), Some("head"));
            assert!(db.granted("gw2", 100).await.unwrap().is_empty());
            // Over: nothing to apply, and nothing to decide.
            assert!(db.granted("gw1", 5_000).await.unwrap().is_empty());
            assert!(
                !db.decide_request(other, REQUESTED, APPROVED, "head", None, 6_000)
                    .await
                    .unwrap()
            );
            // Revoked: the agent is sent it no more.
            assert!(
                db.decide_request(id, APPROVED, REVOKED, "head", Some("lesson moved"), 200)
                    .await
                    .unwrap()
            );
            assert!(db.granted("gw1", 300).await.unwrap().is_empty());
            assert_eq!(
                db.request(&crate::db::Scope::Trust, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .status,
                REVOKED
            );
        }
    }

    /// A lesson each week stays at its time of day when the clocks change: 09:00 to 10:00
    /// on Tuesday 20 October (summer time) and the two Tuesdays after (winter time).
    #[test]
    fn a_weekly_request_keeps_its_lesson_time_across_the_clocks_change() {
        let zone = crate::zone::Zone::default();
        let at = |text: &str| zone.local(text).unwrap();
        let r = ExceptionRequest {
            id: 1,
            agent: "gw1".into(),
            requested_by: "mr.osei".into(),
            allow: vec!["youtube".into()],
            groups: Vec::new(),
            classes: vec!["6B".into()],
            people: Vec::new(),
            from_ms: at("2026-10-20T09:00"),
            to_ms: at("2026-10-20T10:00"),
            weeks: 3,
            until_ms: at("2026-11-03T10:00"),
            reason: "Media".into(),
            status: APPROVED.into(),
            created_ms: 0,
            decided_by: None,
            decided_ms: None,
            decision_note: None,
        };
        let periods = r.periods(&zone);
        let expected: Vec<(i64, i64)> = ["2026-10-20", "2026-10-27", "2026-11-03"]
            .iter()
            .map(|d| (at(&format!("{d}T09:00")), at(&format!("{d}T10:00"))))
            .collect();
        assert_eq!(periods, expected);
        // Summer time, then winter: the same local hour is an hour later in UTC.
        assert_eq!(periods[1].0 - periods[0].0, 7 * 86_400_000 + 3_600_000);
        assert_eq!(zone.weeks_later(r.to_ms, 2), r.until_ms);
    }

    #[tokio::test]
    async fn a_policy_is_kept_once_per_change() {
        for (db, _dir) in testing::each().await {
            assert!(db.policy_of("gw1").await.unwrap().is_none());
            assert!(db.put_policy("gw1", "00aa", "version: 1", 1).await.unwrap());
            assert!(!db.put_policy("gw1", "00aa", "version: 1", 2).await.unwrap());
            assert!(
                db.put_policy("gw1", "00bb", "version: 1 # b", 3)
                    .await
                    .unwrap()
            );
            let p = db.policy_of("gw1").await.unwrap().unwrap();
            assert_eq!((p.fingerprint.as_str(), p.received_ms), ("00bb", 3));
        }
    }
}

//! Users, agents and sessions.

use sqlx::{Any, Row};

use super::{Db, DbError, sql};
use crate::auth::Role;

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    /// Kept for the audit trail; cannot sign in.
    pub disabled: bool,
    /// The school(s) whose records the user sees, ids joined by commas; `None`: the whole
    /// trust.
    pub school: Option<String>,
}

impl User {
    /// Whose records this user may see.
    pub fn scope(&self) -> super::Scope {
        super::Scope::of(self.school.as_deref())
    }
}

/// A user as `user list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub totp: bool,
    pub disabled: bool,
    pub sessions: i64,
    pub school: Option<String>,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires_ms: i64,
}

/// An agent as the console knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub last_seen_ms: Option<i64>,
    pub status: Option<String>,
    /// The school it serves; `None`: the trust's own (seen by users without a school only).
    pub school: Option<String>,
}

fn user(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse().unwrap_or(Role::It),
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        school: row.try_get("school")?,
    })
}

impl Db {
    /// Adds a user, or replaces the role and password of one with that name; whether it was
    /// new.
    pub async fn put_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let done =
            sqlx::query::<Any>("UPDATE users SET role = $1, password_hash = $2 WHERE name = $3")
                .bind(role.as_str())
                .bind(password_hash)
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(sql("update a user"))?;
        if done.rows_affected() > 0 {
            return Ok(false);
        }
        sqlx::query::<Any>(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("add a user"))?;
        Ok(true)
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query::<Any>(
            "SELECT id, name, role, password_hash, totp_secret, disabled, school FROM users \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("read a user"))?;
        row.as_ref()
            .map(user)
            .transpose()
            .map_err(sql("read a user"))
    }

    /// Adds an agent with the hash of its token; false if the name is taken.
    pub async fn add_agent(
        &self,
        name: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "INSERT INTO agents (name, token_hash, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(token_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("add an agent"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives agent `name` a new token (a rotation, or a revoked agent's return); false if
    /// there is no such agent. The old token stops working at once.
    pub async fn set_agent_token(&self, name: &str, token_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE agents SET token_hash = $1, revoked_ms = NULL WHERE name = $2",
        )
        .bind(token_hash)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(sql("set an agent's token"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes agent `name`'s token (its events stay); false if there is no such agent.
    pub async fn revoke_agent(&self, name: &str, now_ms: i64) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>("UPDATE agents SET revoked_ms = $1 WHERE name = $2")
            .bind(now_ms)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql("revoke an agent"))?;
        Ok(done.rows_affected() > 0)
    }

    /// The agent whose token hashes to `token_hash`, unless revoked.
    pub async fn agent_by_token(&self, token_hash: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar::<Any, String>(
            "SELECT name FROM agents WHERE token_hash = $1 AND revoked_ms IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("find an agent"))
    }

    /// Notes that `agent` was heard from, with the status it sent (if any).
    pub async fn agent_seen(
        &self,
        agent: &str,
        status: Option<&str>,
        now_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query::<Any>(
            "UPDATE agents SET last_seen_ms = $1, status = COALESCE($2, status) WHERE name = $3",
        )
        .bind(now_ms)
        .bind(status)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(sql("note an agent's visit"))?;
        Ok(())
    }

    /// The agents in `scope`, by name.
    pub async fn agents(&self, scope: &super::Scope) -> Result<Vec<Agent>, DbError> {
        let mut q = super::Statement::new(
            "SELECT name, last_seen_ms, status, school FROM agents WHERE 1 = 1",
        );
        scope.push(&mut q, "name");
        q.push(" ORDER BY name");
        self.rows(q.query(), "list agents", |r| {
            Ok(Agent {
                name: r.try_get("name")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                status: r.try_get("status")?,
                school: r.try_get("school")?,
            })
        })
        .await
    }

    /// Each agent in `scope` that serves a school, with that school's id.
    pub async fn agent_schools(
        &self,
        scope: &super::Scope,
    ) -> Result<std::collections::HashMap<String, String>, DbError> {
        Ok(self
            .agents(scope)
            .await?
            .into_iter()
            .filter_map(|a| Some((a.name, a.school?)))
            .collect())
    }

    /// Whether agent `name` exists and is in `scope`.
    pub async fn agent_in(&self, scope: &super::Scope, name: &str) -> Result<bool, DbError> {
        let mut q = super::Statement::new("SELECT COUNT(*) AS n FROM agents WHERE name = ");
        q.bind(name);
        scope.push(&mut q, "name");
        let n = self
            .rows(q.query(), "find an agent", |r| r.try_get::<i64, _>("n"))
            .await?;
        Ok(n.first().is_some_and(|n| *n > 0))
    }

    /// Puts agent `name` in `school` (`None`: the trust's own); false if there is no such
    /// agent. Its records, old and new, are then the school's.
    pub async fn set_agent_school(
        &self,
        name: &str,
        school: Option<&str>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>("UPDATE agents SET school = $1 WHERE name = $2")
            .bind(school)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql("set an agent's school"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts user `name` in `school` (`None`: the whole trust); false if there is no such
    /// user. The caller ends their sessions, as after any change to an account, so no page
    /// goes on showing the old school's records.
    pub async fn set_user_school(&self, name: &str, school: Option<&str>) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>("UPDATE users SET school = $1 WHERE name = $2")
            .bind(school)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql("set a user's school"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets (or with `None` removes) a user's TOTP secret; whether the user exists.
    pub async fn set_totp(&self, name: &str, secret: Option<&str>) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE users SET totp_secret = $1, totp_step = NULL WHERE name = $2",
        )
        .bind(secret)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(sql("set a TOTP secret"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Seals every TOTP secret stored before sealing began; how many.
    pub async fn seal_totp_secrets(&self, sealer: &crate::auth::Sealer) -> Result<u64, DbError> {
        let q =
            sqlx::query::<Any>("SELECT name, totp_secret FROM users WHERE totp_secret IS NOT NULL");
        let plain: Vec<(String, String)> = self
            .rows(q, "read TOTP secrets", |r| {
                Ok((r.try_get("name")?, r.try_get("totp_secret")?))
            })
            .await?;
        let mut n = 0;
        for (name, secret) in plain {
            if secret.starts_with(crate::auth::SEALED) {
                continue;
            }
            let sealed = sealer.seal(&secret)?;
            sqlx::query::<Any>(
                "UPDATE users SET totp_secret = $1 WHERE name = $2 AND totp_secret = $3",
            )
            .bind(sealed)
            .bind(&name)
            .bind(&secret)
            .execute(&self.pool)
            .await
            .map_err(sql("seal a TOTP secret"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Records that user `id` signed in with TOTP step `step`; false if that step (or a
    /// later one) was used already, so a code is taken once.
    pub async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(
            "UPDATE users SET totp_step = $1 WHERE id = $2 \
             AND (totp_step IS NULL OR totp_step < $1)",
        )
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(sql("record a TOTP step"))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn add_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query::<Any>(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_ms, expires_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("start a session"))?;
        Ok(())
    }

    /// The live session whose token hashes to `token_hash`: not expired, used within
    /// `idle_ms`, its user not disabled. Its last use is noted (at most once a minute).
    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<Session>, DbError> {
        self.session_used(token_hash, now_ms, idle_ms, true).await
    }

    /// The live session as [`Db::session`] finds it, its last use noted only if `used` (a
    /// page left open re-checks its session without keeping it alive).
    pub async fn session_used(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
        used: bool,
    ) -> Result<Option<Session>, DbError> {
        let row = sqlx::query::<Any>(
            "SELECT u.id, u.name, u.role, u.password_hash, u.totp_secret, u.disabled, u.school, \
             s.csrf, \
             s.expires_ms, s.seen_ms FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_ms > $2 AND s.seen_ms > $3 \
             AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(now_ms.saturating_sub(idle_ms))
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("read a session"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let read = || -> Result<(Session, i64), sqlx::Error> {
            Ok((
                Session {
                    user: user(&r)?,
                    csrf: r.try_get("csrf")?,
                    expires_ms: r.try_get("expires_ms")?,
                },
                r.try_get("seen_ms")?,
            ))
        };
        let (session, seen_ms) = read().map_err(sql("read a session"))?;
        if used && now_ms - seen_ms >= 60_000 {
            sqlx::query::<Any>("UPDATE sessions SET seen_ms = $1 WHERE token_hash = $2")
                .bind(now_ms)
                .bind(token_hash)
                .execute(&self.pool)
                .await
                .map_err(sql("note a session's use"))?;
        }
        Ok(Some(session))
    }

    /// Ends every session of user `name` (a change to the account, or its owner's wish);
    /// how many.
    pub async fn end_sessions_of(&self, name: &str) -> Result<u64, DbError> {
        let done = sqlx::query::<Any>(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(sql("end a user's sessions"))?;
        Ok(done.rows_affected())
    }

    /// Ends every session of every user; how many.
    pub async fn end_all_sessions(&self) -> Result<u64, DbError> {
        let done = sqlx::query::<Any>("DELETE FROM sessions")
            .execute(&self.pool)
            .await
            .map_err(sql("end all sessions"))?;
        Ok(done.rows_affected())
    }

    /// Sets user `name`'s password hash; false if there is no such user.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, DbError> {
        self.change_user(
            "UPDATE users SET password_hash = $1 WHERE name = $2",
            password_hash,
            name,
            "set a password",
        )
        .await
    }

    /// Sets user `name`'s role; false if there is no such user.
    pub async fn set_role(&self, name: &str, role: Role) -> Result<bool, DbError> {
        self.change_user(
            "UPDATE users SET role = $1 WHERE name = $2",
            role.as_str(),
            name,
            "set a role",
        )
        .await
    }

    /// Disables (or enables again) user `name`; false if there is no such user.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql("disable a user"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes user `name` and their sessions; false if there is no such user. What they
    /// did stays in the audit log and the alerts' history under their name.
    pub async fn remove_user(&self, name: &str) -> Result<bool, DbError> {
        self.end_sessions_of(name).await?;
        let done = sqlx::query::<Any>("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql("remove a user"))?;
        Ok(done.rows_affected() > 0)
    }

    /// One change to a user, by name; whether there was such a user.
    async fn change_user(
        &self,
        text: &'static str,
        value: &str,
        name: &str,
        what: &'static str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query::<Any>(text)
            .bind(value)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(sql(what))?;
        Ok(done.rows_affected() > 0)
    }

    /// The users `scope` covers (a school's: those of its school alone), by name.
    pub async fn accounts(
        &self,
        scope: &super::Scope,
        now_ms: i64,
    ) -> Result<Vec<Account>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT u.name, u.role, u.totp_secret, u.disabled, u.school, \
             (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_ms > $1) \
             AS n FROM users u ORDER BY u.name",
        )
        .bind(now_ms);
        let all = self
            .rows(q, "list users", |r| {
                let role: String = r.try_get("role")?;
                Ok(Account {
                    name: r.try_get("name")?,
                    role: role.parse().unwrap_or(Role::It),
                    totp: r.try_get::<Option<String>, _>("totp_secret")?.is_some(),
                    disabled: r.try_get::<i64, _>("disabled")? != 0,
                    sessions: r.try_get("n")?,
                    school: r.try_get("school")?,
                })
            })
            .await?;
        // Accounts are few; a school's admin reaches those whose schools are all theirs.
        Ok(all
            .into_iter()
            .filter(|a| scope.covers(&super::Scope::of(a.school.as_deref())))
            .collect())
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query::<Any>("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(sql("end a session"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::db::testing;

    #[tokio::test]
    async fn agents_are_found_by_token_hash_and_their_visits_noted() {
        for (db, _dir) in testing::each().await {
            assert!(db.add_agent("gw1", "hash1", 1).await.unwrap());
            assert!(
                !db.add_agent("gw1", "hash2", 1).await.unwrap(),
                "name taken"
            );
            assert_eq!(
                db.agent_by_token("hash1").await.unwrap().as_deref(),
                Some("gw1")
            );
            assert_eq!(db.agent_by_token("hash2").await.unwrap(), None);
            db.agent_seen("gw1", Some(r#"{"backlog":3}"#), 5)
                .await
                .unwrap();
            // A visit without status keeps the last one.
            db.agent_seen("gw1", None, 9).await.unwrap();
            let agents = db.agents(&crate::db::Scope::Trust).await.unwrap();
            assert_eq!(agents.len(), 1);
            assert_eq!(agents[0].last_seen_ms, Some(9));
            assert_eq!(agents[0].status.as_deref(), Some(r#"{"backlog":3}"#));
        }
    }

    #[tokio::test]
    async fn totp_secrets_stored_before_sealing_are_sealed_once() {
        for (db, _dir) in testing::each().await {
            db.put_user("dsl", crate::auth::Role::Dsl, "hash", 1)
                .await
                .unwrap();
            db.set_totp("dsl", Some("JBSWY3DPEHPK3PXP")).await.unwrap();
            let sealer = crate::auth::Sealer::random().unwrap();
            assert_eq!(db.seal_totp_secrets(&sealer).await.unwrap(), 1);
            assert_eq!(db.seal_totp_secrets(&sealer).await.unwrap(), 0);
            let stored = db
                .user_by_name("dsl")
                .await
                .unwrap()
                .unwrap()
                .totp_secret
                .unwrap();
            assert!(stored.starts_with(crate::auth::SEALED));
            assert_eq!(sealer.open(&stored).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        }
    }
}

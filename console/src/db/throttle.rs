//! The sign-in throttle's attempts kept in the database, for consoles sharing PostgreSQL:
//! a guess made on one console counts on every other, with the rules of
//! [`crate::auth::Throttle`] ([`ready_at`]). Attempts on one account are counted one at a
//! time across consoles (a transaction-scoped advisory lock on its key), so simultaneous
//! guesses cannot slip past the limit. Attempts past the window are deleted as new ones
//! come.

use sqlx::{Any, Row};

use super::{Backend, Db, DbError, sql};
use crate::auth::{Attempt, Refusal, Throttle, ready_at};

impl Db {
    /// Counts `attempt` at `now_ms`, or refuses it, as [`Throttle::begin`] does.
    pub async fn login_begin(
        &self,
        attempt: Attempt,
        now_ms: i64,
    ) -> Result<Result<Attempt, Refusal>, DbError> {
        let keys = Throttle::keys(&attempt).map(|(_, k)| k);
        let since = now_ms - Throttle::WINDOW_MS;
        let mut tx = self.pool.begin().await.map_err(sql("count a sign-in"))?;
        if self.backend == Backend::Postgres {
            sqlx::query::<Any>("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(keys[0].as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("count a sign-in"))?;
        }
        sqlx::query::<Any>("DELETE FROM login_attempts WHERE at_ms <= $1")
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(sql("forget old sign-ins"))?;
        sqlx::query::<Any>("DELETE FROM login_refusals WHERE until_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql("forget old sign-ins"))?;
        let mut times: [Vec<i64>; 3] = Default::default();
        for (key, t) in keys.iter().zip(&mut times) {
            let rows = sqlx::query::<Any>(
                "SELECT at_ms FROM login_attempts WHERE key = $1 AND at_ms > $2 ORDER BY at_ms",
            )
            .bind(key.as_str())
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql("read sign-ins"))?;
            for r in rows {
                t.push(r.try_get("at_ms").map_err(sql("read sign-ins"))?);
            }
        }
        let [a, b, c] = &times;
        if let Some((until_ms, i)) = ready_at([a, b, c], now_ms) {
            let key = keys.get(i).map_or("", String::as_str);
            let audit = first_refusal(&mut tx, key, now_ms).await?;
            tx.commit().await.map_err(sql("count a sign-in"))?;
            return Ok(Err(Refusal { until_ms, audit }));
        }
        for key in &keys {
            sqlx::query::<Any>("INSERT INTO login_attempts (key, at_ms) VALUES ($1, $2)")
                .bind(key.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(sql("count a sign-in"))?;
        }
        tx.commit().await.map_err(sql("count a sign-in"))?;
        Ok(Ok(attempt.at(now_ms)))
    }

    /// The password was right: the account and the pair start again; the address keeps
    /// its other attempts (as [`Throttle::succeeded`]).
    pub async fn login_succeeded(&self, attempt: &Attempt) -> Result<(), DbError> {
        let [(_, account), (_, address), (_, pair)] = Throttle::keys(attempt);
        for key in [account, pair] {
            sqlx::query::<Any>("DELETE FROM login_attempts WHERE key = $1")
                .bind(key)
                .execute(&self.pool)
                .await
                .map_err(sql("clear sign-ins"))?;
        }
        self.forget_one(&address, attempt.at_ms()).await
    }

    /// The attempt was never checked: it does not count (as [`Throttle::abandoned`]).
    pub async fn login_abandoned(&self, attempt: &Attempt) -> Result<(), DbError> {
        for (_, key) in Throttle::keys(attempt) {
            self.forget_one(&key, attempt.at_ms()).await?;
        }
        Ok(())
    }

    /// Whether a refusal for `key` is the first in its window (as
    /// [`Throttle::first_in_window`]).
    pub async fn login_first_refusal(&self, key: &str, now_ms: i64) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("note a refusal"))?;
        let first = first_refusal(&mut tx, key, now_ms).await?;
        tx.commit().await.map_err(sql("note a refusal"))?;
        Ok(first)
    }

    async fn forget_one(&self, key: &str, at_ms: i64) -> Result<(), DbError> {
        sqlx::query::<Any>(
            "DELETE FROM login_attempts WHERE id IN \
             (SELECT id FROM login_attempts WHERE key = $1 AND at_ms = $2 LIMIT 1)",
        )
        .bind(key)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("forget a sign-in"))?;
        Ok(())
    }
}

/// Whether this is `key`'s first refusal in the window; if so, the window starts now.
async fn first_refusal(
    tx: &mut sqlx::Transaction<'static, Any>,
    key: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query::<Any>(
        "INSERT INTO login_refusals (key, until_ms) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET until_ms = excluded.until_ms \
         WHERE login_refusals.until_ms <= $3",
    )
    .bind(key)
    .bind(now_ms + Throttle::WINDOW_MS)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(sql("note a refusal"))?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::auth::{Attempt, Throttle};
    use crate::db::testing;

    /// The database counts as the in-memory throttle does: the same answers for the same
    /// attempts, on each backend.
    #[tokio::test]
    async fn the_database_throttles_as_memory_does() {
        for (db, _dir) in testing::each().await {
            let mut memory = Throttle::default();
            let mut now = 1_000_000;
            let tries = [
                ("dsl", "192.0.2.1"),
                ("dsl", "192.0.2.1"),
                ("it", "192.0.2.1"),
                ("dsl", "192.0.2.2"),
                ("dsl", "192.0.2.1"),
                ("dsl", "192.0.2.1"),
                ("dsl", "192.0.2.1"),
                ("dsl", "192.0.2.1"),
                ("dsl", "192.0.2.3"),
                ("dsl", "192.0.2.3"),
            ];
            let mut refused = 0;
            for (i, (name, addr)) in tries.iter().enumerate() {
                let a = Attempt::new(name, true, addr);
                let m = memory.begin(a.clone(), now);
                let d = db.login_begin(a, now).await.unwrap();
                assert_eq!(m.is_ok(), d.is_ok(), "attempt {i}");
                if let (Err(m), Err(d)) = (&m, &d) {
                    assert_eq!(m, d, "attempt {i}");
                    refused += 1;
                }
                now += 100;
            }
            assert!(refused >= 2, "{refused}");
            // A right password clears the account: it may try again at once.
            let a = db
                .login_begin(Attempt::new("ms.ade", true, "198.51.100.7"), now)
                .await
                .unwrap()
                .unwrap();
            db.login_succeeded(&a).await.unwrap();
            for _ in 0..Throttle::LIMIT {
                let a = db
                    .login_begin(Attempt::new("ms.ade", true, "198.51.100.7"), now)
                    .await
                    .unwrap()
                    .unwrap();
                db.login_abandoned(&a).await.unwrap();
            }
            assert!(
                db.login_begin(Attempt::new("ms.ade", true, "198.51.100.7"), now)
                    .await
                    .unwrap()
                    .is_ok(),
                "abandoned attempts do not count"
            );
            // After the window, the address may try again.
            let later = now + Throttle::WINDOW_MS + 1;
            assert!(
                db.login_begin(Attempt::new("dsl", true, "192.0.2.1"), later)
                    .await
                    .unwrap()
                    .is_ok()
            );
            assert!(db.login_first_refusal("form:192.0.2.9", 5).await.unwrap());
            assert!(!db.login_first_refusal("form:192.0.2.9", 6).await.unwrap());
            assert!(
                db.login_first_refusal("form:192.0.2.9", 6 + Throttle::WINDOW_MS)
                    .await
                    .unwrap()
            );
        }
    }
}

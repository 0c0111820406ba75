//! Retention: what is older than its kind's period is deleted (resolved incidents with their
//! alerts, notes and history; other events; the audit log; finished commands; expired
//! sessions). An open case is a record the school still needs: an incident not yet resolved
//! is never deleted, nor its alerts, notes or history, however old.

use sqlx::Any;

use super::{Db, DbError, sql};
use crate::config::Retention;

const DAY_MS: i64 = 86_400_000;

/// The advisory lock a purge holds on PostgreSQL ("sgpurge" in ASCII).
const PURGE_LOCK: i64 = 0x0073_6770_7572_6765;

/// How many rows a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub incidents: u64,
    pub alerts: u64,
    pub events: u64,
    pub audit: u64,
    pub commands: u64,
    pub sessions: u64,
}

impl Db {
    /// Deletes what `retention` no longer keeps at `now_ms`.
    pub async fn purge(&self, retention: &Retention, now_ms: i64) -> Result<Purged, DbError> {
        let before = |days: u32| now_ms - i64::from(days) * DAY_MS;
        let alerts_before = before(retention.alerts_days);
        let mut tx = self.pool.begin().await.map_err(sql("begin a purge"))?;
        // Consoles sharing a PostgreSQL database purge one at a time: the others find the
        // lock taken and leave it to the one that holds it (it is released at commit).
        if self.backend == super::Backend::Postgres {
            let mine: bool =
                sqlx::query_scalar::<Any, bool>("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(PURGE_LOCK)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(sql("take the purge's lock"))?;
            if !mine {
                return Ok(Purged::default());
            }
        }
        // Notes and history go with their incident; both backends are told, not left to
        // foreign-key cascades that SQLite enforces only when asked.
        for table in ["notes", "alert_history"] {
            let text = format!(
                "DELETE FROM {table} WHERE event_id IN \
                 (SELECT id FROM incidents WHERE status = 'resolved' AND last_ms < $1)"
            );
            // `table` is one of the two names above.
            sqlx::query::<Any>(sqlx::AssertSqlSafe(text))
                .bind(alerts_before)
                .execute(&mut *tx)
                .await
                .map_err(sql("purge case records"))?;
        }
        let mut run = async |text: &'static str, before_ms: i64, what: &'static str| {
            sqlx::query::<Any>(text)
                .bind(before_ms)
                .execute(&mut *tx)
                .await
                .map(|r| r.rows_affected())
                .map_err(sql(what))
        };
        let purged = Purged {
            incidents: run(
                "DELETE FROM incidents WHERE status = 'resolved' AND last_ms < $1",
                alerts_before,
                "purge resolved incidents",
            )
            .await?,
            // What is left of an incident is an open case, or one resolved too recently.
            alerts: run(
                "DELETE FROM events WHERE alert = 1 AND time_ms < $1 AND NOT EXISTS \
                 (SELECT 1 FROM incidents i WHERE i.id = events.incident)",
                alerts_before,
                "purge alerts",
            )
            .await?,
            // Events a threshold incident holds as its evidence stay while it does.
            events: run(
                "DELETE FROM events WHERE alert = 0 AND time_ms < $1 AND (incident IS NULL \
                 OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = events.incident))",
                before(retention.blocked_days),
                "purge events",
            )
            .await?,
            audit: run(
                "DELETE FROM audit WHERE time_ms < $1",
                before(retention.audit_days),
                "purge the audit log",
            )
            .await?,
            commands: run(
                "DELETE FROM commands WHERE done_ms IS NOT NULL AND created_ms < $1",
                alerts_before,
                "purge commands",
            )
            .await?,
            sessions: run(
                "DELETE FROM sessions WHERE expires_ms < $1",
                now_ms,
                "purge sessions",
            )
            .await?,
        };
        // A device's quarantine state lives as long as the quarantine it records: a release
        // stays known after its own event is purged with the blocked activity.
        run(
            "DELETE FROM quarantines WHERE COALESCE(quarantined_ms, released_ms) < $1",
            alerts_before,
            "purge quarantine states",
        )
        .await?;
        // The sums outlive the events they count: the hourly ones (no device or person in
        // them) as long as the longest period, the daily ones by name and device as long
        // as the blocked activity.
        super::rollups::purge(
            &mut tx,
            &self.rollup_zone(),
            before(retention.alerts_days.max(retention.blocked_days)),
            before(retention.blocked_days),
        )
        .await?;
        tx.commit().await.map_err(sql("commit a purge"))?;
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::audit::Entry;
    use crate::db::testing;
    use crate::web::tests::alert;

    #[tokio::test]
    async fn each_kind_is_kept_for_its_own_period() {
        for (db, _dir) in testing::each().await {
            let now = 1_000 * DAY_MS;
            let at = |kind: &str, age_days: i64| {
                let mut e = alert(kind, "x.example", "10.0.0.1");
                if kind == "blocked" {
                    e.severity = schoolgate_contract::Severity::Low;
                }
                e.time = crate::db::events::tests::ms(now - age_days * DAY_MS);
                e
            };
            let old_alert = at("bypass_attempt", 400);
            let kept_alert = at("bypass_attempt", 100);
            // Still open after 401 days: a case the school has not closed.
            let mut open_case = at("bypass_attempt", 401);
            open_case.event.device.ip = Some("10.0.0.2".parse().unwrap());
            db.ingest(
                "gw1",
                &[
                    old_alert.clone(),
                    kept_alert.clone(),
                    open_case.clone(),
                    at("blocked", 100),
                    at("blocked", 10),
                ],
                1,
            )
            .await
            .unwrap();
            let resolved = crate::db::cases::Triage {
                status: "resolved",
                outcome: Some("spoken to the pupil"),
                action_taken: None,
            };
            assert!(
                db.triage(
                    &old_alert.id.to_string(),
                    &resolved,
                    "dsl",
                    now - 399 * DAY_MS
                )
                .await
                .unwrap()
            );
            db.add_note(&open_case.id.to_string(), "dsl", "open", now - 401 * DAY_MS)
                .await
                .unwrap();
            db.add_note(&old_alert.id.to_string(), "dsl", "old", now - 400 * DAY_MS)
                .await
                .unwrap();
            db.add_note(&kept_alert.id.to_string(), "dsl", "kept", now)
                .await
                .unwrap();
            for age in [2_000, 10] {
                db.audit(&Entry {
                    time_ms: now - age * DAY_MS,
                    who: "dsl".into(),
                    action: "login".into(),
                    target: None,
                    detail: None,
                    address: None,
                    school: None,
                })
                .await
                .unwrap();
            }
            let purged = db.purge(&Retention::default(), now).await.unwrap();
            assert_eq!(
                purged,
                Purged {
                    incidents: 1,
                    alerts: 1,
                    events: 1,
                    audit: 1,
                    commands: 0,
                    sessions: 0
                }
            );
            assert_eq!(db.event_count().await.unwrap(), 3);
            let open = open_case.id.to_string();
            assert!(
                db.incident(&crate::db::Scope::Trust, &open)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                db.event(&crate::db::Scope::Trust, &open)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert_eq!(db.notes(&open).await.unwrap().len(), 1);
            assert!(
                db.incident(&crate::db::Scope::Trust, &old_alert.id.to_string())
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                db.notes(&old_alert.id.to_string())
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                db.history(&old_alert.id.to_string())
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(db.notes(&kept_alert.id.to_string()).await.unwrap().len(), 1);
            assert_eq!(
                db.audit_log(&crate::db::Scope::Trust, 10, 0)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            // Again: nothing more to do.
            assert_eq!(
                db.purge(&Retention::default(), now).await.unwrap(),
                Purged::default()
            );
        }
    }

    /// On PostgreSQL, a purge while another console's holds the lock leaves it to that one.
    #[tokio::test]
    async fn consoles_sharing_postgresql_purge_one_at_a_time() {
        for (db, _dir) in testing::each().await {
            if db.backend != crate::db::Backend::Postgres {
                continue;
            }
            let now = 1_000 * DAY_MS;
            let mut old = alert("blocked", "x.example", "10.0.0.1");
            old.severity = schoolgate_contract::Severity::Low;
            old.time = crate::db::events::tests::ms(now - 400 * DAY_MS);
            db.ingest("gw1", &[old], 1).await.unwrap();
            let mut other = db.pool.begin().await.unwrap();
            sqlx::query::<Any>("SELECT pg_advisory_xact_lock($1)")
                .bind(PURGE_LOCK)
                .execute(&mut *other)
                .await
                .unwrap();
            assert_eq!(
                db.purge(&Retention::default(), now).await.unwrap(),
                Purged::default()
            );
            other.commit().await.unwrap();
            assert_eq!(
                db.purge(&Retention::default(), now).await.unwrap().events,
                1
            );
        }
    }
}

//! The audit log: logins, every view of an alert or a device's history, every action.

use sqlx::{Any, Row};

use super::{Db, DbError, sql};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time_ms: i64,
    pub who: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub address: Option<String>,
}

impl Db {
    pub async fn audit(&self, e: &Entry) -> Result<(), DbError> {
        sqlx::query::<Any>(
            "INSERT INTO audit (time_ms, who, action, target, detail, address) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.time_ms)
        .bind(e.who.clone())
        .bind(e.action.clone())
        .bind(e.target.clone())
        .bind(e.detail.clone())
        .bind(e.address.clone())
        .execute(&self.pool)
        .await
        .map_err(sql("write the audit log"))?;
        Ok(())
    }

    /// Entries newest first: `limit` from `offset`.
    pub async fn audit_log(&self, limit: i64, offset: i64) -> Result<Vec<Entry>, DbError> {
        let q = sqlx::query::<Any>(
            "SELECT time_ms, who, action, target, detail, address FROM audit \
             ORDER BY time_ms DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset);
        self.rows(q, "read the audit log", |r| {
            Ok(Entry {
                time_ms: r.try_get("time_ms")?,
                who: r.try_get("who")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                detail: r.try_get("detail")?,
                address: r.try_get("address")?,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[tokio::test]
    async fn entries_read_back_newest_first() {
        for (db, _dir) in testing::each().await {
            for (t, action) in [(1, "login"), (3, "view_alert"), (2, "logout")] {
                db.audit(&Entry {
                    time_ms: t,
                    who: "dsl".into(),
                    action: action.into(),
                    target: None,
                    detail: None,
                    address: Some("10.0.0.5".into()),
                })
                .await
                .unwrap();
            }
            let log = db.audit_log(2, 0).await.unwrap();
            let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(actions, ["view_alert", "logout"]);
            assert_eq!(log[0].address.as_deref(), Some("10.0.0.5"));
            assert_eq!(db.audit_log(2, 2).await.unwrap()[0].action, "login");
        }
    }
}

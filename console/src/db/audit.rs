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

    /// The newest `limit` entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<Entry>, DbError> {
        let rows = sqlx::query::<Any>(
            "SELECT time_ms, who, action, target, detail, address FROM audit \
             ORDER BY time_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read the audit log"))?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    time_ms: r.try_get("time_ms")?,
                    who: r.try_get("who")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                    address: r.try_get("address")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(sql("read the audit log"))
    }
}

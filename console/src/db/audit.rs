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
    /// The school(s) of the user who acted, joined by commas (`None`: a trust-wide user, or
    /// the console): a school's staff read their own schools' entries only.
    pub school: Option<String>,
}

impl Db {
    pub async fn audit(&self, e: &Entry) -> Result<(), DbError> {
        sqlx::query::<Any>(
            "INSERT INTO audit (time_ms, who, action, target, detail, address, school) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.time_ms)
        .bind(e.who.clone())
        .bind(e.action.clone())
        .bind(e.target.clone())
        .bind(e.detail.clone())
        .bind(e.address.clone())
        .bind(e.school.clone())
        .execute(&self.pool)
        .await
        .map_err(sql("write the audit log"))?;
        Ok(())
    }

    /// Entries of `scope`'s users (the trust's: all), newest first: `limit` from `offset`.
    pub async fn audit_log(
        &self,
        scope: &super::Scope,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Entry>, DbError> {
        let mut q = super::Statement::new(
            "SELECT time_ms, who, action, target, detail, address, school FROM audit WHERE 1 = 1",
        );
        scope.push_audit(&mut q);
        q.push(" ORDER BY time_ms DESC, id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        self.rows(q.query(), "read the audit log", |r| {
            Ok(Entry {
                time_ms: r.try_get("time_ms")?,
                who: r.try_get("who")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                detail: r.try_get("detail")?,
                address: r.try_get("address")?,
                school: r.try_get("school")?,
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
                    school: (action == "view_alert").then(|| "ash,oak".into()),
                })
                .await
                .unwrap();
            }
            let log = db.audit_log(&crate::db::Scope::Trust, 2, 0).await.unwrap();
            let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(actions, ["view_alert", "logout"]);
            assert_eq!(log[0].address.as_deref(), Some("10.0.0.5"));
            assert_eq!(
                db.audit_log(&crate::db::Scope::Trust, 2, 2).await.unwrap()[0].action,
                "login"
            );
            // A school's staff read their own school's users' entries only.
            let oak = db
                .audit_log(&crate::db::Scope::school("oak"), 10, 0)
                .await
                .unwrap();
            assert_eq!(oak.len(), 1);
            assert_eq!(oak[0].action, "view_alert");
            let elm = crate::db::Scope::school("elm");
            assert!(db.audit_log(&elm, 10, 0).await.unwrap().is_empty());
            let both = crate::db::Scope::of(Some("elm,ash"));
            assert_eq!(db.audit_log(&both, 10, 0).await.unwrap().len(), 1);
            let prefix = crate::db::Scope::school("oa");
            assert!(db.audit_log(&prefix, 10, 0).await.unwrap().is_empty());
        }
    }
}

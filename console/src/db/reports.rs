//! Aggregates for the blocked-activity page, the dashboard and the weekly report: blocks
//! by group, category, name, rule and hour; bypass attempts by technique; the devices with
//! most activity; triage outcomes. Every figure is a sum of the events' `count` (an agent
//! folds repeats of one block into one event with a count) over a window of time, read from
//! the roll-ups (see [`super::rollups`]).

use schoolgate_contract::Kind;
use sqlx::{Any, Row};

use super::rollups::{Key, Sum};
use super::{Db, DbError, Scope, Statement, sql};

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// A span of time, `[from_ms, to_ms)`, of the records in `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window<'s> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub scope: &'s Scope,
}

/// What blocked activity is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Group,
    Category,
    Name,
    Rule,
}

impl By {
    pub const ALL: [Self; 4] = [Self::Group, Self::Category, Self::Name, Self::Rule];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Category => "category",
            Self::Name => "name",
            Self::Rule => "rule",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// A device with the most activity in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopDevice {
    /// IP address, else MAC address.
    pub key: String,
    /// The agent that saw it: the same address behind two gateways is two devices.
    pub agent: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub blocked: i64,
    pub alerts: i64,
}

impl<'s> Window<'s> {
    /// A sum over this window by `key`, of `kind` (and `group`) only if given.
    fn sum<'a>(self, key: Key, kind: Option<Kind>, group: Option<&'a str>) -> Sum<'a>
    where
        's: 'a,
    {
        Sum {
            key,
            kind,
            group,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            scope: self.scope,
        }
    }
}

/// A key read back from a roll-up, where '' stands for none.
fn pair(r: &sqlx::any::AnyRow) -> Result<(Option<String>, i64), sqlx::Error> {
    let k: String = r.try_get("k")?;
    Ok((Some(k).filter(|k| !k.is_empty()), r.try_get("n")?))
}

impl By {
    fn key(self) -> Key {
        match self {
            Self::Group => Key::Group,
            Self::Category => Key::Category,
            Self::Name => Key::Name,
            Self::Rule => Key::Rule,
        }
    }
}

impl Db {
    /// Blocks in `w` (of `group` only, if given) summed by `by`, largest first, at most
    /// `limit` rows. A key of `None` is blocked activity without one (no category, say).
    pub async fn blocked_by(
        &self,
        by: By,
        w: Window<'_>,
        group: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(Option<String>, i64)>, DbError> {
        let mut q = self.summed(w.sum(by.key(), Some(Kind::Blocked), group));
        q.push(" ORDER BY 2 DESC, 1 LIMIT ").bind(limit);
        self.rows(q.query(), "sum blocks", pair).await
    }

    /// Events of `kind` in `w` summed per hour: (hours since the epoch, sum), in order;
    /// hours without any are left out.
    pub async fn per_hour(
        &self,
        kind: Kind,
        w: Window<'_>,
        group: Option<&str>,
    ) -> Result<Vec<(i64, i64)>, DbError> {
        let mut q = self.summed(w.sum(Key::Hour, Some(kind), group));
        q.push(" ORDER BY 1");
        self.rows(q.query(), "sum events per hour", |r| {
            Ok((r.try_get("k")?, r.try_get("n")?))
        })
        .await
    }

    /// Bypass attempts in `w` by technique, most first.
    pub async fn bypass_by_technique(
        &self,
        w: Window<'_>,
    ) -> Result<Vec<(Option<String>, i64)>, DbError> {
        let mut q = self.summed(w.sum(Key::Technique, Some(Kind::BypassAttempt), None));
        q.push(" ORDER BY 2 DESC, 1");
        self.rows(q.query(), "sum bypass attempts", pair).await
    }

    /// Alerts in `w` by `column` (`status` or `outcome`), most first.
    pub async fn incidents_by(
        &self,
        column: AlertColumn,
        w: Window<'_>,
    ) -> Result<Vec<(Option<String>, i64)>, DbError> {
        let mut q = Statement::new("SELECT ");
        q.push(column.as_sql())
            .push(" AS k, COUNT(*) AS n FROM incidents WHERE first_ms >= ")
            .bind(w.from_ms)
            .push(" AND first_ms < ")
            .bind(w.to_ms);
        w.scope.push(&mut q, "agent");
        q.push(" GROUP BY 1 ORDER BY 2 DESC, 1");
        self.rows(q.query(), "count incidents", |r| {
            Ok((r.try_get("k")?, r.try_get("n")?))
        })
        .await
    }

    /// Events of each kind in `w`, summed.
    pub async fn kinds(&self, w: Window<'_>) -> Result<Vec<(Option<String>, i64)>, DbError> {
        let mut q = self.summed(w.sum(Key::Kind, None, None));
        q.push(" ORDER BY 1");
        self.rows(q.query(), "sum events by kind", pair).await
    }

    /// The devices with the most alerts, then blocks, on the local days `w` touches (from
    /// the start of the day holding `from_ms` to the end of the one holding `to_ms - 1`).
    pub async fn top_devices(&self, w: Window<'_>, limit: i64) -> Result<Vec<TopDevice>, DbError> {
        let zone = self.rollup_zone();
        let mut q = Statement::new(
            "SELECT device AS k, agent, MAX(name) AS dn, MAX(owner) AS dow, \
             CAST(SUM(blocked) AS BIGINT) AS b, CAST(SUM(alerts) AS BIGINT) AS a \
             FROM rollup_devices WHERE day_ms >= ",
        );
        q.bind(zone.floor_day(w.from_ms))
            .push(" AND day_ms < ")
            .bind(w.to_ms);
        w.scope.push(&mut q, "agent");
        q.push(" GROUP BY 1, 2 ORDER BY 6 DESC, 5 DESC, 1, 2 LIMIT ")
            .bind(limit);
        self.rows(q.query(), "rank devices", |r| {
            Ok(TopDevice {
                key: r.try_get("k")?,
                agent: r.try_get("agent")?,
                name: r.try_get("dn")?,
                owner: r.try_get("dow")?,
                blocked: r.try_get("b")?,
                alerts: r.try_get("a")?,
            })
        })
        .await
    }
}

impl Db {
    /// Claims the sending of `report` for the week starting `week_ms`: true for the one
    /// caller that claims it first, false once claimed (by this console or another).
    pub async fn claim_report(
        &self,
        report: &str,
        week_ms: i64,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let claimed = sqlx::query_scalar::<Any, i64>(
            "SELECT COUNT(*) FROM reports_sent WHERE report = $1 AND week_ms = $2",
        )
        .bind(report)
        .bind(week_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("read the reports sent"))?;
        if claimed > 0 {
            return Ok(false);
        }
        let done = sqlx::query::<Any>(
            "INSERT INTO reports_sent (report, week_ms, sent_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (report, week_ms) DO NOTHING",
        )
        .bind(report)
        .bind(week_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("claim a report"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up a claim whose message could not be sent, so the next try sends it.
    pub async fn unclaim_report(&self, report: &str, week_ms: i64) -> Result<(), DbError> {
        sqlx::query::<Any>("DELETE FROM reports_sent WHERE report = $1 AND week_ms = $2")
            .bind(report)
            .bind(week_ms)
            .execute(&self.pool)
            .await
            .map_err(sql("give up a report's claim"))?;
        Ok(())
    }
}

/// Incident columns the weekly report counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertColumn {
    Status,
    Outcome,
}

impl AlertColumn {
    fn as_sql(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Outcome => "outcome",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::ms;
    use crate::db::testing;
    use crate::web::tests::alert;
    use schoolgate_contract::wire::Received;
    use schoolgate_contract::{Severity, Technique};

    fn blocked(name: &str, group: &str, category: Option<&str>, t: i64, count: u32) -> Received {
        let mut e = alert("blocked", name, "10.10.3.7");
        e.severity = Severity::Low;
        e.group = Some(group.into());
        e.category = category.map(str::to_owned);
        e.technique = None;
        e.time = ms(t);
        e.count = count;
        e
    }

    #[tokio::test]
    async fn blocks_are_summed_by_each_dimension_and_hour() {
        for (db, _dir) in testing::each().await {
            let h = 500_000 * HOUR_MS;
            let mut vpn = alert("bypass_attempt", "vpn.example", "10.10.3.8");
            vpn.time = ms(h + 10);
            let mut doh = alert("bypass_attempt", "dns.example", "10.10.3.8");
            doh.technique = Some(Technique::DnsOverHttps);
            doh.time = ms(h + 20);
            db.ingest(
                "gw1",
                &[
                    blocked("instagram.com", "pupils", Some("social_networking"), h, 3),
                    blocked("tiktok.com", "pupils", Some("social_networking"), h + 5, 2),
                    blocked(
                        "tiktok.com",
                        "school_computers",
                        Some("social_networking"),
                        h + HOUR_MS,
                        4,
                    ),
                    blocked("example.bad", "staff", None, h + 2 * HOUR_MS, 1),
                    // Outside the window.
                    blocked("tiktok.com", "pupils", None, h + 10 * HOUR_MS, 100),
                    vpn,
                    doh,
                ],
                1,
            )
            .await
            .unwrap();
            let w = Window {
                from_ms: h,
                to_ms: h + 3 * HOUR_MS,
                scope: &crate::db::Scope::Trust,
            };
            let s = |v: &[(Option<String>, i64)]| -> Vec<(String, i64)> {
                v.iter()
                    .map(|(k, n)| (k.clone().unwrap_or_else(|| "-".into()), *n))
                    .collect()
            };
            let by_group = db.blocked_by(By::Group, w, None, 10).await.unwrap();
            assert_eq!(
                s(&by_group),
                [
                    ("pupils".into(), 5),
                    ("school_computers".into(), 4),
                    ("staff".into(), 1)
                ]
            );
            let by_cat = db.blocked_by(By::Category, w, None, 10).await.unwrap();
            assert_eq!(
                s(&by_cat),
                [("social_networking".into(), 9), ("-".into(), 1)]
            );
            let names = db.blocked_by(By::Name, w, Some("pupils"), 1).await.unwrap();
            assert_eq!(s(&names), [("instagram.com".into(), 3)]);
            let hours = db.per_hour(Kind::Blocked, w, None).await.unwrap();
            assert_eq!(hours, [(500_000, 5), (500_001, 4), (500_002, 1)]);
            let techniques = db.bypass_by_technique(w).await.unwrap();
            assert_eq!(
                s(&techniques),
                [("dns_over_https".into(), 1), ("openvpn".into(), 1)]
            );
            // Devices are ranked over whole days: the block ten hours on counts.
            let top = db.top_devices(w, 5).await.unwrap();
            assert_eq!(
                top.iter()
                    .map(|d| (d.key.as_str(), d.alerts, d.blocked))
                    .collect::<Vec<_>>(),
                [("10.10.3.8", 2, 0), ("10.10.3.7", 0, 110)]
            );
            // The two attempts from one device, seconds apart, are one incident.
            let status = db.incidents_by(AlertColumn::Status, w).await.unwrap();
            assert_eq!(s(&status), [("new".into(), 1)]);
            let kinds = db.kinds(w).await.unwrap();
            assert_eq!(
                s(&kinds),
                [("blocked".into(), 10), ("bypass_attempt".into(), 2)]
            );
        }
    }
}

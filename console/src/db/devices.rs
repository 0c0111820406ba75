//! Devices: what one device did around a moment or over time, and which devices are in
//! quarantine now (quarantined and not released since, by the agent's own events).

use sqlx::Row;

use super::events::{Stored, push_device, stored};
use super::{Db, DbError, Statement};

/// How a device is named in a query: its IP address, MAC address or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey(String);

impl DeviceKey {
    /// `text` as typed or linked (MAC addresses are stored in lower case).
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty() && t.len() <= 253).then(|| Self(t.to_owned()))
    }

    /// The key for an event's device: IP address, else MAC, else name.
    pub fn of(e: &Stored) -> Option<Self> {
        e.device_ip
            .as_deref()
            .or(e.device_mac.as_deref())
            .or(e.device_name.as_deref())
            .and_then(Self::new)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends ` AND (the device is this one)`.
    fn push_where(&self, q: &mut Statement) {
        push_device(q, &self.0);
    }
}

/// A device in quarantine now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// The `quarantined` event that put it there (the latest, if there were several).
    pub event: Stored,
    /// A release has been asked for and the agent has not yet said it is done.
    pub release_pending: bool,
}

impl Db {
    /// Events from `device` in `[from_ms, to_ms)`, oldest first, at most `limit`.
    pub async fn device_activity(
        &self,
        device: &DeviceKey,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<Stored>, DbError> {
        let mut q = Statement::new(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE time_ms >= "
        ));
        q.bind(from_ms).push(" AND time_ms < ").bind(to_ms);
        device.push_where(&mut q);
        q.push(" ORDER BY time_ms, id LIMIT ").bind(limit);
        self.rows(q.query(), "read a device's activity", stored)
            .await
    }

    /// `device`'s events, newest first: `limit` from `offset`.
    pub async fn device_history(
        &self,
        device: &DeviceKey,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Stored>, DbError> {
        let mut q = Statement::new(concat!("SELECT ", columns!(), " FROM events WHERE 1 = 1"));
        device.push_where(&mut q);
        q.push(" ORDER BY time_ms DESC, id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        self.rows(q.query(), "read a device's history", stored)
            .await
    }

    /// Devices quarantined and not released since, newest first.
    pub async fn quarantines(&self) -> Result<Vec<Quarantine>, DbError> {
        self.quarantined(None).await
    }

    /// The quarantine `e`'s device is in now, if it is: the same agent, and the same IP or
    /// MAC address.
    pub async fn quarantine_of(&self, e: &Stored) -> Result<Option<Quarantine>, DbError> {
        Ok(self.quarantined(Some(e)).await?.into_iter().next())
    }

    async fn quarantined(&self, of: Option<&Stored>) -> Result<Vec<Quarantine>, DbError> {
        // A device is the same one when its agent and its IP (or, without one, MAC) match.
        let mut q = Statement::new(concat!(
            "SELECT ",
            columns!(),
            ", (SELECT COUNT(*) FROM commands c WHERE c.agent = q.agent AND c.done_ms IS NULL \
               AND (c.device = q.device_ip OR c.device = q.device_mac)) AS pending \
             FROM events q WHERE q.kind = 'quarantined' \
             AND NOT EXISTS (SELECT 1 FROM events l WHERE l.agent = q.agent \
               AND l.kind IN ('quarantined', 'released') AND l.time_ms >= q.time_ms \
               AND l.id <> q.id \
               AND (l.device_ip = q.device_ip OR l.device_mac = q.device_mac) \
               AND (l.kind = 'released' OR l.time_ms > q.time_ms OR l.id > q.id))"
        ));
        if let Some(e) = of {
            q.push(" AND q.agent = ")
                .bind(e.agent.as_str())
                .push(" AND (q.device_ip = ")
                .bind(e.device_ip.clone())
                .push(" OR q.device_mac = ")
                .bind(e.device_mac.clone())
                .push(")");
        }
        q.push(" ORDER BY q.time_ms DESC, q.id DESC LIMIT 1000");
        self.rows(q.query(), "list quarantined devices", |r| {
            Ok(Quarantine {
                event: stored(r)?,
                release_pending: r.try_get::<i64, _>("pending")? > 0,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::event;
    use crate::db::testing;
    use crate::wire::Incoming;

    fn at(i: u32, kind: &str, ip: &str, time_ms: i64) -> Incoming {
        let mut e = event(i, kind);
        e.device.ip = Some(ip.into());
        e.time_ms = time_ms;
        e
    }

    #[tokio::test]
    async fn activity_is_the_devices_own_within_the_window() {
        for (db, _dir) in testing::each().await {
            let batch = [
                at(1, "blocked", "10.10.3.7", 1_000),
                at(2, "blocked", "10.10.3.7", 2_000),
                at(3, "blocked", "10.10.3.8", 2_000),
                at(4, "bypass_attempt", "10.10.3.7", 3_000),
                at(5, "blocked", "10.10.3.7", 9_000),
            ];
            db.ingest("gw1", &batch, 1).await.unwrap();
            let key = DeviceKey::new("10.10.3.7").unwrap();
            let seen: Vec<_> = db
                .device_activity(&key, 1_500, 9_000, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.time_ms)
                .collect();
            assert_eq!(seen, [2_000, 3_000]);
            let all = db.device_history(&key, 100, 0).await.unwrap();
            assert_eq!(all.len(), 4);
            assert_eq!(all[0].time_ms, 9_000, "newest first");
            assert_eq!(db.device_history(&key, 2, 3).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_device_is_in_quarantine_until_its_agent_releases_it() {
        for (db, _dir) in testing::each().await {
            db.ingest(
                "gw1",
                &[
                    at(1, "quarantined", "10.10.3.7", 1_000),
                    at(2, "quarantined", "10.10.3.8", 1_000),
                    // Quarantined again (extended): listed once, by the latest.
                    at(3, "quarantined", "10.10.3.8", 5_000),
                    at(4, "quarantined", "10.10.3.9", 1_000),
                    at(5, "released", "10.10.3.9", 2_000),
                ],
                1,
            )
            .await
            .unwrap();
            // Another school's agent with the same private address.
            db.ingest("gw2", &[at(6, "released", "10.10.3.7", 3_000)], 1)
                .await
                .unwrap();
            let now = db.quarantines().await.unwrap();
            let listed: Vec<_> = now
                .iter()
                .map(|q| (q.event.device_ip.clone().unwrap(), q.event.time_ms))
                .collect();
            assert_eq!(
                listed,
                [
                    ("10.10.3.8".to_owned(), 5_000),
                    ("10.10.3.7".to_owned(), 1_000)
                ]
            );
            assert!(now.iter().all(|q| !q.release_pending));
            db.queue_release("gw1", "10.10.3.7", "spoken to", "dsl", None, 4_000)
                .await
                .unwrap();
            let now = db.quarantines().await.unwrap();
            assert!(now[1].release_pending);
            assert!(!now[0].release_pending);
            // One device's quarantine, found from any of its events on that agent.
            let mut of = now[1].event.clone();
            of.id = "another event".into();
            assert_eq!(db.quarantine_of(&of).await.unwrap(), Some(now[1].clone()));
            of.agent = "gw2".into();
            assert_eq!(db.quarantine_of(&of).await.unwrap(), None);
            of = now[0].event.clone();
            of.device_ip = Some("10.10.3.9".into());
            assert_eq!(db.quarantine_of(&of).await.unwrap(), None, "released");
        }
    }
}

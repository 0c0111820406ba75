//! Devices: what one device did around a moment or over time, and which devices are in
//! quarantine now (quarantined and not released since, by the agent's own events).

use sqlx::Row;

use super::events::{Stored, push_device, stored};
use super::{Db, DbError, Scope, Statement};

/// How a device is named in a query: its IP address, MAC address or name, and the agent
/// that saw it (two schools' gateways may both have a 10.10.3.7, and they are two devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    key: String,
    agent: Option<String>,
}

impl DeviceKey {
    /// `text` as typed or linked (MAC addresses are stored in lower case), on any agent.
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty() && t.len() <= 253).then(|| Self {
            key: t.to_owned(),
            agent: None,
        })
    }

    /// The same device as one agent saw it (an empty name: any agent).
    #[must_use]
    pub fn on(mut self, agent: &str) -> Self {
        let agent = agent.trim();
        self.agent = (!agent.is_empty()).then(|| agent.to_owned());
        self
    }

    /// The key for an event's device: IP address, else MAC, else name, on its agent.
    pub fn of(e: &Stored) -> Option<Self> {
        e.device_ip
            .as_deref()
            .or(e.device_mac.as_deref())
            .or(e.device_name.as_deref())
            .and_then(Self::new)
            .map(|k| k.on(&e.agent))
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    /// How the audit log names it: `key` or `key@agent`.
    pub fn label(&self) -> String {
        match &self.agent {
            Some(a) => format!("{}@{a}", self.key),
            None => self.key.clone(),
        }
    }

    /// Appends ` AND (the device is this one)`.
    fn push_where(&self, q: &mut Statement) {
        push_device(q, &self.key);
        if let Some(a) = &self.agent {
            q.push(" AND agent = ").bind(a.as_str());
        }
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
        scope: &Scope,
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
        scope.push(&mut q, "agent");
        q.push(" ORDER BY time_ms, id LIMIT ").bind(limit);
        self.rows(q.query(), "read a device's activity", stored)
            .await
    }

    /// The agents in `scope` that saw a device by this key, by name.
    pub async fn agents_of(
        &self,
        scope: &Scope,
        device: &DeviceKey,
    ) -> Result<Vec<String>, DbError> {
        let mut q = Statement::new("SELECT DISTINCT agent FROM events WHERE 1 = 1");
        device.push_where(&mut q);
        scope.push(&mut q, "agent");
        q.push(" ORDER BY agent LIMIT 100");
        self.rows(q.query(), "find a device's agents", |r| r.try_get("agent"))
            .await
    }

    /// `device`'s events in `scope`, newest first: `limit` from `offset`.
    pub async fn device_history(
        &self,
        scope: &Scope,
        device: &DeviceKey,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Stored>, DbError> {
        let mut q = Statement::new(concat!("SELECT ", columns!(), " FROM events WHERE 1 = 1"));
        device.push_where(&mut q);
        scope.push(&mut q, "agent");
        q.push(" ORDER BY time_ms DESC, id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        self.rows(q.query(), "read a device's history", stored)
            .await
    }

    /// Devices of `scope` quarantined and not released since, newest first.
    pub async fn quarantines(&self, scope: &Scope) -> Result<Vec<Quarantine>, DbError> {
        self.quarantined(scope, None).await
    }

    /// The quarantine `e`'s device is in now, if it is: the same agent, and the same IP or
    /// MAC address.
    pub async fn quarantine_of(&self, e: &Stored) -> Result<Option<Quarantine>, DbError> {
        Ok(self
            .quarantined(&Scope::Trust, Some(e))
            .await?
            .into_iter()
            .next())
    }

    async fn quarantined(
        &self,
        scope: &Scope,
        of: Option<&Stored>,
    ) -> Result<Vec<Quarantine>, DbError> {
        // The quarantines table says which devices are in quarantine (see `note_quarantine`);
        // their events are read by primary key.
        let mut q = Statement::new(concat!(
            "SELECT ",
            columns!(),
            ", (SELECT COUNT(*) FROM commands c WHERE c.agent = z.agent_name \
               AND c.kind = 'release' AND c.done_ms IS NULL \
               AND (c.device = q.device_ip OR c.device = q.device_mac)) \
               AS pending \
             FROM quarantines z JOIN events q ON q.id = z.event_id WHERE z.active = 1"
        ));
        if let Some(e) = of {
            let Some(key) = e.device_ip.clone().or_else(|| e.device_mac.clone()) else {
                return Ok(Vec::new());
            };
            q.push(" AND z.agent_name = ")
                .bind(e.agent.as_str())
                .push(" AND z.device_key = ")
                .bind(key.as_str());
        }
        scope.push(&mut q, "z.agent_name");
        q.push(" ORDER BY z.quarantined_ms DESC, z.event_id DESC LIMIT 1000");
        self.rows(q.query(), "list quarantined devices", |r| {
            Ok(Quarantine {
                event: stored(r)?,
                release_pending: r.try_get::<i64, _>("pending")? > 0,
            })
        })
        .await
    }
}

/// Moves `e`'s device's quarantine state (`e` is a `quarantined` or `released` event just
/// stored): the latest quarantine and the latest release are kept, and the device is in
/// quarantine while no release is at or after its quarantine. Events may arrive in any order.
pub(crate) async fn note_quarantine(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    agent: &str,
    e: &schoolgate_contract::Event,
) -> Result<(), DbError> {
    let Some(key) = e
        .device
        .ip
        .map(|ip| ip.to_string())
        .or_else(|| e.device.mac.map(|mac| mac.to_string()))
    else {
        return Ok(());
    };
    let row = sqlx::query::<sqlx::Any>(
        "SELECT event_id, quarantined_ms, released_ms FROM quarantines \
         WHERE agent_name = $1 AND device_key = $2",
    )
    .bind(agent)
    .bind(key.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(super::sql("read a quarantine"))?;
    let read = |r: &sqlx::any::AnyRow| -> Result<_, sqlx::Error> {
        Ok((
            r.try_get::<Option<String>, _>("event_id")?,
            r.try_get::<Option<i64>, _>("quarantined_ms")?,
            r.try_get::<Option<i64>, _>("released_ms")?,
        ))
    };
    let (mut event_id, mut quarantined_ms, mut released_ms) = row
        .as_ref()
        .map(read)
        .transpose()
        .map_err(super::sql("read a quarantine"))?
        .unwrap_or_default();
    let id = e.id.to_string();
    let time_ms = e.time.as_millisecond();
    if e.kind == schoolgate_contract::Kind::Quarantined {
        let later = quarantined_ms.is_none_or(|q| {
            time_ms > q || (time_ms == q && event_id.as_deref().is_none_or(|i| id.as_str() > i))
        });
        if later {
            event_id = Some(id);
            quarantined_ms = Some(time_ms);
        }
    } else if released_ms.is_none_or(|r| time_ms > r) {
        released_ms = Some(time_ms);
    }
    let active = match (quarantined_ms, released_ms) {
        (Some(q), Some(r)) => r < q,
        (Some(_), None) => true,
        _ => false,
    };
    sqlx::query::<sqlx::Any>(
        "INSERT INTO quarantines \
         (agent_name, device_key, event_id, quarantined_ms, released_ms, active) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_name, device_key) DO UPDATE SET \
         event_id = excluded.event_id, quarantined_ms = excluded.quarantined_ms, \
         released_ms = excluded.released_ms, active = excluded.active",
    )
    .bind(agent)
    .bind(key)
    .bind(event_id)
    .bind(quarantined_ms)
    .bind(released_ms)
    .bind(i64::from(active))
    .execute(&mut **tx)
    .await
    .map_err(super::sql("record a quarantine"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::{event, ms};
    use crate::db::testing;
    use schoolgate_contract::wire::Received;

    fn at(i: u32, kind: &str, ip: &str, time_ms: i64) -> Received {
        let mut e = event(i, kind);
        e.device.ip = Some(ip.parse().unwrap());
        e.time = ms(time_ms);
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
                .device_activity(&crate::db::Scope::Trust, &key, 1_500, 9_000, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.time_ms)
                .collect();
            assert_eq!(seen, [2_000, 3_000]);
            let all = db
                .device_history(&crate::db::Scope::Trust, &key, 100, 0)
                .await
                .unwrap();
            assert_eq!(all.len(), 4);
            assert_eq!(all[0].time_ms, 9_000, "newest first");
            assert_eq!(
                db.device_history(&crate::db::Scope::Trust, &key, 2, 3)
                    .await
                    .unwrap()
                    .len(),
                1
            );
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
            let now = db.quarantines(&crate::db::Scope::Trust).await.unwrap();
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
            db.queue_release("gw1", "10.10.3.7", None, "spoken to", "dsl", None, 4_000)
                .await
                .unwrap();
            let now = db.quarantines(&crate::db::Scope::Trust).await.unwrap();
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

    #[tokio::test]
    async fn a_release_outlives_the_purge_of_its_event_and_arrives_in_any_order() {
        const DAY: i64 = 86_400_000;
        for (db, _dir) in testing::each().await {
            let now = 1_000 * DAY;
            // The release came first (batches cross), then the quarantine it ends.
            db.ingest("gw1", &[at(2, "released", "10.10.3.7", now - 99 * DAY)], 1)
                .await
                .unwrap();
            db.ingest(
                "gw1",
                &[at(1, "quarantined", "10.10.3.7", now - 99 * DAY - 5)],
                1,
            )
            .await
            .unwrap();
            assert!(
                db.quarantines(&crate::db::Scope::Trust,)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let retention = crate::config::Retention::default();
            let purged = db.purge(&retention, now).await.unwrap();
            assert_eq!(purged.events, 1, "the release, past 90 days");
            assert_eq!(
                db.event_count().await.unwrap(),
                1,
                "the quarantine alert stays"
            );
            assert!(
                db.quarantines(&crate::db::Scope::Trust,)
                    .await
                    .unwrap()
                    .is_empty(),
                "still released"
            );
            // A year on, the quarantine goes and its state with it.
            db.purge(&retention, now + 300 * DAY).await.unwrap();
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quarantines")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(left, 0);
        }
    }

    /// Ten thousand devices quarantined and released: the devices page reads the few in
    /// quarantine now without walking the rest (the old query took half a minute).
    #[tokio::test]
    async fn quarantines_are_read_quickly_among_many_released() {
        for (db, _dir) in testing::each().await {
            let n = 10_000_u32;
            let ip = |i: u32| format!("10.{}.{}.{}", 20 + i / 65_536, (i / 256) % 256, i % 256);
            let mut events = Vec::new();
            for i in 0..n {
                events.push(at(2 * i + 1, "quarantined", &ip(i), 1_000));
                if i % 1000 != 0 {
                    events.push(at(2 * i + 2, "released", &ip(i), 2_000));
                }
            }
            for chunk in events.chunks(5_000) {
                db.ingest("gw1", chunk, 1).await.unwrap();
            }
            let started = std::time::Instant::now();
            let now = db.quarantines(&crate::db::Scope::Trust).await.unwrap();
            let took = started.elapsed();
            assert_eq!(now.len(), 10);
            assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        }
    }
}

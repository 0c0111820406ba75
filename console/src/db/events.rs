//! Events: ingest (idempotent by id; a larger count under the same id supersedes) and the
//! queries the pages make.

use sqlx::{Any, Row};

use super::{Backend, Db, DbError, Statement, sql};
use schoolgate_contract::wire::Received;
use schoolgate_contract::{Kind, Severity};

/// Rows per multi-row INSERT. sqlx's SQLite driver looks up each parameter's name, and
/// SQLite finds a name by walking the statement's list of them, so a statement's binding
/// cost grows with the square of its parameters: 10 rows (230 values) ingested fastest,
/// against 20, 50, 100 and 500 (docs/PERFORMANCE.md). PostgreSQL has no such cost.
fn rows_per_insert(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 10,
        Backend::Postgres => 500,
    }
}

/// What a batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored or superseded.
    pub stored: u64,
    /// Incidents started or changed, by id.
    pub incidents: Vec<String>,
    /// The ids of the events stored or superseded.
    pub fresh: Vec<String>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    pub agent: String,
    pub time_ms: i64,
    pub kind: Kind,
    pub severity: Severity,
    pub alert: bool,
    pub device_ip: Option<String>,
    pub device_mac: Option<String>,
    pub device_name: Option<String>,
    pub device_owner: Option<String>,
    /// The device was away from school (DNS over HTTPS or TLS by its off-site id).
    pub off_site: bool,
    /// Who was signed in on the device, where the agent knew.
    pub person_username: Option<String>,
    pub person_name: Option<String>,
    pub person_group: Option<String>,
    pub person_class: Option<String>,
    pub group: Option<String>,
    pub name: Option<String>,
    pub rule: Option<String>,
    pub category: Option<String>,
    pub technique: Option<String>,
    pub destination: Option<String>,
    pub evidence: Option<String>,
    pub count: i64,
    pub status: String,
    pub outcome: Option<String>,
    pub action_taken: Option<String>,
    /// The incident an alert is in.
    pub incident: Option<String>,
}

/// The columns [`stored`] reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, agent, time_ms, kind, severity, alert, device_ip, device_mac, device_name, \
         device_owner, person_username, person_name, person_group, person_class, grp, name, \
         rule, category, technique, destination, evidence, count, status, outcome, action_taken, \
         incident, off_site"
    };
}

pub(crate) fn stored(row: &sqlx::any::AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        id: row.try_get("id")?,
        agent: row.try_get("agent")?,
        time_ms: row.try_get("time_ms")?,
        kind: row
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        severity: row
            .try_get::<String, _>("severity")?
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        alert: row.try_get::<i64, _>("alert")? != 0,
        device_ip: row.try_get("device_ip")?,
        device_mac: row.try_get("device_mac")?,
        device_name: row.try_get("device_name")?,
        device_owner: row.try_get("device_owner")?,
        off_site: row.try_get::<i64, _>("off_site")? != 0,
        person_username: row.try_get("person_username")?,
        person_name: row.try_get("person_name")?,
        person_group: row.try_get("person_group")?,
        person_class: row.try_get("person_class")?,
        group: row.try_get("grp")?,
        name: row.try_get("name")?,
        rule: row.try_get("rule")?,
        category: row.try_get("category")?,
        technique: row.try_get("technique")?,
        destination: row.try_get("destination")?,
        evidence: row.try_get("evidence")?,
        count: row.try_get("count")?,
        status: row.try_get("status")?,
        outcome: row.try_get("outcome")?,
        action_taken: row.try_get("action_taken")?,
        incident: row.try_get("incident")?,
    })
}

impl Db {
    /// Stores `events` from `agent`; an id already stored changes only if the same agent
    /// sends it with a larger count (a follow-up's running count), so a retried batch
    /// changes nothing. How many were stored or superseded.
    pub async fn ingest(
        &self,
        agent: &str,
        events: &[Received],
        now_ms: i64,
    ) -> Result<u64, DbError> {
        Ok(self.ingest_batch(agent, events, now_ms).await?.stored)
    }

    /// [`Db::ingest`], saying also which incidents the batch's alerts started or changed.
    pub async fn ingest_batch(
        &self,
        agent: &str,
        events: &[Received],
        now_ms: i64,
    ) -> Result<Ingested, DbError> {
        let events = &*once_each(events);
        let mut tx = self.pool.begin().await.map_err(sql("begin a batch"))?;
        // What is stored already of this batch: a retried id adds nothing to the roll-ups,
        // a larger running count only its difference.
        let ids: Vec<String> = events.iter().map(|r| r.event.id.to_string()).collect();
        let mut known = super::rollups::stored_counts(&mut tx, self.backend, agent, &ids).await?;
        let mut tally = super::rollups::Tally::default();
        let mut days = super::rollups::Days::new(self.rollup_zone());
        let mut new = 0;
        let mut incidents = Vec::new();
        let mut fresh_ids = Vec::new();
        for chunk in events.chunks(rows_per_insert(self.backend)) {
            let mut q = Statement::new(
                "INSERT INTO events (id, agent, time_ms, kind, severity, alert, device_ip, \
                 device_mac, device_name, device_owner, person_username, person_name, \
                 person_group, person_class, grp, name, rule, category, technique, \
                 destination, evidence, count, last_ms, extra, received_ms, status, mailed, \
                 agent_time_ms, off_site) \
                 VALUES ",
            );
            for (i, r) in chunk.iter().enumerate() {
                let e = &r.event;
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(e.id.to_string().as_str())
                    .push(", ")
                    .bind(agent)
                    .push(", ")
                    .bind(e.time.as_millisecond())
                    .push(", ")
                    .bind(e.kind.as_str())
                    .push(", ")
                    .bind(e.severity.as_str())
                    .push(", ")
                    .bind(i64::from(e.is_alert()))
                    .push(", ")
                    .bind(e.device.ip.map(|ip| ip.to_string()))
                    .push(", ")
                    .bind(e.device.mac.map(|mac| mac.to_string()))
                    .push(", ")
                    .bind(e.device.name.clone())
                    .push(", ")
                    .bind(e.device.owner.clone())
                    .push(", ")
                    .bind(e.person.as_ref().map(|p| p.username.clone()))
                    .push(", ")
                    .bind(e.person.as_ref().and_then(|p| p.display_name.clone()))
                    .push(", ")
                    .bind(e.person.as_ref().and_then(|p| p.group.clone()))
                    .push(", ")
                    .bind(e.person.as_ref().and_then(|p| p.class.clone()))
                    .push(", ")
                    .bind(e.group.clone())
                    .push(", ")
                    .bind(e.name.clone())
                    .push(", ")
                    .bind(e.rule.clone())
                    .push(", ")
                    .bind(e.category.clone())
                    .push(", ")
                    .bind(e.technique.map(|t| t.as_str().to_owned()))
                    .push(", ")
                    .bind(e.destination.clone())
                    .push(", ")
                    .bind(e.evidence.clone())
                    .push(", ")
                    .bind(i64::from(e.count))
                    .push(", ")
                    .bind(e.last.map(|t| t.as_millisecond()))
                    .push(", ")
                    .bind(r.extra.clone())
                    .push(", ")
                    .bind(now_ms)
                    .push(", 'new', 0, ")
                    .bind(r.agent_time.map(|t| t.as_millisecond()))
                    .push(", ")
                    .bind(i64::from(e.device.off_site))
                    .push(")");
            }
            // An id stored already is a retry, or a follow-up's running count passed on again
            // (see the agent's aggregator): the larger count from the same agent supersedes.
            q.push(
                " ON CONFLICT (id) DO UPDATE SET count = excluded.count, \
                 last_ms = excluded.last_ms \
                 WHERE excluded.count > events.count AND excluded.agent = events.agent \
                 RETURNING id",
            );
            let stored: Vec<String> = q
                .query()
                .fetch_all(&mut *tx)
                .await
                .map_err(sql("store events"))?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()
                .map_err(sql("store events"))?;
            new += stored.len() as u64;
            let fresh: Vec<&schoolgate_contract::Event> = chunk
                .iter()
                .map(|r| &r.event)
                .filter(|e| stored.iter().any(|id| *id == e.id.to_string()))
                .collect();
            fresh_ids.extend(fresh.iter().map(|e| e.id.to_string()));
            for e in &fresh {
                let count = i64::from(e.count);
                let before = known.insert(e.id.to_string(), count);
                tally.add(e, count - before.unwrap_or(0), before.is_none(), &mut days);
            }
            for id in super::incidents::assign(&mut tx, agent, &fresh, &mut days).await? {
                if !incidents.contains(&id) {
                    incidents.push(id);
                }
            }
            // Only events stored now move a quarantine: an id sent again changes nothing.
            for e in chunk.iter().map(|r| &r.event) {
                if matches!(e.kind, Kind::Quarantined | Kind::Released)
                    && stored.iter().any(|id| *id == e.id.to_string())
                {
                    super::devices::note_quarantine(&mut tx, agent, e).await?;
                }
            }
        }
        super::rollups::add(&mut tx, self.backend, agent, &tally).await?;
        tx.commit().await.map_err(sql("commit a batch"))?;
        Ok(Ingested {
            stored: new,
            incidents,
            fresh: fresh_ids,
        })
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> Result<i64, DbError> {
        sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(sql("count events"))
    }

    /// One event, if it is in `scope`.
    pub async fn event(&self, scope: &super::Scope, id: &str) -> Result<Option<Stored>, DbError> {
        let mut q = Statement::new(concat!("SELECT ", columns!(), " FROM events WHERE id = "));
        q.bind(id);
        scope.push(&mut q, "agent");
        Ok(self
            .rows(q.query(), "read an event", stored)
            .await?
            .into_iter()
            .next())
    }
}

/// `events` with each id once: an agent may ship an event and a follow-up's running count of
/// it in one batch, and the largest count is the one that stands (PostgreSQL refuses a
/// statement that would write one row twice).
fn once_each(events: &[Received]) -> std::borrow::Cow<'_, [Received]> {
    let mut ids = std::collections::HashSet::with_capacity(events.len());
    if events.iter().all(|r| ids.insert(r.event.id)) {
        return std::borrow::Cow::Borrowed(events);
    }
    let mut out: Vec<Received> = Vec::with_capacity(events.len());
    let mut at: std::collections::HashMap<uuid::Uuid, usize> =
        std::collections::HashMap::with_capacity(events.len());
    for r in events {
        match at.get(&r.event.id) {
            Some(&i) => {
                if let Some(kept) = out.get_mut(i)
                    && r.event.count > kept.event.count
                {
                    *kept = r.clone();
                }
            }
            None => {
                at.insert(r.event.id, out.len());
                out.push(r.clone());
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Appends ` AND (the event's device is `device`)`: its IP address, MAC address (stored in
/// lower case) or name.
pub(crate) fn push_device(q: &mut Statement, device: &str) {
    q.push(" AND (device_ip = ")
        .bind(device)
        .push(" OR device_mac = ")
        .bind(device.to_ascii_lowercase().as_str())
        .push(" OR device_name = ")
        .bind(device)
        .push(")");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::testing;
    use schoolgate_contract::wire::parse_event;

    /// `ms` as a time.
    pub(crate) fn ms(ms: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(ms).unwrap()
    }

    /// A stored OpenVPN bypass attempt from a pupil's iPad, every field the pages and the
    /// e-mail read set, as `kind`.
    pub(crate) fn example(kind: &str) -> Stored {
        Stored {
            id: "0193abcd".into(),
            agent: "gw1".into(),
            time_ms: 1_795_946_523_000,
            kind: kind.parse().unwrap(),
            severity: Severity::High,
            alert: true,
            device_ip: Some("10.10.3.7".into()),
            device_mac: Some("52:54:00:aa:bb:cc".into()),
            device_name: Some("Y6-iPad-12".into()),
            off_site: false,
            device_owner: Some("Jo Bloggs".into()),
            person_username: Some("amira.k".into()),
            person_name: Some("Amira Khan".into()),
            person_group: Some("pupils".into()),
            person_class: Some("6B".into()),
            group: Some("pupils".into()),
            name: Some("vpn.example".into()),
            rule: None,
            category: None,
            technique: Some("openvpn".into()),
            destination: Some("192.0.2.9:1194".into()),
            evidence: Some("OpenVPN handshake".into()),
            count: 1,
            status: "new".into(),
            outcome: None,
            action_taken: None,
            incident: Some("0193abcd".into()),
        }
    }

    pub(crate) fn event(i: u32, kind: &str) -> Received {
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(
            1_795_946_523 + u64::from(i),
            0,
            0,
            0,
        ));
        parse_event(serde_json::json!({
            "id": id.to_string(), "time": "2026-11-24T10:02:03.123Z", "kind": kind,
            "device": {"ip": "10.10.3.7"}, "name": format!("site{i}.example"), "severity": "low",
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn ingest_is_idempotent_by_id() {
        for (db, _dir) in testing::each().await {
            let batch: Vec<_> = (0..1200).map(|i| event(i, "blocked")).collect();
            assert_eq!(db.ingest("gw1", &batch[..700], 1).await.unwrap(), 700);
            // A retry overlapping what was stored adds only what is new.
            assert_eq!(db.ingest("gw1", &batch[500..], 2).await.unwrap(), 500);
            assert_eq!(db.ingest("gw1", &batch, 3).await.unwrap(), 0);
            assert_eq!(db.event_count().await.unwrap(), 1200, "{:?}", db.backend);
            let e = db
                .event(&crate::db::Scope::Trust, &batch[3].id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(e.name.as_deref(), Some("site3.example"));
            assert_eq!(e.status, "new");
            assert!(!e.alert);
        }
    }

    #[tokio::test]
    async fn a_larger_count_under_the_same_id_supersedes_from_its_own_agent_only() {
        for (db, _dir) in testing::each().await {
            let mut e = event(1, "blocked");
            e.event.count = 3;
            assert_eq!(
                db.ingest("gw1", std::slice::from_ref(&e), 1).await.unwrap(),
                1
            );
            e.event.count = 7;
            e.event.last = Some(ms(e.event.time.as_millisecond() + 5_000));
            assert_eq!(
                db.ingest("gw1", std::slice::from_ref(&e), 2).await.unwrap(),
                1
            );
            // A retry of an older record, or another agent reusing the id: no change.
            e.event.count = 5;
            assert_eq!(
                db.ingest("gw1", std::slice::from_ref(&e), 3).await.unwrap(),
                0
            );
            e.count = 100;
            assert_eq!(
                db.ingest("gw2", std::slice::from_ref(&e), 3).await.unwrap(),
                0
            );
            let stored = db
                .event(&crate::db::Scope::Trust, &e.id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((stored.count, stored.agent.as_str()), (7, "gw1"));
            assert_eq!(db.event_count().await.unwrap(), 1);
        }
    }
}

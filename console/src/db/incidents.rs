//! Incidents: what the safeguarding lead triages. The alerts about one person (or one device
//! where nobody was signed in, or one gateway for its own troubles) within [`WINDOW_MS`] of
//! each other make one incident while it is open — a bypass attempt, the quarantine it
//! caused, the attempts that followed — so the list has one row where the agents sent
//! several. A resolved incident takes nothing more: a later attempt starts a new one, and
//! so does one that would stretch an incident past half a day ([`LONGEST_MS`]) or past the
//! school's midnight, so each incident belongs to one day of the school's calendar.
//!
//! An incident's id is its first alert's event id; its status, outcome and action taken are
//! copied onto its events, so every list of events shows the same status.

use std::collections::BTreeSet;

use schoolgate_contract::{Event, Kind, Severity, Technique};
use sqlx::{Any, Row};

use super::{Backend, Db, DbError, Scope, Statement, sql};
use crate::thresholds::Threshold;

/// How close in time an alert must be to an open incident to join it.
pub const WINDOW_MS: i64 = 30 * 60 * 1000;
/// How long one incident may span: a device left trying all night and all week is a new
/// incident each half day, so what goes on is seen again rather than folded into an old row.
pub const LONGEST_MS: i64 = 12 * 3_600_000;

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: String,
    pub agent: String,
    /// `person:<username>`, `device:<address or name>` or `gateway:<kind>`.
    pub subject: String,
    /// The first alert's kind.
    pub kind: Kind,
    pub first_ms: i64,
    pub last_ms: i64,
    /// The highest of its alerts'.
    pub severity: Severity,
    /// Alerts in it.
    pub events: i64,
    /// Bypass attempts in it, repeats counted.
    pub attempts: i64,
    /// The techniques tried, in the order first seen.
    pub techniques: Vec<Technique>,
    pub quarantined: bool,
    /// An alert in it came from a device away from school.
    pub off_site: bool,
    pub person_username: Option<String>,
    pub person_name: Option<String>,
    pub person_class: Option<String>,
    pub person_group: Option<String>,
    pub device_ip: Option<String>,
    pub device_mac: Option<String>,
    pub device_name: Option<String>,
    pub device_owner: Option<String>,
    pub group: Option<String>,
    /// The first name an alert in it named.
    pub name: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub action_taken: Option<String>,
    /// The threshold rule that raised it, for a threshold incident.
    pub rule: Option<String>,
    /// For a threshold incident: how many times its events counted.
    pub times: i64,
}

/// Who an alert is about, which decides the incident it joins.
pub fn subject(e: &Event) -> String {
    if let Some(p) = &e.person {
        return format!("person:{}", p.username);
    }
    let device = e
        .device
        .ip
        .map(|ip| ip.to_string())
        .or_else(|| e.device.mac.map(|m| m.to_string()))
        .or_else(|| e.device.name.clone());
    match device {
        Some(d) => format!("device:{d}"),
        None => format!("gateway:{}", e.kind),
    }
}

fn rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
    }
}

impl Incident {
    /// The incident alert `e` from `agent` starts.
    pub fn open(agent: &str, e: &Event) -> Self {
        let mut i = Self {
            id: e.id.to_string(),
            agent: agent.to_owned(),
            subject: subject(e),
            kind: e.kind,
            first_ms: e.time.as_millisecond(),
            last_ms: e.time.as_millisecond(),
            severity: e.severity,
            events: 0,
            attempts: 0,
            techniques: Vec::new(),
            quarantined: false,
            off_site: false,
            person_username: None,
            person_name: None,
            person_class: None,
            person_group: None,
            device_ip: None,
            device_mac: None,
            device_name: None,
            device_owner: None,
            group: None,
            name: None,
            status: "new".to_owned(),
            outcome: None,
            action_taken: None,
            rule: None,
            times: 0,
        };
        i.absorb(e);
        i
    }

    /// Whether alert `e` (already known to be about this incident's subject, from its
    /// agent) belongs in it: the incident is open, `e` is within the window of it, and
    /// taking it keeps the incident within [`LONGEST_MS`] and within `day`, the local day
    /// (`[start, next start)`) of the incident's first alert.
    pub fn takes(&self, e: &Event, day: (i64, i64)) -> bool {
        let t = e.time.as_millisecond();
        self.status != "resolved"
            && (day.0..day.1).contains(&t)
            && t >= self.first_ms.saturating_sub(WINDOW_MS)
            && t <= self.last_ms.saturating_add(WINDOW_MS)
            && t.max(self.last_ms).saturating_sub(t.min(self.first_ms)) < LONGEST_MS
    }

    /// Adds alert `e`: its time, severity, technique and quarantine; who and where it names
    /// fill what the incident did not know yet.
    pub fn absorb(&mut self, e: &Event) {
        let t = e.time.as_millisecond();
        self.first_ms = self.first_ms.min(t);
        self.last_ms = self
            .last_ms
            .max(e.last.map_or(t, |l| l.as_millisecond()).max(t));
        self.severity = self.severity.max(e.severity);
        self.events += 1;
        if e.kind == Kind::BypassAttempt {
            self.attempts += i64::from(e.count);
        }
        if let Some(t) = e.technique
            && !self.techniques.contains(&t)
        {
            self.techniques.push(t);
        }
        self.quarantined |= e.kind == Kind::Quarantined;
        self.off_site |= e.device.off_site;
        let fill = |slot: &mut Option<String>, v: Option<String>| {
            if slot.is_none() {
                *slot = v;
            }
        };
        if let Some(p) = &e.person {
            fill(&mut self.person_username, Some(p.username.clone()));
            fill(&mut self.person_name, p.display_name.clone());
            fill(&mut self.person_class, p.class.clone());
            fill(&mut self.person_group, p.group.clone());
        }
        fill(&mut self.device_ip, e.device.ip.map(|ip| ip.to_string()));
        fill(&mut self.device_mac, e.device.mac.map(|m| m.to_string()));
        fill(&mut self.device_name, e.device.name.clone());
        fill(&mut self.device_owner, e.device.owner.clone());
        fill(&mut self.group, e.group.clone());
        fill(&mut self.name, e.name.clone());
    }

    fn techniques_text(&self) -> String {
        if self.techniques.is_empty() {
            return String::new();
        }
        let mut s = String::from(",");
        for t in &self.techniques {
            s.push_str(t.as_str());
            s.push(',');
        }
        s
    }
}

/// The columns [`incident`] reads.
const COLUMNS: &str = "id, agent, subject, kind, first_ms, last_ms, severity, events, attempts, \
     techniques, quarantined, person_username, person_name, person_class, person_group, \
     device_ip, device_mac, device_name, device_owner, grp, name, status, outcome, action_taken, \
     rule, times, off_site";

fn incident(row: &sqlx::any::AnyRow) -> Result<Incident, sqlx::Error> {
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    Ok(Incident {
        id: row.try_get("id")?,
        agent: row.try_get("agent")?,
        subject: row.try_get("subject")?,
        kind: row
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(|e| decode(Box::new(e)))?,
        first_ms: row.try_get("first_ms")?,
        last_ms: row.try_get("last_ms")?,
        severity: row
            .try_get::<String, _>("severity")?
            .parse()
            .map_err(|e| decode(Box::new(e)))?,
        events: row.try_get("events")?,
        attempts: row.try_get("attempts")?,
        // A name this build does not know is left out, not an error: the list still shows.
        techniques: row
            .try_get::<String, _>("techniques")?
            .split(',')
            .filter_map(Technique::from_name)
            .collect(),
        quarantined: row.try_get::<i64, _>("quarantined")? != 0,
        off_site: row.try_get::<i64, _>("off_site")? != 0,
        person_username: row.try_get("person_username")?,
        person_name: row.try_get("person_name")?,
        person_class: row.try_get("person_class")?,
        person_group: row.try_get("person_group")?,
        device_ip: row.try_get("device_ip")?,
        device_mac: row.try_get("device_mac")?,
        device_name: row.try_get("device_name")?,
        device_owner: row.try_get("device_owner")?,
        group: row.try_get("grp")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        outcome: row.try_get("outcome")?,
        action_taken: row.try_get("action_taken")?,
        rule: row.try_get("rule")?,
        times: row.try_get("times")?,
    })
}

/// Puts the newly stored alerts among `events` from `agent` into incidents, inside the
/// ingest's transaction; the ids of the incidents started or changed. An alert stored
/// before (a running count passed on again) only updates its incident's sums.
pub(crate) async fn assign(
    tx: &mut sqlx::Transaction<'_, Any>,
    agent: &str,
    events: &[&Event],
    days: &mut super::rollups::Days,
) -> Result<Vec<String>, DbError> {
    let mut touched = BTreeSet::new();
    let mut resent = BTreeSet::new();
    for e in events.iter().filter(|e| e.is_alert()) {
        let id = e.id.to_string();
        let already: Option<String> =
            sqlx::query_scalar::<Any, Option<String>>("SELECT incident FROM events WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(sql("read an alert's incident"))?
                .flatten();
        if let Some(incident) = already {
            resent.insert(incident.clone());
            touched.insert(incident);
            continue;
        }
        let subject = subject(e);
        let t = e.time.as_millisecond();
        let q = sqlx::query::<Any>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM incidents WHERE agent = $1 AND subject = $2 \
             AND status <> 'resolved' AND last_ms >= $3 AND first_ms <= $4 \
             ORDER BY last_ms DESC LIMIT 1"
        )))
        .bind(agent)
        .bind(&subject)
        .bind(t.saturating_sub(WINDOW_MS))
        .bind(t.saturating_add(WINDOW_MS));
        let open = q
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql("find an open incident"))?
            .as_ref()
            .map(incident)
            .transpose()
            .map_err(sql("read an incident"))?
            .filter(|i| i.takes(e, days.span(i.first_ms)));
        let joined = match open {
            Some(mut i) => {
                i.absorb(e);
                update(tx, &i).await?;
                i
            }
            None => {
                let i = Incident::open(agent, e);
                insert(tx, &i).await?;
                i
            }
        };
        sqlx::query::<Any>("UPDATE events SET incident = $1, status = $2 WHERE id = $3")
            .bind(&joined.id)
            .bind(&joined.status)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(sql("put an alert in its incident"))?;
        touched.insert(joined.id);
    }
    for id in &resent {
        // A running count sent again: the sums from the events themselves, right whatever
        // order the alerts and their counts came in. (A new alert was added to them above.)
        sqlx::query::<Any>(
            "UPDATE incidents SET \
             events = (SELECT COUNT(*) FROM events WHERE incident = $1), \
             attempts = (SELECT COALESCE(SUM(count), 0) FROM events \
                         WHERE incident = $1 AND kind = 'bypass_attempt'), \
             last_ms = (SELECT MAX(COALESCE(last_ms, time_ms)) FROM events WHERE incident = $1) \
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(sql("sum an incident"))?;
    }
    Ok(touched.into_iter().collect())
}

async fn insert(tx: &mut sqlx::Transaction<'_, Any>, i: &Incident) -> Result<(), DbError> {
    let mut q = Statement::new(
        "INSERT INTO incidents (id, agent, subject, kind, first_ms, last_ms, severity, \
         severity_rank, events, attempts, techniques, quarantined, person_username, person_name, \
         person_class, person_group, device_ip, device_mac, device_name, device_owner, grp, name, \
         status, rule, off_site) VALUES (",
    );
    q.bind(i.id.as_str())
        .push(", ")
        .bind(i.agent.as_str())
        .push(", ")
        .bind(i.subject.as_str())
        .push(", ")
        .bind(i.kind.as_str())
        .push(", ")
        .bind(i.first_ms)
        .push(", ")
        .bind(i.last_ms)
        .push(", ")
        .bind(i.severity.as_str())
        .push(", ")
        .bind(rank(i.severity))
        .push(", ")
        .bind(i.events)
        .push(", ")
        .bind(i.attempts)
        .push(", ")
        .bind(i.techniques_text().as_str())
        .push(", ")
        .bind(i64::from(i.quarantined));
    for v in [
        &i.person_username,
        &i.person_name,
        &i.person_class,
        &i.person_group,
        &i.device_ip,
        &i.device_mac,
        &i.device_name,
        &i.device_owner,
        &i.group,
        &i.name,
    ] {
        q.push(", ").bind(v.clone());
    }
    q.push(", 'new', ")
        .bind(i.rule.clone())
        .push(", ")
        .bind(i64::from(i.off_site));
    // An id taken already (a batch sent again after its incident was resolved) starts
    // nothing new.
    q.push(") ON CONFLICT (id) DO NOTHING");
    q.query()
        .execute(&mut **tx)
        .await
        .map_err(sql("start an incident"))?;
    Ok(())
}

async fn update(tx: &mut sqlx::Transaction<'_, Any>, i: &Incident) -> Result<(), DbError> {
    let mut q = Statement::new("UPDATE incidents SET first_ms = ");
    q.bind(i.first_ms)
        .push(", last_ms = ")
        .bind(i.last_ms)
        .push(", severity = ")
        .bind(i.severity.as_str())
        .push(", severity_rank = ")
        .bind(rank(i.severity))
        .push(", events = ")
        .bind(i.events)
        .push(", attempts = ")
        .bind(i.attempts)
        .push(", techniques = ")
        .bind(i.techniques_text().as_str())
        .push(", quarantined = ")
        .bind(i64::from(i.quarantined))
        .push(", off_site = ")
        .bind(i64::from(i.off_site));
    for (column, v) in [
        ("person_username", &i.person_username),
        ("person_name", &i.person_name),
        ("person_class", &i.person_class),
        ("person_group", &i.person_group),
        ("device_ip", &i.device_ip),
        ("device_mac", &i.device_mac),
        ("device_name", &i.device_name),
        ("device_owner", &i.device_owner),
        ("grp", &i.group),
        ("name", &i.name),
    ] {
        // `column` is one of the names above.
        q.push(", ").push(column).push(" = ").bind(v.clone());
    }
    q.push(" WHERE id = ").bind(i.id.as_str());
    q.query()
        .execute(&mut **tx)
        .await
        .map_err(sql("add to an incident"))?;
    Ok(())
}

/// Appends ` AND (the events `rule` counts about `e`'s subject)`: the agent, kind, category,
/// group, and the person (or the device where nobody was signed in).
fn push_counted(q: &mut Statement, agent: &str, rule: &Threshold, e: &Event) {
    q.push(" agent = ")
        .bind(agent)
        .push(" AND kind = ")
        .bind(rule.kind.as_str());
    if let Some(c) = &rule.category {
        q.push(" AND category = ").bind(c.as_str());
    }
    if let Some(g) = &rule.group {
        q.push(" AND (grp = ")
            .bind(g.as_str())
            .push(" OR person_group = ")
            .bind(g.as_str())
            .push(" OR LOWER(person_class) = ")
            .bind(g.to_lowercase().as_str())
            .push(")");
    }
    match &e.person {
        Some(p) => {
            q.push(" AND person_username = ").bind(p.username.as_str());
        }
        None => {
            let device = e
                .device
                .ip
                .map(|ip| ip.to_string())
                .or_else(|| e.device.mac.map(|m| m.to_string()))
                .or_else(|| e.device.name.clone())
                .unwrap_or_default();
            super::events::push_device(q, &device);
        }
    }
}

impl Db {
    /// Counts what threshold `rule` counts about event `e` (from `agent`, just stored) in the
    /// rule's window up to `e`; once the window holds `rule.count`, the events are an
    /// incident (started with `e`'s id, or the open one for the same rule and subject
    /// growing). The incident's id when there is one.
    pub async fn threshold_hit(
        &self,
        agent: &str,
        rule: &Threshold,
        e: &Event,
    ) -> Result<Option<String>, DbError> {
        let t = e.time.as_millisecond();
        let from = t.saturating_sub(rule.window_ms());
        // PostgreSQL sums a BIGINT column as NUMERIC: cast back.
        let mut q =
            Statement::new("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM events WHERE");
        push_counted(&mut q, agent, rule, e);
        q.push(" AND time_ms > ")
            .bind(from)
            .push(" AND time_ms <= ")
            .bind(t);
        let n: i64 = q
            .query()
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(sql("count a threshold's events"))?;
        if n < i64::from(rule.count) {
            return Ok(None);
        }
        let th_subject = format!("threshold:{}:{}", rule.name, subject(e));
        let mut tx = self.pool.begin().await.map_err(sql("begin a threshold"))?;
        let open: Option<String> = sqlx::query_scalar::<Any, String>(
            "SELECT id FROM incidents WHERE agent = $1 AND subject = $2 \
             AND status <> 'resolved' AND last_ms >= $3 ORDER BY last_ms DESC LIMIT 1",
        )
        .bind(agent)
        .bind(&th_subject)
        .bind(from)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("find a threshold's incident"))?;
        let id = match open {
            Some(id) => id,
            None => {
                let mut i = Incident::open(agent, e);
                i.subject = th_subject;
                i.severity = rule.risk;
                i.rule = Some(rule.name.clone());
                insert(&mut tx, &i).await?;
                i.id
            }
        };
        let mut link = Statement::new("UPDATE events SET incident = ");
        link.bind(id.as_str()).push(" WHERE");
        push_counted(&mut link, agent, rule, e);
        link.push(" AND time_ms > ")
            .bind(from)
            .push(" AND time_ms <= ")
            .bind(t)
            .push(" AND incident IS NULL");
        link.query()
            .execute(&mut *tx)
            .await
            .map_err(sql("link a threshold's events"))?;
        sqlx::query::<Any>(
            "UPDATE incidents SET \
             events = (SELECT COUNT(*) FROM events WHERE incident = $1), \
             times = (SELECT COALESCE(SUM(count), 0) FROM events WHERE incident = $1), \
             first_ms = (SELECT MIN(time_ms) FROM events WHERE incident = $1), \
             last_ms = (SELECT MAX(COALESCE(last_ms, time_ms)) FROM events WHERE incident = $1) \
             WHERE id = $1",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(sql("sum a threshold's incident"))?;
        tx.commit().await.map_err(sql("commit a threshold"))?;
        Ok(Some(id))
    }
}

/// What the incident list is narrowed to; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub status: Option<String>,
    /// A technique's name on the wire.
    pub technique: Option<String>,
    /// The device's group or the person's.
    pub group: Option<String>,
    /// IP address, MAC address or device name.
    pub device: Option<String>,
    /// A person's username.
    pub person: Option<String>,
    /// Last seen at or after this instant (milliseconds).
    pub from_ms: Option<i64>,
    /// First seen before this instant (milliseconds).
    pub to_ms: Option<i64>,
}

impl Filter {
    fn push_where(&self, q: &mut Statement, with_status: bool) {
        fn some(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        if let (true, Some(s)) = (with_status, some(&self.status)) {
            q.push(" AND status = ").bind(s);
        }
        if let Some(t) = some(&self.technique) {
            // Only a known name is looked for, so `%` or `_` from the browser match nothing.
            let t = Technique::from_name(t).map_or("", Technique::as_str);
            q.push(" AND techniques LIKE ")
                .bind(format!("%,{t},%").as_str());
        }
        if let Some(g) = some(&self.group) {
            q.push(" AND (grp = ")
                .bind(g)
                .push(" OR person_group = ")
                .bind(g)
                .push(" OR person_class = ")
                .bind(g)
                .push(")");
        }
        if let Some(d) = some(&self.device) {
            super::events::push_device(q, d);
        }
        if let Some(p) = some(&self.person) {
            q.push(" AND person_username = ").bind(p);
        }
        if let Some(f) = self.from_ms {
            q.push(" AND last_ms >= ").bind(f);
        }
        if let Some(t) = self.to_ms {
            q.push(" AND first_ms < ").bind(t);
        }
    }
}

impl Db {
    /// Incidents matching `filter`, the most recently active first.
    pub async fn incidents(
        &self,
        scope: &Scope,
        filter: &Filter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Incident>, DbError> {
        let mut q = Statement::new(&format!("SELECT {COLUMNS} FROM incidents WHERE 1 = 1"));
        scope.push(&mut q, "agent");
        filter.push_where(&mut q, true);
        q.push(" ORDER BY last_ms DESC, id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        self.rows(q.query(), "list incidents", incident).await
    }

    /// How many incidents match `filter` (whatever its status), by status.
    pub async fn incident_counts(
        &self,
        scope: &Scope,
        filter: &Filter,
    ) -> Result<Vec<(String, i64)>, DbError> {
        let mut q = Statement::new("SELECT status, COUNT(*) AS n FROM incidents WHERE 1 = 1");
        scope.push(&mut q, "agent");
        filter.push_where(&mut q, false);
        q.push(" GROUP BY status");
        self.rows(q.query(), "count incidents", |r| {
            Ok((r.try_get("status")?, r.try_get("n")?))
        })
        .await
    }

    /// Incident `id`, if it is in `scope`.
    pub async fn incident(&self, scope: &Scope, id: &str) -> Result<Option<Incident>, DbError> {
        let mut q = Statement::new(&format!("SELECT {COLUMNS} FROM incidents WHERE id = "));
        q.bind(id);
        scope.push(&mut q, "agent");
        Ok(self
            .rows(q.query(), "read an incident", incident)
            .await?
            .into_iter()
            .next())
    }

    /// Incidents `ids` that are in `scope`, in no set order.
    pub async fn incidents_named(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<Vec<Incident>, DbError> {
        let mut out = Vec::with_capacity(ids.len());
        let per = match self.backend {
            Backend::Sqlite => 100,
            Backend::Postgres => 1000,
        };
        for chunk in ids.chunks(per) {
            let mut q = Statement::new(&format!("SELECT {COLUMNS} FROM incidents WHERE id IN ("));
            for (n, id) in chunk.iter().enumerate() {
                if n > 0 {
                    q.push(", ");
                }
                q.bind(id.as_str());
            }
            q.push(")");
            scope.push(&mut q, "agent");
            out.extend(self.rows(q.query(), "read incidents", incident).await?);
        }
        Ok(out)
    }

    /// The incident event `id` is in, if it is an alert in `scope`.
    pub async fn incident_of(&self, scope: &Scope, event: &str) -> Result<Option<String>, DbError> {
        let mut q = Statement::new("SELECT incident FROM events WHERE id = ");
        q.bind(event);
        scope.push(&mut q, "agent");
        let found = self
            .rows(q.query(), "read an event's incident", |r| {
                r.try_get::<Option<String>, _>("incident")
            })
            .await?;
        Ok(found.into_iter().next().flatten())
    }

    /// Incident `id`'s alerts, oldest first.
    pub async fn incident_events(&self, id: &str) -> Result<Vec<super::events::Stored>, DbError> {
        let q = sqlx::query::<Any>(concat!(
            "SELECT ",
            columns!(),
            // In one millisecond the attempt comes before the quarantine it caused.
            " FROM events WHERE incident = $1 \
             ORDER BY time_ms, CASE WHEN kind = 'quarantined' THEN 1 ELSE 0 END, id"
        ))
        .bind(id);
        self.rows(q, "read an incident's alerts", super::events::stored)
            .await
    }

    /// Claims high-risk incidents not yet e-mailed (oldest first, at most `limit`) for
    /// this console to mail, and gives them; a claim older than [`CLAIM_MS`] (a console that
    /// stopped mid-send) is taken over. Consoles sharing a database claim disjoint sets, so
    /// each incident is mailed once. `mailed`: 0 not yet, 1 mailed, else the claim's time.
    pub async fn claim_unmailed(&self, limit: i64, now_ms: i64) -> Result<Vec<Incident>, DbError> {
        let q = sqlx::query::<Any>(sqlx::AssertSqlSafe(format!(
            "UPDATE incidents SET mailed = $1 WHERE id IN (SELECT id FROM incidents \
             WHERE severity_rank >= $2 AND (mailed = 0 OR (mailed > 1 AND mailed < $3)) \
             ORDER BY first_ms, id LIMIT $4) \
             AND (mailed = 0 OR (mailed > 1 AND mailed < $3)) RETURNING {COLUMNS}"
        )))
        .bind(now_ms.max(2))
        .bind(rank(Severity::High))
        .bind(now_ms.saturating_sub(CLAIM_MS))
        .bind(limit);
        let mut claimed = self.rows(q, "claim incidents to e-mail", incident).await?;
        claimed.sort_by(|a, b| (a.first_ms, &a.id).cmp(&(b.first_ms, &b.id)));
        Ok(claimed)
    }

    /// High-risk incidents not yet e-mailed (nor claimed), oldest first, at most `limit`.
    pub async fn unmailed(&self, limit: i64) -> Result<Vec<Incident>, DbError> {
        let q = sqlx::query::<Any>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM incidents WHERE mailed = 0 AND severity_rank >= $1 \
             ORDER BY first_ms, id LIMIT $2"
        )))
        .bind(rank(Severity::High))
        .bind(limit);
        self.rows(q, "read incidents to e-mail", incident).await
    }

    /// Marks incidents `ids` as e-mailed (`true`) or gives up their claim (`false`, the send
    /// failed: the next tick tries again).
    pub async fn mark_mailed(&self, ids: &[&str], mailed: bool) -> Result<(), DbError> {
        for chunk in ids.chunks(100) {
            let mut q = Statement::new("UPDATE incidents SET mailed = ");
            q.bind(i64::from(mailed)).push(" WHERE id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(*id);
            }
            q.push(")");
            q.query()
                .execute(&self.pool)
                .await
                .map_err(sql("mark incidents e-mailed"))?;
        }
        Ok(())
    }
}

/// How long a console's claim to mail an incident holds before another takes it over.
pub const CLAIM_MS: i64 = 5 * 60 * 1000;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::db::events::tests::{event, ms};
    use crate::db::rollups::Days;
    use crate::db::testing;
    use crate::zone::Zone;
    use schoolgate_contract::wire::Received;

    /// An alert of `kind` from Amira's laptop at `minute` past 10:00.
    fn alert(i: u32, kind: &str, minute: i64, technique: Option<Technique>) -> Received {
        let mut e = event(i, kind);
        e.event.time = ms(1_795_946_400_000 + minute * 60_000);
        e.event.technique = technique;
        e.event.severity = Severity::Medium;
        e.event.person = Some(schoolgate_contract::PersonInfo {
            username: "amira.k".into(),
            display_name: Some("Amira Khan".into()),
            group: None,
            class: Some("6B".into()),
        });
        e
    }

    /// Attempts every twenty minutes from 10:00: those within twelve hours of the first are
    /// its incident; the one at 22:00 starts another, which takes the rest of the evening.
    #[test]
    fn an_incident_spans_half_a_day_at_most() {
        let mut days = Days::new(Zone::default());
        let first = alert(1, "bypass_attempt", 0, Some(Technique::VpnApp)).event;
        let mut day = Incident::open("gw1", &first);
        for k in 1..36 {
            let e = alert(k + 1, "bypass_attempt", i64::from(k) * 20, None).event;
            assert!(day.takes(&e, days.span(day.first_ms)), "{k}");
            day.absorb(&e);
        }
        let late = alert(40, "bypass_attempt", 36 * 20, None).event;
        assert!(!day.takes(&late, days.span(day.first_ms)));
        let mut night = Incident::open("gw1", &late);
        let later = alert(41, "bypass_attempt", 37 * 20, None).event;
        assert!(night.takes(&later, days.span(night.first_ms)));
        night.absorb(&later);
        // An alert sent late, dated inside the first half day, still joins the first.
        let early = alert(42, "bypass_attempt", 5, None).event;
        assert!(days.span(day.first_ms) == days.span(night.first_ms));
        assert!(day.takes(&early, days.span(day.first_ms)));
        assert!(!night.takes(&early, days.span(night.first_ms)));
    }

    /// Attempts at 23:50 and 00:10 school time, twenty minutes apart, are two incidents:
    /// one on each day's list. In summer the school's midnight is 23:00 UTC.
    #[test]
    fn an_incident_ends_at_the_schools_midnight() {
        let london = Zone::default();
        for (utc_midnight, zone) in [
            (1_795_910_400_000, london.clone()), // 2026-11-29 00:00 GMT
            (1_784_937_600_000, london),         // 2026-07-25 00:00 BST is 2026-07-24 23:00 UTC
            (1_784_937_600_000, Zone::utc()),
        ] {
            let midnight = zone.floor_day(utc_midnight + 3_600_000);
            let mut days = Days::new(zone.clone());
            let at = |i: u32, ms: i64| {
                let mut e = alert(i, "bypass_attempt", 0, None).event;
                e.time = jiff::Timestamp::from_millisecond(ms).unwrap();
                e
            };
            let before = at(1, midnight - 10 * 60_000);
            let after = at(2, midnight + 10 * 60_000);
            let evening = Incident::open("gw1", &before);
            assert!(
                !evening.takes(&after, days.span(evening.first_ms)),
                "{}",
                zone.name()
            );
            let also = at(3, midnight - 60_000);
            assert!(evening.takes(&also, days.span(evening.first_ms)));
        }
    }

    #[tokio::test]
    async fn an_alert_from_a_device_away_from_school_says_so_in_its_incident() {
        for (db, _dir) in testing::each().await {
            let mut away = alert(1, "bypass_attempt", 0, Some(Technique::VpnApp));
            away.event.person = None;
            away.event.device = schoolgate_contract::DeviceInfo {
                name: Some("ICT-Suite-01".into()),
                off_site: true,
                ..Default::default()
            };
            let at_school = alert(2, "bypass_attempt", 0, Some(Technique::VpnApp));
            db.ingest("gw1", std::slice::from_ref(&away), 1)
                .await
                .unwrap();
            db.ingest("gw2", std::slice::from_ref(&at_school), 1)
                .await
                .unwrap();
            let scope = crate::db::Scope::Trust;
            let e = db
                .event(&scope, &away.id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert!(e.off_site);
            assert_eq!(
                crate::web::alert::device_label(&e),
                "ICT-Suite-01 (off site)"
            );
            let i = db
                .incident(&scope, &away.id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert!(i.off_site, "{:?}", db.backend);
            assert!(
                crate::web::alert::title(&i).starts_with("ICT-Suite-01 (off site) "),
                "{}",
                crate::web::alert::title(&i)
            );
            let home = db
                .incident(&scope, &at_school.id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert!(!home.off_site);
            assert!(!crate::web::alert::title(&home).contains("off site"));
        }
    }

    #[tokio::test]
    async fn an_attempt_its_quarantine_and_repeats_are_one_incident() {
        for (db, _dir) in testing::each().await {
            let attempt = alert(1, "bypass_attempt", 0, Some(Technique::VpnApp));
            let mut quarantine = alert(2, "quarantined", 0, None);
            quarantine.event.severity = Severity::High;
            let mut again = alert(3, "bypass_attempt", 20, Some(Technique::Tor));
            again.event.count = 4;
            let blocked = event(4, "blocked");
            db.ingest(
                "gw1",
                &[attempt.clone(), quarantine, again.clone(), blocked],
                1,
            )
            .await
            .unwrap();
            let all = db
                .incidents(&crate::db::Scope::Trust, &Filter::default(), 10, 0)
                .await
                .unwrap();
            assert_eq!(all.len(), 1, "{all:?}");
            let i = &all[0];
            assert_eq!(i.id, attempt.id.to_string());
            assert_eq!((i.events, i.attempts), (3, 5));
            assert_eq!(i.techniques, [Technique::VpnApp, Technique::Tor]);
            assert!(i.quarantined);
            assert_eq!(i.severity, Severity::High);
            assert_eq!(i.person_name.as_deref(), Some("Amira Khan"));
            assert_eq!(i.last_ms - i.first_ms, 20 * 60_000);
            assert_eq!(db.incident_events(&i.id).await.unwrap().len(), 3);
            assert_eq!(
                db.incident_of(&crate::db::Scope::Trust, &again.id.to_string())
                    .await
                    .unwrap(),
                Some(i.id.clone())
            );

            // Beyond the window, a new incident; and once resolved, nothing joins it.
            let late = alert(5, "bypass_attempt", 51, Some(Technique::VpnApp));
            db.ingest("gw1", &[late], 2).await.unwrap();
            assert_eq!(
                db.incidents(&crate::db::Scope::Trust, &Filter::default(), 10, 0)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            let done = crate::db::cases::Triage {
                status: "resolved",
                outcome: Some("spoken to the pupil"),
                action_taken: None,
            };
            let newest = db
                .incidents(&crate::db::Scope::Trust, &Filter::default(), 1, 0)
                .await
                .unwrap();
            assert!(db.triage(&newest[0].id, &done, "dsl", 3).await.unwrap());
            let after = alert(6, "bypass_attempt", 52, Some(Technique::VpnApp));
            db.ingest("gw1", &[after], 4).await.unwrap();
            assert_eq!(
                db.incidents(&crate::db::Scope::Trust, &Filter::default(), 10, 0)
                    .await
                    .unwrap()
                    .len(),
                3
            );

            // Narrowed by technique (an exact name only) and by status.
            let tor = Filter {
                technique: Some("tor".into()),
                ..Filter::default()
            };
            assert_eq!(
                db.incidents(&crate::db::Scope::Trust, &tor, 10, 0)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            let wild = Filter {
                technique: Some("%".into()),
                ..Filter::default()
            };
            assert!(
                db.incidents(&crate::db::Scope::Trust, &wild, 10, 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let counts = db
                .incident_counts(&crate::db::Scope::Trust, &Filter::default())
                .await
                .unwrap();
            assert!(counts.contains(&("resolved".to_owned(), 1)), "{counts:?}");
            assert!(counts.contains(&("new".to_owned(), 2)), "{counts:?}");
        }
    }

    #[tokio::test]
    async fn other_people_and_other_gateways_are_other_incidents() {
        for (db, _dir) in testing::each().await {
            let a = alert(1, "bypass_attempt", 0, Some(Technique::VpnApp));
            let mut b = alert(2, "bypass_attempt", 1, Some(Technique::VpnApp));
            b.event.person = None;
            let c = alert(3, "bypass_attempt", 2, Some(Technique::VpnApp));
            db.ingest("gw1", &[a, b], 1).await.unwrap();
            db.ingest("gw2", &[c], 1).await.unwrap();
            let all = db
                .incidents(&crate::db::Scope::Trust, &Filter::default(), 10, 0)
                .await
                .unwrap();
            let mut subjects: Vec<_> = all
                .iter()
                .map(|i| (i.agent.as_str(), i.subject.as_str()))
                .collect();
            subjects.sort_unstable();
            assert_eq!(
                subjects,
                [
                    ("gw1", "device:10.10.3.7"),
                    ("gw1", "person:amira.k"),
                    ("gw2", "person:amira.k")
                ]
            );
        }
    }

    #[tokio::test]
    async fn a_running_count_sent_again_updates_the_sums_only() {
        for (db, _dir) in testing::each().await {
            let mut a = alert(1, "bypass_attempt", 0, Some(Technique::Ssh));
            db.ingest("gw1", std::slice::from_ref(&a), 1).await.unwrap();
            a.event.count = 9;
            a.event.last = Some(ms(a.event.time.as_millisecond() + 60_000));
            db.ingest("gw1", std::slice::from_ref(&a), 2).await.unwrap();
            let all = db
                .incidents(&crate::db::Scope::Trust, &Filter::default(), 10, 0)
                .await
                .unwrap();
            assert_eq!(all.len(), 1);
            assert_eq!((all[0].events, all[0].attempts), (1, 9));
            assert_eq!(all[0].last_ms - all[0].first_ms, 60_000);
        }
    }
}

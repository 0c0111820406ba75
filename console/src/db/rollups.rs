//! Roll-ups: the events' sums kept per hour and per local day as each batch is stored, so
//! the dashboard, the blocked-activity page and the weekly report read a few thousand rows
//! instead of every event in their window.
//!
//! - `rollup_hours`: per agent and hour, by kind, group, category, rule and technique (few
//!   distinct values each).
//! - `rollup_names`: blocks per agent, local day, group and name (names are many: an hour's
//!   bucket would be nearly as large as the events).
//! - `rollup_trust_names`: the same for every agent together, which a trust's lead reads.
//! - `rollup_devices`: per agent, local day and device, blocks and alerts.
//!
//! A window is read from whole buckets where it covers them and from the events for the
//! edges it cuts (a window from a half hour, or from a midnight in a zone whose offset is
//! not whole hours), so every reader gives what a sum over the events would. The daily
//! buckets are cut in the console's time zone: [`Db::roll_up_in`] rebuilds them from the
//! events when the zone changes, and builds all three the first time.
//!
//! A retried batch adds nothing and a follow-up's larger running count adds only its
//! difference, as the events table itself keeps them. Retention deletes a bucket once
//! all of it is past its period; until then it keeps the sums of events purged with it.

use std::collections::{BTreeMap, HashMap};

use schoolgate_contract::{Event, Kind};
use sqlx::{Any, Row};

use super::reports::HOUR_MS;
use super::{Backend, Db, DbError, Scope, Statement, Value, sql};
use crate::zone::Zone;

/// One hour's key, after the agent's.
type HourKey = (i64, String, String, String, String, String);
/// One day's name key: day, group, name.
type NameKey = (i64, String, String);
/// One day's device key: day, device.
type DeviceKey = (i64, String);

/// A device's sums over one day.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct DeviceSums {
    name: Option<String>,
    owner: Option<String>,
    blocked: i64,
    alerts: i64,
}

/// What one batch adds to the roll-ups, in key order (so consoles sharing a database take
/// a batch's row locks in one order and never wait on each other in a circle).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    hours: BTreeMap<HourKey, i64>,
    names: BTreeMap<NameKey, i64>,
    devices: BTreeMap<DeviceKey, DeviceSums>,
}

/// The start of each local day, remembering the last day found (a batch's events mostly
/// fall on one day).
#[derive(Debug)]
pub(crate) struct Days {
    zone: Zone,
    last: Option<(i64, i64)>,
}

impl Days {
    pub(crate) fn new(zone: Zone) -> Self {
        Self { zone, last: None }
    }

    fn start(&mut self, ms: i64) -> i64 {
        self.span(ms).0
    }

    /// The local day holding `ms`: its start and the next day's.
    pub(crate) fn span(&mut self, ms: i64) -> (i64, i64) {
        if let Some((from, to)) = self.last
            && (from..to).contains(&ms)
        {
            return (from, to);
        }
        let from = self.zone.floor_day(ms);
        let to = self.zone.add_days(from, 1);
        self.last = Some((from, to));
        (from, to)
    }
}

fn text(v: Option<&str>) -> String {
    v.unwrap_or_default().to_owned()
}

/// The larger of two optional texts, a present one over none (SQL's `MAX`).
fn larger(a: Option<String>, b: Option<&String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) if b > &a => Some(b.clone()),
        (Some(a), _) => Some(a),
        (None, b) => b.cloned(),
    }
}

impl Tally {
    /// Counts `e`, stored now: `added` more of its `count` than before (all of it when it
    /// is new), `new` when its id was not stored yet.
    pub(crate) fn add(&mut self, e: &Event, added: i64, new: bool, days: &mut Days) {
        let ms = e.time.as_millisecond();
        let key = (
            ms.div_euclid(HOUR_MS),
            e.kind.as_str().to_owned(),
            text(e.group.as_deref()),
            text(e.category.as_deref()),
            text(e.rule.as_deref()),
            text(e.technique.map(|t| t.as_str())),
        );
        *self.hours.entry(key).or_default() += added;
        let blocked = e.kind == Kind::Blocked;
        let day = days.start(ms);
        if blocked {
            let key = (day, text(e.group.as_deref()), text(e.name.as_deref()));
            *self.names.entry(key).or_default() += added;
        }
        let device = e
            .device
            .ip
            .map(|ip| ip.to_string())
            .or_else(|| e.device.mac.map(|m| m.to_string()));
        if let Some(device) = device {
            let sums = self.devices.entry((day, device)).or_default();
            sums.name = larger(sums.name.take(), e.device.name.as_ref());
            sums.owner = larger(sums.owner.take(), e.device.owner.as_ref());
            if blocked {
                sums.blocked += added;
            }
            if new && e.is_alert() {
                sums.alerts += 1;
            }
        }
    }
}

/// Rows per upsert: SQLite binds a statement's parameters at a cost that grows with the
/// square of their number (see `events::rows_per_insert`).
fn rows_per_upsert(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 25,
        Backend::Postgres => 500,
    }
}

/// Adds `tally` of `agent`'s batch to the roll-ups, in the batch's transaction.
pub(crate) async fn add(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    agent: &str,
    tally: &Tally,
) -> Result<(), DbError> {
    let per = rows_per_upsert(backend);
    let hours: Vec<_> = tally.hours.iter().filter(|(_, n)| **n != 0).collect();
    for chunk in hours.chunks(per) {
        let mut q = Statement::new(
            "INSERT INTO rollup_hours (agent, hour, kind, grp, category, rule, technique, n) \
             VALUES ",
        );
        for (i, ((hour, kind, grp, category, rule, technique), n)) in chunk.iter().enumerate() {
            q.row(
                i == 0,
                [
                    agent.into(),
                    (*hour).into(),
                    kind.as_str().into(),
                    grp.as_str().into(),
                    category.as_str().into(),
                    rule.as_str().into(),
                    technique.as_str().into(),
                    (**n).into(),
                ],
            );
        }
        q.push(
            " ON CONFLICT (agent, hour, kind, grp, category, rule, technique) \
             DO UPDATE SET n = rollup_hours.n + excluded.n",
        );
        q.query()
            .execute(&mut **tx)
            .await
            .map_err(sql("add to the hourly sums"))?;
    }
    let names: Vec<_> = tally.names.iter().filter(|(_, n)| **n != 0).collect();
    for chunk in names.chunks(per) {
        // The agent's own sums, then the trust's (the same rows without the agent).
        for agent in [Some(agent), None] {
            let mut q = Statement::new(match agent {
                Some(_) => "INSERT INTO rollup_names (agent, day_ms, grp, name, n) VALUES ",
                None => "INSERT INTO rollup_trust_names (day_ms, grp, name, n) VALUES ",
            });
            for (i, ((day, grp, name), n)) in chunk.iter().enumerate() {
                let sums = [
                    (*day).into(),
                    grp.as_str().into(),
                    name.as_str().into(),
                    (**n).into(),
                ];
                q.row(i == 0, agent.map(Value::from).into_iter().chain(sums));
            }
            q.push(match agent {
                Some(_) => {
                    " ON CONFLICT (agent, day_ms, grp, name) \
                     DO UPDATE SET n = rollup_names.n + excluded.n"
                }
                None => {
                    " ON CONFLICT (day_ms, grp, name) \
                     DO UPDATE SET n = rollup_trust_names.n + excluded.n"
                }
            });
            q.query()
                .execute(&mut **tx)
                .await
                .map_err(sql("add to the daily sums by name"))?;
        }
    }
    let devices: Vec<_> = tally.devices.iter().collect();
    for chunk in devices.chunks(per) {
        let mut q = Statement::new(
            "INSERT INTO rollup_devices (agent, day_ms, device, name, owner, blocked, alerts) \
             VALUES ",
        );
        for (i, ((day, device), s)) in chunk.iter().enumerate() {
            q.row(
                i == 0,
                [
                    agent.into(),
                    (*day).into(),
                    device.as_str().into(),
                    s.name.clone().into(),
                    s.owner.clone().into(),
                    s.blocked.into(),
                    s.alerts.into(),
                ],
            );
        }
        // The larger name and owner, as `MAX` over the events gives them.
        q.push(
            " ON CONFLICT (agent, day_ms, device) DO UPDATE SET \
             blocked = rollup_devices.blocked + excluded.blocked, \
             alerts = rollup_devices.alerts + excluded.alerts, \
             name = CASE WHEN rollup_devices.name IS NULL OR excluded.name > rollup_devices.name \
                    THEN excluded.name ELSE rollup_devices.name END, \
             owner = CASE WHEN rollup_devices.owner IS NULL \
                     OR excluded.owner > rollup_devices.owner \
                     THEN excluded.owner ELSE rollup_devices.owner END",
        );
        q.query()
            .execute(&mut **tx)
            .await
            .map_err(sql("add to the daily sums by device"))?;
    }
    Ok(())
}

/// The counts already stored under `ids` from `agent` (a retry's, or a running count's
/// earlier value), read before a batch is written.
pub(crate) async fn stored_counts(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    agent: &str,
    ids: &[String],
) -> Result<HashMap<String, i64>, DbError> {
    let mut known = HashMap::new();
    let per = match backend {
        Backend::Sqlite => 100,
        Backend::Postgres => 1_000,
    };
    for chunk in ids.chunks(per) {
        // By id alone, which the primary key finds: with the agent in the condition too,
        // the planners chose the agent's index and read every event the agent had sent.
        let mut q = Statement::new("SELECT id, agent, count FROM events WHERE id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(id.as_str());
        }
        q.push(")");
        for row in q
            .query()
            .fetch_all(&mut **tx)
            .await
            .map_err(sql("read the counts stored"))?
        {
            let id: String = row.try_get("id").map_err(sql("read the counts stored"))?;
            let n: i64 = row
                .try_get("count")
                .map_err(sql("read the counts stored"))?;
            let from: String = row
                .try_get("agent")
                .map_err(sql("read the counts stored"))?;
            // Another agent's event of the same id is never superseded by this one's.
            if from == agent {
                known.insert(id, n);
            }
        }
    }
    Ok(known)
}

/// Which table a sum reads, and so the size of its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `rollup_hours`: all kinds.
    Hours,
    /// `rollup_names`: blocks only.
    Names,
}

/// What a sum is keyed by: the roll-up's column and the same value from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Group,
    Category,
    Rule,
    Technique,
    Kind,
    Name,
    Hour,
}

impl Key {
    fn rolled(self) -> &'static str {
        match self {
            Self::Group => "grp",
            Self::Category => "category",
            Self::Rule => "rule",
            Self::Technique => "technique",
            Self::Kind => "kind",
            Self::Name => "name",
            Self::Hour => "hour",
        }
    }

    fn raw(self) -> &'static str {
        match self {
            Self::Group => "COALESCE(grp, '')",
            Self::Category => "COALESCE(category, '')",
            Self::Rule => "COALESCE(rule, '')",
            Self::Technique => "COALESCE(technique, '')",
            Self::Kind => "kind",
            Self::Name => "COALESCE(name, '')",
            Self::Hour => "time_ms / 3600000",
        }
    }

    fn table(self) -> Table {
        if self == Self::Name {
            Table::Names
        } else {
            Table::Hours
        }
    }
}

/// `[from, to)` in milliseconds.
pub(crate) type Span = (i64, i64);

/// `[from, to)` cut into the part whole buckets cover (`[a, b)`, if any) and the edges
/// outside it, given the start of the bucket holding a time and the start of the next.
pub(crate) fn split(
    from: i64,
    to: i64,
    floor: impl Fn(i64) -> i64,
    next: impl Fn(i64) -> i64,
) -> (Option<Span>, Vec<Span>) {
    if from >= to {
        return (None, Vec::new());
    }
    let a = if floor(from) == from {
        from
    } else {
        next(from)
    };
    let b = floor(to);
    if a >= b {
        return (None, vec![(from, to)]);
    }
    let edges = [(from, a), (b, to)]
        .into_iter()
        .filter(|(x, y)| x < y)
        .collect();
    (Some((a, b)), edges)
}

/// A sum of events' counts in `[from, to)` of `scope`, keyed by `key`: whole buckets from
/// the roll-up, the edges from the events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sum<'a> {
    pub key: Key,
    pub kind: Option<Kind>,
    pub group: Option<&'a str>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub scope: &'a Scope,
}

impl Db {
    /// The zone the daily roll-ups are cut in.
    pub(crate) fn rollup_zone(&self) -> Zone {
        self.rolled
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |z| z.clone())
    }

    /// `SELECT k, n FROM (…) GROUP BY k` for `s`, to which the caller adds its order.
    pub(crate) fn summed(&self, s: Sum<'_>) -> Statement {
        let table = s.key.table();
        let (whole, edges) = match table {
            Table::Hours => split(
                s.from_ms,
                s.to_ms,
                |t| t.div_euclid(HOUR_MS) * HOUR_MS,
                |t| (t.div_euclid(HOUR_MS) + 1) * HOUR_MS,
            ),
            Table::Names => {
                let zone = self.rollup_zone();
                split(
                    s.from_ms,
                    s.to_ms,
                    |t| zone.floor_day(t),
                    |t| zone.add_days(t, 1),
                )
            }
        };
        let mut q = Statement::new("SELECT k, CAST(SUM(n) AS BIGINT) AS n FROM (");
        if let Some((a, b)) = whole {
            q.push("SELECT ")
                .push(s.key.rolled())
                .push(" AS k, n FROM ");
            match table {
                Table::Hours => {
                    q.push("rollup_hours WHERE hour >= ")
                        .bind(a.div_euclid(HOUR_MS))
                        .push(" AND hour < ")
                        .bind(b.div_euclid(HOUR_MS));
                    if let Some(kind) = s.kind {
                        q.push(" AND kind = ").bind(kind.as_str());
                    }
                }
                Table::Names => {
                    q.push(if s.scope.is_trust() {
                        "rollup_trust_names"
                    } else {
                        "rollup_names"
                    })
                    .push(" WHERE day_ms >= ")
                    .bind(a)
                    .push(" AND day_ms < ")
                    .bind(b);
                }
            }
            if let Some(g) = s.group {
                q.push(" AND grp = ").bind(g);
            }
            if !(table == Table::Names && s.scope.is_trust()) {
                s.scope.push(&mut q, "agent");
            }
        }
        if !edges.is_empty() {
            if whole.is_some() {
                q.push(" UNION ALL ");
            }
            q.push("SELECT ")
                .push(s.key.raw())
                .push(" AS k, count AS n FROM events WHERE (");
            for (i, (x, y)) in edges.iter().enumerate() {
                q.push(if i == 0 { "" } else { " OR " })
                    .push("(time_ms >= ")
                    .bind(*x)
                    .push(" AND time_ms < ")
                    .bind(*y)
                    .push(")");
            }
            q.push(")");
            let kind = if table == Table::Names {
                Some(Kind::Blocked)
            } else {
                s.kind
            };
            if let Some(kind) = kind {
                q.push(" AND kind = ").bind(kind.as_str());
            }
            if let Some(g) = s.group {
                q.push(" AND grp = ").bind(g);
            }
            s.scope.push(&mut q, "agent");
        }
        if whole.is_none() && edges.is_empty() {
            // An empty window: a select of nothing, so the statement still reads.
            q.push("SELECT kind AS k, count AS n FROM events WHERE 1 = 0");
        }
        q.push(") t GROUP BY k");
        q
    }

    /// Builds the roll-ups from the events if they were never built or were cut in another
    /// zone than `zone`, and cuts the days of what is stored from now on in `zone`. True if
    /// it rebuilt anything.
    pub async fn roll_up_in(&self, zone: &Zone) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a rebuild"))?;
        if self.backend == Backend::Postgres {
            // A trust's years of events take longer than a page's statements may.
            run(
                &mut tx,
                "SET LOCAL statement_timeout = 0",
                "lift the statement timeout",
            )
            .await?;
            // One console at a time rebuilds; the others wait for it and find it done.
            run(
                &mut tx,
                "LOCK TABLE rollup_zone IN EXCLUSIVE MODE",
                "lock the roll-ups",
            )
            .await?;
        }
        let built: Option<String> =
            sqlx::query_scalar::<Any, String>("SELECT zone FROM rollup_zone")
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql("read the roll-ups' zone"))?;
        if built.as_deref() == Some(zone.name()) {
            tx.commit().await.map_err(sql("end a rebuild"))?;
            self.cut_days_in(zone.clone());
            return Ok(false);
        }
        if built.is_none() {
            run(&mut tx, "DELETE FROM rollup_hours", "clear the hourly sums").await?;
            run(
                &mut tx,
                "INSERT INTO rollup_hours (agent, hour, kind, grp, category, rule, technique, n) \
                 SELECT agent, time_ms / 3600000, kind, COALESCE(grp, ''), \
                 COALESCE(category, ''), COALESCE(rule, ''), COALESCE(technique, ''), \
                 SUM(count) FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7",
                "build the hourly sums",
            )
            .await?;
        }
        run(
            &mut tx,
            "DELETE FROM rollup_names",
            "clear the daily sums by name",
        )
        .await?;
        run(
            &mut tx,
            "DELETE FROM rollup_trust_names",
            "clear the trust's daily sums by name",
        )
        .await?;
        run(
            &mut tx,
            "DELETE FROM rollup_devices",
            "clear the daily sums by device",
        )
        .await?;
        run(&mut tx, "DELETE FROM rollup_days", "clear the days").await?;
        let span: Option<(Option<i64>, Option<i64>)> =
            sqlx::query::<Any>("SELECT MIN(time_ms) AS a, MAX(time_ms) AS b FROM events")
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql("read the events' span"))?
                .map(|r| (r.try_get("a").ok(), r.try_get("b").ok()));
        if let Some((Some(first), Some(last))) = span {
            let mut days = Vec::new();
            let mut day = zone.floor_day(first);
            while day <= last {
                let next = zone.add_days(day, 1);
                if next <= day {
                    break;
                }
                days.push((day, next));
                day = next;
            }
            for chunk in days.chunks(rows_per_upsert(self.backend)) {
                let mut q = Statement::new("INSERT INTO rollup_days (day_ms, next_ms) VALUES ");
                for (i, (a, b)) in chunk.iter().enumerate() {
                    q.row(i == 0, [(*a).into(), (*b).into()]);
                }
                q.query()
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("write the days"))?;
            }
            run(
                &mut tx,
                "INSERT INTO rollup_names (agent, day_ms, grp, name, n) \
                 SELECT e.agent, d.day_ms, COALESCE(e.grp, ''), COALESCE(e.name, ''), \
                 SUM(e.count) FROM rollup_days d JOIN events e \
                 ON e.time_ms >= d.day_ms AND e.time_ms < d.next_ms \
                 WHERE e.kind = 'blocked' GROUP BY 1, 2, 3, 4",
                "build the daily sums by name",
            )
            .await?;
            run(
                &mut tx,
                "INSERT INTO rollup_trust_names (day_ms, grp, name, n) \
                 SELECT day_ms, grp, name, SUM(n) FROM rollup_names GROUP BY 1, 2, 3",
                "build the trust's daily sums by name",
            )
            .await?;
            run(
                &mut tx,
                "INSERT INTO rollup_devices (agent, day_ms, device, name, owner, blocked, alerts) \
                 SELECT e.agent, d.day_ms, COALESCE(e.device_ip, e.device_mac), \
                 MAX(e.device_name), MAX(e.device_owner), \
                 SUM(CASE WHEN e.kind = 'blocked' THEN e.count ELSE 0 END), SUM(e.alert) \
                 FROM rollup_days d JOIN events e \
                 ON e.time_ms >= d.day_ms AND e.time_ms < d.next_ms \
                 WHERE COALESCE(e.device_ip, e.device_mac) IS NOT NULL GROUP BY 1, 2, 3",
                "build the daily sums by device",
            )
            .await?;
            run(&mut tx, "DELETE FROM rollup_days", "clear the days").await?;
        }
        run(
            &mut tx,
            "DELETE FROM rollup_zone",
            "forget the roll-ups' zone",
        )
        .await?;
        sqlx::query::<Any>("INSERT INTO rollup_zone (zone) VALUES ($1)")
            .bind(zone.name())
            .execute(&mut *tx)
            .await
            .map_err(sql("record the roll-ups' zone"))?;
        tx.commit().await.map_err(sql("commit a rebuild"))?;
        self.cut_days_in(zone.clone());
        Ok(true)
    }

    fn cut_days_in(&self, zone: Zone) {
        match self.rolled.write() {
            Ok(mut z) => *z = zone,
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }
}

/// Runs `text`, a statement of the code's own without values, in `tx`.
async fn run(
    tx: &mut sqlx::Transaction<'_, Any>,
    text: &'static str,
    what: &'static str,
) -> Result<(), DbError> {
    sqlx::query::<Any>(text)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(sql(what))
}

/// Deletes the buckets wholly before `hours_before` (hourly) and `days_before` (daily, cut
/// in `zone`), in a purge's transaction.
pub(crate) async fn purge(
    tx: &mut sqlx::Transaction<'_, Any>,
    zone: &Zone,
    hours_before: i64,
    days_before: i64,
) -> Result<(), DbError> {
    sqlx::query::<Any>("DELETE FROM rollup_hours WHERE hour < $1")
        .bind(hours_before.div_euclid(HOUR_MS))
        .execute(&mut **tx)
        .await
        .map_err(sql("purge the hourly sums"))?;
    let day = zone.floor_day(days_before);
    for text in [
        "DELETE FROM rollup_names WHERE day_ms < $1",
        "DELETE FROM rollup_trust_names WHERE day_ms < $1",
        "DELETE FROM rollup_devices WHERE day_ms < $1",
    ] {
        sqlx::query::<Any>(text)
            .bind(day)
            .execute(&mut **tx)
            .await
            .map_err(sql("purge the daily sums"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::reports::{By, Window};
    use crate::db::testing;
    use schoolgate_contract::wire::{Received, parse_event};
    use std::collections::BTreeMap as Map;

    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Dice(u64);

    impl Dice {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
            of.get(self.next(of.len() as u64) as usize)
                .copied()
                .unwrap_or_default()
        }
    }

    const START: i64 = 1_792_540_800_000; // 2026-10-20 00:00 UTC: the clocks change on the 25th.

    fn event(d: &mut Dice, id: uuid::Uuid, t: i64, count: u64) -> Received {
        let kind = d.pick(&[
            "blocked",
            "blocked",
            "blocked",
            "bypass_attempt",
            "presence",
        ]);
        let none = serde_json::Value::Null;
        let maybe = |d: &mut Dice, v: &str| {
            if d.next(4) == 0 {
                serde_json::Value::Null
            } else {
                v.into()
            }
        };
        let device = match d.next(5) {
            0 => serde_json::json!({"mac": format!("52:54:00:00:00:0{}", d.next(3))}),
            1 => serde_json::json!({}),
            _ => serde_json::json!({"ip": format!("10.0.0.{}", d.next(6)),
                                    "name": d.pick(&["iPad-A", "ipad-a", "Laptop"]),
                                    "owner": d.pick(&["6B", "Staff", "6A"])}),
        };
        let group = d.pick(&["pupils", "staff", "school_computers"]);
        let group = maybe(d, group);
        let name = d.pick(&["a.example", "b.example", "c.example", "d.example"]);
        let name = maybe(d, name);
        parse_event(serde_json::json!({
            "id": id.to_string(),
            "time": jiff::Timestamp::from_millisecond(t).unwrap().to_string(),
            "kind": kind, "device": device,
            "group": group, "name": name,
            "category": if kind == "blocked" { maybe(d, "social_networking") } else { none.clone() },
            "rule": if kind == "blocked" { maybe(d, "Pupils keep off") } else { none.clone() },
            "technique": if kind == "bypass_attempt" { d.pick(&["openvpn", "tor"]).into() } else { none },
            "severity": if kind == "bypass_attempt" { "high" } else { "low" },
            "count": count,
        }))
        .unwrap()
    }

    /// What a sum over every event gives, keyed as the readers key it ('' for none).
    async fn oracle(
        db: &Db,
        key: &str,
        kind: Option<&str>,
        from: i64,
        to: i64,
        agent: Option<&str>,
    ) -> Map<String, i64> {
        let mut q = Statement::new("SELECT CAST(");
        q.push(key)
            .push(" AS TEXT) AS k, CAST(SUM(count) AS BIGINT) AS n FROM events WHERE time_ms >= ")
            .bind(from)
            .push(" AND time_ms < ")
            .bind(to);
        if let Some(kind) = kind {
            q.push(" AND kind = ").bind(kind);
        }
        if let Some(agent) = agent {
            q.push(" AND agent = ").bind(agent);
        }
        q.push(" GROUP BY 1");
        db.rows(q.query(), "oracle", |r| {
            Ok((r.try_get("k")?, r.try_get("n")?))
        })
        .await
        .unwrap()
        .into_iter()
        .collect()
    }

    fn keyed(v: Vec<(Option<String>, i64)>) -> Map<String, i64> {
        v.into_iter()
            .map(|(k, n)| (k.unwrap_or_default(), n))
            .collect()
    }

    /// Batches of events over a week across a change of the clocks, with retries, larger
    /// running counts, smaller ones and another agent's copies of the same ids, read over
    /// windows cut anywhere, in zones a whole and a half hour from UTC: each reader gives
    /// what the sum over the stored events gives, before and after a rebuild in another zone.
    #[tokio::test]
    async fn every_reader_agrees_with_a_sum_over_the_events() {
        for (db, _dir) in testing::each().await {
            let london = Zone::try_from("Europe/London".to_owned()).unwrap();
            let kolkata = Zone::try_from("Asia/Kolkata".to_owned()).unwrap();
            assert!(db.roll_up_in(&london).await.unwrap());
            for (agent, school) in [("gw1", "a"), ("gw2", "b")] {
                db.add_agent(agent, agent, 1).await.unwrap();
                db.set_agent_school(agent, Some(school)).await.unwrap();
            }
            let mut d = Dice(0x5eed_1234_abcd);
            let mut sent: Vec<(Received, u64)> = Vec::new();
            for batch in 0..12 {
                let mut events = Vec::new();
                for _ in 0..60 {
                    let t = START + d.next(7 * 86_400_000) as i64;
                    let id = uuid::Uuid::now_v7();
                    let count = 1 + d.next(4);
                    events.push((event(&mut d, id, t, count), count));
                }
                // Again: the same, larger, and smaller counts of ids sent before.
                for _ in 0..10 {
                    let Some((old, count)) =
                        sent.get(d.next(sent.len().max(1) as u64) as usize).cloned()
                    else {
                        break;
                    };
                    let mut again = old.clone();
                    let bigger = match d.next(3) {
                        0 => count,
                        1 => count + 1 + d.next(3),
                        _ => count.saturating_sub(1).max(1),
                    };
                    again.event.count = u32::try_from(bigger).unwrap();
                    events.push((again, bigger));
                }
                let agent = if batch % 5 == 4 { "gw2" } else { "gw1" };
                let batch: Vec<Received> = events.iter().map(|(e, _)| e.clone()).collect();
                db.ingest(agent, &batch, 1).await.unwrap();
                sent.extend(events);
            }
            for zone in [london.clone(), kolkata, london] {
                db.roll_up_in(&zone).await.unwrap();
                let scope = Scope::Trust;
                for _ in 0..25 {
                    let from = START - 86_400_000 + d.next(9 * 86_400_000) as i64;
                    let to = from + d.next(4 * 86_400_000) as i64;
                    // Half the windows are whole local days, as the blocked page asks.
                    let (from, to) = if d.next(2) == 0 {
                        (zone.floor_day(from), zone.floor_day(to))
                    } else {
                        (from, to)
                    };
                    let w = Window {
                        from_ms: from,
                        to_ms: to,
                        scope: &scope,
                    };
                    for (by, col) in [
                        (By::Group, "COALESCE(grp, '')"),
                        (By::Category, "COALESCE(category, '')"),
                        (By::Rule, "COALESCE(rule, '')"),
                        (By::Name, "COALESCE(name, '')"),
                    ] {
                        let got = keyed(db.blocked_by(by, w, None, 1_000).await.unwrap());
                        let want = oracle(&db, col, Some("blocked"), from, to, None).await;
                        assert_eq!(got, want, "{by:?} {from}..{to} in {}", zone.name());
                        // One school's: its gateway's alone.
                        let school = Scope::school("b");
                        let w = Window {
                            scope: &school,
                            ..w
                        };
                        let got = keyed(db.blocked_by(by, w, None, 1_000).await.unwrap());
                        let want = oracle(&db, col, Some("blocked"), from, to, Some("gw2")).await;
                        assert_eq!(got, want, "{by:?} of school b");
                    }
                    let got = keyed(db.kinds(w).await.unwrap());
                    assert_eq!(
                        got,
                        oracle(&db, "kind", None, from, to, None).await,
                        "kinds"
                    );
                    let got = keyed(db.bypass_by_technique(w).await.unwrap());
                    let want = oracle(
                        &db,
                        "COALESCE(technique, '')",
                        Some("bypass_attempt"),
                        from,
                        to,
                        None,
                    )
                    .await;
                    assert_eq!(got, want, "techniques");
                    let got: Map<String, i64> = db
                        .per_hour(Kind::Blocked, w, None)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|(h, n)| (h.to_string(), n))
                        .collect();
                    let want =
                        oracle(&db, "time_ms / 3600000", Some("blocked"), from, to, None).await;
                    assert_eq!(got, want, "per hour");
                    // Devices by whole days.
                    let day = zone.floor_day(from);
                    let end = zone.add_days(to - 1, 1);
                    let got: Map<(String, String), (i64, i64)> = db
                        .top_devices(w, 1_000)
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(|_| from < to)
                        .map(|t| ((t.key, t.agent), (t.blocked, t.alerts)))
                        .collect();
                    let mut q = Statement::new(
                        "SELECT COALESCE(device_ip, device_mac) AS k, agent, \
                         CAST(SUM(CASE WHEN kind = 'blocked' THEN count ELSE 0 END) AS BIGINT) AS b, \
                         CAST(SUM(alert) AS BIGINT) AS a FROM events \
                         WHERE COALESCE(device_ip, device_mac) IS NOT NULL AND time_ms >= ",
                    );
                    q.bind(day)
                        .push(" AND time_ms < ")
                        .bind(end)
                        .push(" GROUP BY 1, 2");
                    let want: Map<(String, String), (i64, i64)> = db
                        .rows(q.query(), "oracle", |r| {
                            Ok((
                                (r.try_get("k")?, r.try_get("agent")?),
                                (r.try_get("b")?, r.try_get("a")?),
                            ))
                        })
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(|_| from < to)
                        .collect();
                    assert_eq!(got, want, "devices {from}..{to} in {}", zone.name());
                }
            }
        }
    }

    #[test]
    fn a_window_is_cut_into_whole_buckets_and_edges() {
        let floor = |t: i64| t.div_euclid(10) * 10;
        let next = |t: i64| (t.div_euclid(10) + 1) * 10;
        assert_eq!(split(20, 50, floor, next), (Some((20, 50)), vec![]));
        assert_eq!(
            split(15, 57, floor, next),
            (Some((20, 50)), vec![(15, 20), (50, 57)])
        );
        assert_eq!(split(12, 18, floor, next), (None, vec![(12, 18)]));
        assert_eq!(split(12, 25, floor, next), (None, vec![(12, 25)]));
        assert_eq!(split(20, 20, floor, next), (None, vec![]));
        assert_eq!(
            split(-15, 5, floor, next),
            (Some((-10, 0)), vec![(-15, -10), (0, 5)])
        );
    }
}

//! The console's database: SQLite in the data directory by default, PostgreSQL when given a
//! `postgres://` URL. Both are reached through sqlx's `Any` driver with the same SQL (times
//! are integer milliseconds, flags 0/1, `$n` placeholders), so every query and test runs on
//! both; only the migrations' id columns differ (`migrations/sqlite`, `migrations/postgres`).
//!
//! - [`events`]: ingest (idempotent by id) and the queries the pages make.
//! - [`accounts`]: users, agents and sessions.
//! - [`audit`]: the audit log.
//! - [`commands`]: commands waiting for agents.
//! - [`incidents`]: alerts gathered into incidents, the list and what is e-mailed.
//! - [`cases`]: triage, case notes and each incident's history.
//! - [`explanations`]: questions for a gateway's decision, and its answers.
//! - [`requests`]: teachers' requests for exceptions; the policy each agent has in force.
//! - [`devices`]: a device's activity and history; devices in quarantine now.
//! - [`retention`]: the daily purge of what is past its retention period.
//! - [`throttle`]: sign-in attempts counted together by consoles sharing PostgreSQL.
//! - [`rollups`]: the events' sums per hour and local day, kept as batches are stored.
//! - [`reports`]: sums for the blocked-activity page, the dashboard and the weekly report.

// First, for the `columns!` macro the other modules use.
#[macro_use]
pub mod events;

pub mod accounts;
pub mod audit;
pub mod cases;
pub mod commands;
pub mod devices;
pub mod explanations;
pub mod incidents;
pub mod people;
pub mod reports;
pub mod requests;
pub mod retention;
pub mod rollups;
pub mod throttle;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The URL it was opened with, for PostgreSQL's notifications (never printed: it may
    /// hold a password).
    url: std::sync::Arc<str>,
    /// The zone the daily roll-ups are cut in (UTC until [`Db::roll_up_in`] says).
    rolled: std::sync::Arc<std::sync::RwLock<crate::zone::Zone>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL channel on which the incidents each batch started or changed are told to
/// every console sharing the database.
pub const INCIDENTS_CHANNEL: &str = "schoolgate_incidents";

impl Db {
    /// The URL to listen on, when the database is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        (self.backend == Backend::Postgres).then_some(&*self.url)
    }

    /// Tells every console listening (PostgreSQL) that incidents `ids` started or changed.
    pub async fn notify_incidents(&self, ids: &[String]) -> Result<(), DbError> {
        // A notification's payload is at most 8000 bytes: 100 ids of 36 characters fit.
        for chunk in ids.chunks(100) {
            let payload = serde_json::to_string(chunk).unwrap_or_default();
            sqlx::query::<sqlx::Any>("SELECT pg_notify($1, $2)")
                .bind(INCIDENTS_CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await
                .map_err(sql("tell the other consoles"))?;
        }
        Ok(())
    }
}

/// A database error and what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("database URL {0:?} is neither sqlite:// nor postgres://")]
    Url(String),
    #[error("data directory {0:?} cannot be named in a database URL (it holds '?' or '#')")]
    DataDir(String),
    #[error("cannot {what}: {source}")]
    Sql {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot seal a secret: {0}")]
    Seal(#[from] crate::auth::HashError),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// `Result::map_err` for sqlx errors, naming what was being done.
pub(crate) fn sql(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError::Sql { what, source }
}

/// A value bound to a [`Statement`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

/// SQL built in pieces with `$n` placeholders, which both backends read (sqlx's own
/// builder writes `?` for `Any`, which PostgreSQL does not). Values are always bound, never
/// written into the text.
#[derive(Debug, Default)]
pub(crate) struct Statement {
    text: String,
    values: Vec<Value>,
}

impl Statement {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.values.len().to_string());
        self
    }

    /// Appends one row of a multi-row `VALUES` list, `(…)` with a placeholder for each of
    /// `values`, after a comma unless it is the `first`.
    pub(crate) fn row(
        &mut self,
        first: bool,
        values: impl IntoIterator<Item = Value>,
    ) -> &mut Self {
        self.push(if first { "(" } else { ", (" });
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        // The text holds only the code's own SQL and `$n` placeholders.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.text.as_str()));
        for v in &self.values {
            q = match v {
                Value::Text(t) => q.bind(t.clone()),
                Value::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// Whose records a reader may see: the whole trust's (a user without a school, and the
/// console's own work), or one or more schools', that is their agents' and their users'.
/// Every query a page makes takes one, so what a school's staff cannot see is never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Trust,
    /// Never empty: no school is the trust.
    Schools(Vec<String>),
}

impl Scope {
    /// The scope of a user whose `school` column is `schools` (ids joined by commas;
    /// `None` or empty: the whole trust).
    pub fn of(schools: Option<&str>) -> Self {
        let ids: Vec<String> = schools
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            Self::Trust
        } else {
            Self::Schools(ids)
        }
    }

    /// School `id`'s scope.
    pub fn school(id: &str) -> Self {
        Self::of(Some(id))
    }

    /// The schools, none for the trust.
    pub fn schools(&self) -> &[String] {
        match self {
            Self::Trust => &[],
            Self::Schools(s) => s,
        }
    }

    pub fn is_trust(&self) -> bool {
        matches!(self, Self::Trust)
    }

    /// The schools as a user's `school` column holds them; `None` for the trust.
    pub fn column(&self) -> Option<String> {
        match self {
            Self::Trust => None,
            Self::Schools(s) => Some(s.join(",")),
        }
    }

    /// Whether a record of an agent whose school is `school` is in this scope (an agent
    /// without one belongs to the trust alone).
    pub fn admits(&self, school: Option<&str>) -> bool {
        match self {
            Self::Trust => true,
            Self::Schools(s) => school.is_some_and(|x| s.iter().any(|id| id == x)),
        }
    }

    /// Whether everything `other` sees, this scope sees too (an admin reaches the accounts
    /// whose scope theirs covers).
    pub fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Trust, _) => true,
            (Self::Schools(_), Self::Trust) => false,
            (Self::Schools(_), Self::Schools(o)) => o.iter().all(|id| self.admits(Some(id))),
        }
    }

    /// Narrows `q` (after a condition) to rows whose `agent_column` names one of the
    /// schools' agents; nothing for the trust.
    pub(crate) fn push(&self, q: &mut Statement, agent_column: &'static str) {
        if let Self::Schools(s) = self {
            q.push(" AND ")
                .push(agent_column)
                .push(" IN (SELECT name FROM agents WHERE school IN (");
            for (i, id) in s.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(id.as_str());
            }
            q.push("))");
        }
    }

    /// Narrows `q` (after a condition) to audit entries of users in one of the schools
    /// (an entry holds its user's schools, joined by commas); nothing for the trust.
    pub(crate) fn push_audit(&self, q: &mut Statement) {
        if let Self::Schools(s) = self {
            q.push(" AND (");
            for (i, id) in s.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                // Ids hold no `%`, `_` or `,` (`SchoolId`), so each is matched literally.
                q.push("',' || school || ',' LIKE ")
                    .bind(format!("%,{id},%").as_str());
            }
            q.push(")");
        }
    }
}

#[cfg(test)]
mod scope_tests {
    use super::Scope;

    #[test]
    fn a_scope_reads_from_the_users_column_and_covers_its_own() {
        assert_eq!(Scope::of(None), Scope::Trust);
        assert_eq!(Scope::of(Some(" , ")), Scope::Trust);
        let two = Scope::of(Some("oak,elm"));
        assert_eq!(two.schools(), ["oak", "elm"]);
        assert_eq!(two.column().as_deref(), Some("oak,elm"));
        assert!(two.admits(Some("elm")) && !two.admits(Some("ash")) && !two.admits(None));
        assert!(two.covers(&Scope::school("oak")) && two.covers(&two));
        assert!(!Scope::school("oak").covers(&two) && !two.covers(&Scope::Trust));
        assert!(Scope::Trust.covers(&two) && Scope::Trust.admits(None));
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The database URL for the data directory's SQLite file.
pub fn sqlite_url(data: &Path) -> Result<String, DbError> {
    let path = data.join("console.db");
    let text = path.to_string_lossy();
    if text.contains(['?', '#']) {
        return Err(DbError::DataDir(text.into_owned()));
    }
    Ok(format!("sqlite://{text}?mode=rwc"))
}

impl Db {
    /// Every row `query` returns, each read by `read`; `what` names the work in errors.
    pub(crate) async fn rows<T>(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        what: &'static str,
        read: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, DbError> {
        let rows = query.fetch_all(&self.pool).await.map_err(sql(what))?;
        rows.iter()
            .map(read)
            .collect::<Result<_, _>>()
            .map_err(sql(what))
    }

    /// Connections in the pool.
    fn connections_for(backend: Backend) -> u32 {
        match backend {
            // One writer at a time in SQLite anyway; a few readers beside it.
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        }
    }

    /// Connections in this database's pool.
    pub fn connections(&self) -> usize {
        Self::connections_for(self.backend) as usize
    }

    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Url(url.to_owned()));
        };
        let options = AnyPoolOptions::new()
            .max_connections(Self::connections_for(backend))
            .acquire_timeout(Duration::from_secs(10));
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets pages read while a batch is written; NORMAL syncs at
                    // checkpoints, which WAL keeps safe against corruption.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // No statement holds a connection longer than this.
                    conn.execute("SET statement_timeout = 20000").await?;
                    Ok(())
                })
            })
        };
        let pool = options
            .connect(url)
            .await
            .map_err(sql("connect to the database"))?;
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        let built: Option<String> =
            sqlx::query_scalar::<sqlx::Any, String>("SELECT zone FROM rollup_zone")
                .fetch_optional(&pool)
                .await
                .map_err(sql("read the roll-ups' zone"))?;
        let zone = built
            .and_then(|name| crate::zone::Zone::try_from(name).ok())
            .unwrap_or_else(crate::zone::Zone::utc);
        Ok(Self {
            pool,
            backend,
            url: url.into(),
            rolled: std::sync::Arc::new(std::sync::RwLock::new(zone)),
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Databases for tests: a fresh SQLite file, and a fresh PostgreSQL schema when
    //! `SCHOOLGATE_TEST_POSTGRES` names a server.

    use super::*;

    /// Each backend the tests can reach, freshly made: SQLite always; PostgreSQL when
    /// `SCHOOLGATE_TEST_POSTGRES` is set (CI sets it), in a database of its own.
    pub(crate) async fn each() -> Vec<(Db, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Db::open(&sqlite_url(dir.path()).unwrap()).await.unwrap();
        let mut all = vec![(sqlite, Some(dir))];
        if let Some(pg) = postgres().await {
            all.push((pg, None));
        }
        all
    }

    /// A fresh PostgreSQL database, if a server is named.
    pub(crate) async fn postgres() -> Option<Db> {
        let base = std::env::var("SCHOOLGATE_TEST_POSTGRES").ok()?;
        install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap();
        forget_old(&admin).await;
        let name = format!("sg_test_{}", uuid::Uuid::now_v7().simple());
        // The name is made here from a UUID's hex digits: nothing outside goes into it.
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        Some(Db::open(&format!("{prefix}/{name}")).await.unwrap())
    }

    /// Drops the test databases made over an hour ago. A test's pool lives as long as the
    /// test, and dropping a database needs a connection of its own, so each run clears its
    /// predecessors' instead: their names start with a UUIDv7, whose first 48 bits are the
    /// milliseconds it was made at.
    async fn forget_old(admin: &sqlx::AnyPool) {
        let Ok(names) = sqlx::query_scalar::<_, String>(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'sg_test_%'",
        )
        .fetch_all(admin)
        .await
        else {
            return;
        };
        let hour_ago = jiff::Timestamp::now().as_millisecond() - 3_600_000;
        for name in names {
            let made = name
                .strip_prefix("sg_test_")
                .and_then(|hex| hex.get(..12))
                .and_then(|ms| i64::from_str_radix(ms, 16).ok());
            let all_hex = name
                .strip_prefix("sg_test_")
                .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if all_hex && made.is_some_and(|ms| ms < hour_ago) {
                // Checked above to be `sg_test_` and 32 hex digits. One still in use is left.
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .await;
            }
        }
    }
}

//! The console's speed with a trust's worth of history: events/s ingested in the agents'
//! batches (1,000 events each, as the shipper sends them), the time to rebuild the report
//! sums from every event, and the time to answer the incident list, the dashboard and the
//! blocked-activity page, through the router with a signed-in session, for a lead of the
//! whole trust and a lead of one school, with 1,000,000 events stored per school and ten
//! schools. SQLite always; PostgreSQL too when `SCHOOLGATE_BENCH_POSTGRES` names a server (a
//! fresh database is made there). `cargo bench -p schoolgate-console --bench console`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use schoolgate_console::auth::{Role, random_token, token_hash};
use schoolgate_console::config::Config;
use schoolgate_console::db::{Db, sqlite_url};
use schoolgate_console::web::{App, SESSION_COOKIE, router};
use schoolgate_contract::wire::{Received, parse_event};
use tower::ServiceExt;

/// A number from the environment, else `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Events stored per school (`SCHOOLGATE_BENCH_EVENTS` sets another number for a quick look).
fn events() -> usize {
    setting("SCHOOLGATE_BENCH_EVENTS", 1_000_000)
}

/// Schools, each with its gateway (`SCHOOLGATE_BENCH_SCHOOLS`).
fn schools() -> usize {
    setting("SCHOOLGATE_BENCH_SCHOOLS", 10)
}
const BATCH: usize = 1_000;
/// One event in this many is a bypass attempt (an alert).
const ALERT_EVERY: usize = 50;
/// Page loads measured per case.
const LOADS: usize = 30;

/// Event `i` of a school: 500 devices, 30 days, mostly blocks with a bypass attempt now and
/// then; on four devices in five someone is signed in (3,000 people over the month).
fn event(i: usize, start_ms: i64, total: usize) -> Received {
    // Spread over 30 days whatever the number.
    let t = start_ms + (i as i64) * (30 * 86_400_000 / total.max(1) as i64);
    let ts = jiff::Timestamp::from_millisecond(t).unwrap();
    let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(
        u64::try_from(t / 1000).unwrap(),
        u32::try_from((t % 1000) * 1_000_000).unwrap() + u32::try_from(i % 1_000_000).unwrap(),
        0,
        0,
    ));
    let device = i % 500;
    let alert = i.is_multiple_of(ALERT_EVERY);
    parse_event(serde_json::json!({
        "id": id.to_string(), "time": ts.to_string(),
        "kind": if alert { "bypass_attempt" } else { "blocked" },
        "device": {"ip": format!("10.10.{}.{}", device / 250, device % 250 + 2),
                   "name": format!("Y{}-iPad-{device}", device % 7), "owner": format!("{}B", device % 7)},
        "group": if device.is_multiple_of(10) { "school_computers" } else { "pupils" },
        "name": format!("site{}.instagram.com", i % 2_000),
        "rule": if alert { serde_json::Value::Null } else { "Pupils keep off social networking".into() },
        "category": if alert { serde_json::Value::Null } else { "social_networking".into() },
        "technique": if alert { ["openvpn", "dns_over_https", "tor", "wireguard"][i / ALERT_EVERY % 4].into() } else { serde_json::Value::Null },
        "evidence": "DNS query", "severity": if alert { "high" } else { "low" }, "count": 1 + i % 3,
        "person": if device.is_multiple_of(5) { serde_json::Value::Null } else {
            let who = (device + 500 * (i / 200_000)) % 3_000;
            serde_json::json!({"username": format!("pupil{who}"), "display_name": format!("Pupil {who}"),
                               "group": "pupils", "class": format!("{}B", who % 7)})
        },
    }))
    .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

const CHEAP_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA";

async fn run(label: &str, db: Db) {
    let (total, n) = (events(), schools());
    let start_ms = jiff::Timestamp::now().as_millisecond() - 30 * 86_400_000;
    let yaml: String = (0..n)
        .map(|s| format!("  - {{ id: s{s}, name: School {s} }}\n"))
        .collect();
    let config = Config::parse(&format!("schools:\n{yaml}")).unwrap();
    db.roll_up_in(&config.time_zone).await.unwrap();
    for s in 0..n {
        db.add_agent(&format!("gw{s}"), &format!("hash{s}"), 1)
            .await
            .unwrap();
        db.set_agent_school(&format!("gw{s}"), Some(&format!("s{s}")))
            .await
            .unwrap();
    }
    // Ingest, the schools' batches in turn as their gateways send them, timing only the
    // database's part (events are made beforehand, per batch).
    let mut spent = Duration::ZERO;
    for b in 0..total / BATCH {
        for s in 0..n {
            let batch: Vec<Received> = (b * BATCH..(b + 1) * BATCH)
                .map(|i| event(i, start_ms, total))
                .collect();
            let t = Instant::now();
            db.ingest(&format!("gw{s}"), &batch, 1).await.unwrap();
            spent += t.elapsed();
        }
    }
    let stored = total * n;
    let rate = stored as f64 / spent.as_secs_f64();
    println!(
        "{label}: ingested {stored} events ({n} schools) in batches of {BATCH} in {spent:.2?}: {rate:.0} events/s"
    );
    // The daily sums cut again in another zone, from every event.
    let t = Instant::now();
    let utc = schoolgate_console::zone::Zone::utc();
    assert!(db.roll_up_in(&utc).await.unwrap());
    println!(
        "{label}: daily sums rebuilt from {stored} events in {:.2?}",
        t.elapsed()
    );
    assert!(db.roll_up_in(&config.time_zone).await.unwrap());
    // A month of ingest went by in minutes: let the database catch up on what its
    // background work (PostgreSQL's autovacuum) would have done over the month, so the pages
    // are timed against settled tables rather than against that work.
    if db.backend == schoolgate_console::db::Backend::Postgres {
        use sqlx::Executor;
        db.pool.execute("VACUUM ANALYZE").await.unwrap();
    }

    let now = jiff::Timestamp::now().as_millisecond();
    let mut tokens = Vec::new();
    for (user, school) in [("trust", None), ("one", Some("s1"))] {
        db.put_user(user, Role::Dsl, CHEAP_HASH, 1).await.unwrap();
        db.set_user_school(user, school).await.unwrap();
        let id = db.user_by_name(user).await.unwrap().unwrap().id;
        let token = random_token().unwrap();
        db.add_session(&token_hash(&token), id, "csrf", now, now + 3_600_000)
            .await
            .unwrap();
        tokens.push((user, token));
    }
    let app = Arc::new(App::new(db, config, false));
    for (user, token) in &tokens {
        for path in [
            "/alerts",
            "/alerts?technique=tor",
            "/alerts?device=10.10.1.2",
            "/alerts?page=50",
            "/dashboard",
            "/dashboard?days=30",
            "/blocked",
            "/blocked?group=pupils",
        ] {
            let mut times = Vec::new();
            for _ in 0..LOADS {
                let req = Request::get(path)
                    .header(
                        header::COOKIE,
                        format!("{}={token}", app.cookie_name(SESSION_COOKIE)),
                    )
                    .body(Body::empty())
                    .unwrap();
                let t = Instant::now();
                let res = router(Arc::clone(&app)).oneshot(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                axum::body::to_bytes(res.into_body(), 1 << 26)
                    .await
                    .unwrap();
                times.push(t.elapsed());
            }
            let worst = times.iter().max().copied().unwrap_or_default();
            println!(
                "{label}: {user}'s lead: GET {path} with {stored} events stored: median {:.1?}, slowest of {LOADS} {worst:.1?}",
                median(times)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            Db::open(&sqlite_url(dir.path()).unwrap()).await.unwrap(),
        )
        .await;
    }
    if let Ok(base) = std::env::var("SCHOOLGATE_BENCH_POSTGRES") {
        use sqlx::Executor;
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&base).await.unwrap();
        let name = format!("sg_bench_{}", uuid::Uuid::now_v7().simple());
        // The name is made here from a UUID's hex digits.
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        run(
            "postgres",
            Db::open(&format!("{prefix}/{name}")).await.unwrap(),
        )
        .await;
        // `SCHOOLGATE_BENCH_KEEP` keeps the database, to look at its plans afterwards.
        if std::env::var_os("SCHOOLGATE_BENCH_KEEP").is_some() {
            println!("postgres: kept database {name}");
        } else {
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE {name} WITH (FORCE)"
                )))
                .await
                .unwrap();
        }
    }
}

//! The console's speed with a school's worth of history: events/s ingested in the agents'
//! batches (1,000 events each, as the shipper sends them), and the time to answer the
//! alerts page, through the router with a signed-in session, with 1,000,000 events stored.
//! SQLite always; PostgreSQL too when `SCHOOLGATE_BENCH_POSTGRES` names a server (a fresh
//! database is made there). `cargo bench -p schoolgate-console --bench console`.
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

/// Events stored (`SCHOOLGATE_BENCH_EVENTS` sets another number for a quick look).
fn events() -> usize {
    std::env::var("SCHOOLGATE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}
const BATCH: usize = 1_000;
/// One event in this many is a bypass attempt (an alert).
const ALERT_EVERY: usize = 50;
/// Page loads measured per case.
const LOADS: usize = 30;

/// Event `i`: 500 devices, 30 days, mostly blocks with a bypass attempt now and then; on
/// four devices in five someone is signed in (3,000 people over the month).
fn event(i: usize, start_ms: i64) -> Received {
    let t = start_ms + (i as i64) * 2_592; // 1M events over 30 days.
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

async fn run(label: &str, db: Db) {
    let total = events();
    let start_ms = jiff::Timestamp::now().as_millisecond() - 30 * 86_400_000;
    // Ingest, timing only the database's part (events are made beforehand, per batch).
    let mut spent = Duration::ZERO;
    for b in 0..total / BATCH {
        let batch: Vec<Received> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| event(i, start_ms))
            .collect();
        let t = Instant::now();
        db.ingest("gw1", &batch, 1).await.unwrap();
        spent += t.elapsed();
    }
    let rate = total as f64 / spent.as_secs_f64();
    println!(
        "{label}: ingested {total} events in batches of {BATCH} in {spent:.2?}: {rate:.0} events/s"
    );

    db.put_user(
        "dsl",
        Role::Dsl,
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
        1,
    )
    .await
    .unwrap();
    let user = db.user_by_name("dsl").await.unwrap().unwrap();
    let token = random_token().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    db.add_session(&token_hash(&token), user.id, "csrf", now, now + 3_600_000)
        .await
        .unwrap();
    let app = Arc::new(App::new(db, Config::default(), false));
    for path in [
        "/alerts",
        "/alerts?technique=tor",
        "/alerts?device=10.10.1.2",
        "/alerts?page=50",
        "/dashboard",
        "/blocked",
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
            "{label}: GET {path} with {total} events stored: median {:.1?}, slowest of {LOADS} {worst:.1?}",
            median(times)
        );
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    run(
        "sqlite",
        Db::open(&sqlite_url(dir.path()).unwrap()).await.unwrap(),
    )
    .await;
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
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
    }
}

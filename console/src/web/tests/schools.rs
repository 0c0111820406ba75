//! A trust of schools on one console: a school's staff reach nothing of another school's,
//! by any URL, form, download or the live stream; the trust's own staff see every school.

use axum::http::StatusCode;

use super::{Console, REQUESTS_POLICY};
use crate::auth::{Role, token_hash};
use crate::config::Config;
use crate::db::testing;

/// What only school Oak's records hold: none may appear on a page Elm's staff open.
const OAK_ONLY: [&str; 7] = [
    "Amira",
    "OAK-DEVICE-03",
    "oak-secret.example",
    "OAK-NOTE",
    "OAK-REASON",
    "oak-explain.example",
    "dsl-oak",
];

fn oak_alert(kind: &str) -> schoolgate_contract::wire::Received {
    schoolgate_contract::wire::parse_event(serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(), "time": jiff::Timestamp::now().to_string(),
        "kind": kind, "device": {"ip": "10.10.3.7", "name": "OAK-DEVICE-03"},
        "person": {"username": "amira.k", "display_name": "Amira Khan", "class": "6B",
                   "group": "pupils"},
        "group": "pupils", "name": "oak-secret.example", "technique": "openvpn",
        "category": "social_networking", "severity": "high",
    }))
    .unwrap()
}

/// An Elm pupil's attempt, on Elm's device.
fn elm_alert() -> schoolgate_contract::wire::Received {
    schoolgate_contract::wire::parse_event(serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(), "time": jiff::Timestamp::now().to_string(),
        "kind": "bypass_attempt", "device": {"ip": "10.20.0.9", "name": "ELM-DEVICE-09"},
        "group": "pupils", "name": "elm-own.example", "technique": "tor", "severity": "high",
    }))
    .unwrap()
}

fn two_schools() -> Config {
    Config::parse(
        "schools:\n  - { id: oak, name: Oak Primary }\n  - { id: elm, name: Elm Academy }\n",
    )
    .unwrap()
}

#[tokio::test]
async fn a_schools_staff_reach_nothing_of_another_school_by_any_url() {
    for (db, _dir) in testing::each().await {
        let c = Console::with(db, two_schools(), true).await;
        let db = &c.app.db;
        for (agent, school) in [("gw-oak", "oak"), ("gw-elm", "elm")] {
            db.add_agent(agent, &token_hash(agent), 1).await.unwrap();
            db.set_agent_school(agent, Some(school)).await.unwrap();
        }
        let hash = db.user_by_name("dsl").await.unwrap().unwrap().password_hash;
        for (name, role, school) in [
            ("dsl-oak", Role::Dsl, "oak"),
            ("dsl-elm", Role::Dsl, "elm"),
            ("it-elm", Role::It, "elm"),
            ("admin-elm", Role::Admin, "elm"),
            ("head-elm", Role::Approver, "elm"),
            ("mr-oak", Role::Teacher, "oak"),
            ("dsl-both", Role::Dsl, "oak,elm"),
        ] {
            db.put_user(name, role, &hash, 1).await.unwrap();
            db.set_user_school(name, Some(school)).await.unwrap();
        }
        // Oak's records: an attempt and the quarantine it caused, a block, a note, a
        // teacher's request, a question to the gateway and its policy.
        let attempt = oak_alert("bypass_attempt");
        let quarantine = oak_alert("quarantined");
        let blocked = oak_alert("blocked");
        let now = crate::web::now_ms();
        db.ingest(
            "gw-oak",
            &[attempt.clone(), quarantine.clone(), blocked.clone()],
            now,
        )
        .await
        .unwrap();
        let elm = elm_alert();
        db.ingest("gw-elm", std::slice::from_ref(&elm), now)
            .await
            .unwrap();
        let id = attempt.id.to_string();
        let quarantined = quarantine.id.to_string();
        let dsl_oak = c.signed_in("dsl-oak").await;
        let noted = dsl_oak
            .post(&format!("/alerts/{id}/notes"), &[("body", "OAK-NOTE")])
            .await;
        assert_eq!(noted.status, StatusCode::SEE_OTHER, "{}", noted.body);
        assert!(
            dsl_oak
                .get(&format!("/alerts/{id}"))
                .await
                .body
                .contains("OAK-NOTE")
        );
        db.put_policy("gw-oak", "00aa", REQUESTS_POLICY, 1)
            .await
            .unwrap();
        db.put_policy("gw-elm", "00bb", REQUESTS_POLICY, 1)
            .await
            .unwrap();
        let policy = db.policy_of("gw-oak").await.unwrap().unwrap().id;
        let allow = ["youtube".to_owned()];
        let request = db
            .add_request(
                &crate::db::requests::NewRequest {
                    agent: "gw-oak",
                    requested_by: "mr-oak",
                    allow: &allow,
                    groups: &[],
                    classes: &["6B".to_owned()],
                    people: &[],
                    from_ms: now,
                    to_ms: now + 3_600_000,
                    weeks: 1,
                    until_ms: now + 3_600_000,
                    reason: "OAK-REASON",
                },
                now,
            )
            .await
            .unwrap();
        let question = db
            .ask_explanation(
                &crate::db::explanations::Ask {
                    agent: "gw-oak",
                    asked_by: "dsl-oak",
                    client: "10.10.3.7",
                    mac: None,
                    person: None,
                    name: "oak-explain.example",
                    at_ms: now,
                },
                now,
            )
            .await
            .unwrap();

        // The trust's own lead sees both schools; Oak's lead sees Oak's.
        let trust = c.signed_in("dsl").await.get("/alerts").await.body;
        assert!(trust.contains("OAK-DEVICE-03") && trust.contains("ELM-DEVICE-09"));
        // The trust's lead is told each incident's school; a school's lead needs no telling.
        assert!(
            trust.contains("<th class=\"school\">School</th>"),
            "{trust}"
        );
        assert!(trust.contains("<td>Oak Primary</td>") && trust.contains("<td>Elm Academy</td>"));
        let both = c.signed_in("dsl-both").await.get("/alerts").await.body;
        assert!(both.contains("OAK-DEVICE-03") && both.contains("ELM-DEVICE-09"));
        assert!(
            both.contains("dsl-both (dsl, Oak Primary, Elm Academy)"),
            "{both}"
        );
        let oak = dsl_oak.get("/alerts").await.body;
        assert!(oak.contains("OAK-DEVICE-03") && !oak.contains("ELM-DEVICE-09"));

        let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
        let routes = super::get_routes();
        assert!(routes.len() >= 20, "{routes:?}");
        for who in ["dsl-elm", "it-elm", "admin-elm", "head-elm"] {
            let b = c.signed_in(who).await;
            // Elm's lead does see Elm's own: the absences below mean something.
            if who == "dsl-elm" {
                assert!(b.get("/alerts").await.body.contains("ELM-DEVICE-09"));
            }
            let mut walked = 0;
            for route in &routes {
                if *route == "/alerts/live" {
                    continue;
                }
                let path = match *route {
                    "/explain/{id}" => format!("/explain/{question}"),
                    "/policy/changes/{id}" => format!("/policy/changes/{policy}"),
                    r => r
                        .replace("{id}", &id)
                        .replace("{key}", "10.10.3.7")
                        .replace("{username}", "amira.k"),
                };
                // Each page as it is linked, and with Oak's things asked for by name.
                let mut paths = vec![path.clone()];
                match *route {
                    "/alerts" | "/alerts.csv" => {
                        paths.push(format!("{path}?person=amira.k&status=new"));
                        paths.push(format!("{path}?device=10.10.3.7"));
                    }
                    "/people" => paths.push(format!("{path}?q=amira")),
                    "/devices/{key}" | "/devices/{key}/history.csv" => {
                        paths.push(format!("{path}?agent=gw-oak"));
                    }
                    "/policy" | "/requests" => paths.push(format!("{path}?agent=gw-oak")),
                    "/reports/weekly" | "/reports/weekly.csv" => {
                        paths.push(format!("{path}?week={today}"));
                    }
                    "/blocked" | "/blocked.csv" => {
                        paths.push(format!("{path}?by=name"));
                        paths.push(format!("{path}?by=group&group=pupils"));
                    }
                    _ => {}
                }
                for path in paths {
                    let page = b.get(&path).await;
                    for hidden in OAK_ONLY {
                        assert!(
                            !page.body.contains(hidden),
                            "{who} sees {hidden:?} on {path} ({})",
                            page.status
                        );
                    }
                    // Nor named in where a page sends the browser (a search's one match).
                    assert!(
                        !page.location().contains("amira"),
                        "{who} is sent to {} from {path}",
                        page.location()
                    );
                    // Nor is it served under another name: an Oak record's page is
                    // not found, never a redirect to something that shows it.
                    if path.contains(&id) || path.contains(&format!("/explain/{question}")) {
                        assert!(
                            page.status == StatusCode::NOT_FOUND
                                || page.status == StatusCode::FORBIDDEN,
                            "{who}: {path} answered {}",
                            page.status
                        );
                    }
                    walked += 1;
                }
            }
            assert!(walked >= 25, "{who}: {walked}");
        }
        // An Oak event's own page, where `/alerts/{id}` sends what is no incident of theirs.
        let dsl_elm = c.signed_in("dsl-elm").await;
        let own = dsl_elm.get("/alerts").await.body;
        assert!(own.contains("dsl-elm (dsl, Elm Academy)"), "{own}");
        assert!(!own.contains("<th class=\"school\">"), "{own}");
        for path in [format!("/events/{id}"), format!("/policy/changes/{policy}")] {
            assert_eq!(
                dsl_elm.get(&path).await.status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }

        // Nor can they act on it.
        for (path, fields) in [
            (
                format!("/alerts/{id}/notes"),
                vec![("body", "ELM-WAS-HERE")],
            ),
            (
                format!("/alerts/{id}/triage"),
                vec![("status", "resolved"), ("outcome", "no further action")],
            ),
            (format!("/alerts/{id}/release"), vec![("reason", "ELM")]),
            (
                "/devices/release".to_owned(),
                vec![("event", quarantined.as_str()), ("reason", "ELM")],
            ),
            (
                "/people/amira.k/release".to_owned(),
                vec![("reason", "ELM")],
            ),
        ] {
            let done = dsl_elm.post(&path, &fields).await;
            assert_eq!(done.status, StatusCode::NOT_FOUND, "{path}: {}", done.body);
        }
        // Only Oak's own question waits for Oak's gateway: no release from Elm.
        let waiting = db.pending_commands("gw-oak").await.unwrap();
        assert!(waiting.iter().all(|c| c.kind == "explain"), "{waiting:?}");
        let head = c.signed_in("head-elm").await;
        let approve = head
            .post(&format!("/requests/{request}/approve"), &[("note", "")])
            .await;
        assert_eq!(approve.status, StatusCode::NOT_FOUND);
        let asked = c
            .signed_in("it-elm")
            .await
            .post(
                "/explain",
                &[
                    ("agent", "gw-oak"),
                    ("client", "10.10.3.7"),
                    ("name", "oak-explain.example"),
                ],
            )
            .await;
        assert_eq!(asked.status, StatusCode::BAD_REQUEST);
        let admin = c.signed_in("admin-elm").await;
        for (path, fields) in [
            (
                "/accounts/users",
                vec![("action", "logout"), ("name", "dsl-oak")],
            ),
            (
                "/accounts/users",
                vec![("action", "disable"), ("name", "dsl")],
            ),
            ("/accounts/agents/rotate", vec![("name", "gw-oak")]),
            // A lead of Oak and Elm is not Elm's admin's alone to manage.
            (
                "/accounts/users",
                vec![("action", "logout"), ("name", "dsl-both")],
            ),
        ] {
            let done = admin.post(path, &fields).await;
            assert_eq!(done.status, StatusCode::BAD_REQUEST, "{path} {fields:?}");
        }
        // The trust's admin sees every account with its schools by name; Elm's admin, Elm's.
        let all = c.signed_in("root").await.get("/accounts").await.body;
        assert!(all.contains("<td>Oak Primary, Elm Academy</td>"), "{all}");
        let elm_only = admin.get("/accounts").await.body;
        assert!(
            elm_only.contains("dsl-elm") && !elm_only.contains("dsl-both"),
            "{elm_only}"
        );
        // What Elm's admin adds is Elm's: Oak is not theirs to add to.
        let add = |school: &'static str| {
            [
                ("action", "add"),
                ("name", "new-elm"),
                ("role", "dsl"),
                ("password", "a long enough passphrase for elm"),
                ("school", school),
            ]
        };
        let refused = admin.post("/accounts/users", &add("oak")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert!(db.user_by_name("new-elm").await.unwrap().is_none());
        let added = admin.post("/accounts/users", &add("")).await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
        let new = db.user_by_name("new-elm").await.unwrap().unwrap();
        assert_eq!(new.school.as_deref(), Some("elm"));
        // Oak's record is as Oak left it.
        let i = db
            .incident(&crate::db::Scope::Trust, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(i.status, "new");
        let notes = db.notes(&id).await.unwrap();
        assert_eq!(notes.len(), 1);
    }
}

/// The live stream sends a page only its school's incidents.
#[tokio::test]
async fn the_live_stream_carries_only_the_readers_school() {
    use futures_util::StreamExt;
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::with(db, two_schools(), true).await;
    let hash = c
        .app
        .db
        .user_by_name("dsl")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    c.app
        .db
        .put_user("dsl-elm", Role::Dsl, &hash, 1)
        .await
        .unwrap();
    c.app
        .db
        .set_user_school("dsl-elm", Some("elm"))
        .await
        .unwrap();
    let dsl = c.signed_in("dsl-elm").await;
    let mut stream = dsl.live().await;
    let oak = crate::db::incidents::Incident::open("gw-oak", &oak_alert("bypass_attempt"));
    let elm = crate::db::incidents::Incident::open("gw-elm", &elm_alert());
    let schools = [
        (
            "gw-oak".to_owned(),
            ("oak".to_owned(), "Oak Primary".to_owned()),
        ),
        (
            "gw-elm".to_owned(),
            ("elm".to_owned(), "Elm Academy".to_owned()),
        ),
    ]
    .into_iter()
    .collect();
    let zone = crate::zone::Zone::default();
    super::super::live::announce(&c.app.live, std::slice::from_ref(&oak), &zone, &schools);
    super::super::live::announce(&c.app.live, &[oak, elm], &zone, &schools);
    let mut got = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !got.contains("ELM-DEVICE-09") {
            let chunk = stream.next().await.unwrap().unwrap();
            got.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("Elm's incident reaches Elm's page");
    assert!(
        !got.contains("OAK-DEVICE-03") && !got.contains("Amira") && !got.contains("Oak"),
        "{got}"
    );
    assert!(got.contains("\"school\":\"Elm Academy\""), "{got}");
    assert_eq!(got.matches("event: alerts").count(), 1, "{got}");
}

//! The console's pages and forms driven through the router as a browser would (cookies,
//! CSRF tokens, redirects), on each database backend: roles enforced on the server, every
//! view and action audited, hostile names shown as text.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{App, CSP, SESSION_COOKIE, Shared, router};
use crate::auth::{Role, token_hash};
use crate::config::Config;
use crate::db::Db;
use crate::db::testing;
use schoolgate_contract::text::MAX_COUNT;
use schoolgate_contract::wire::{Received, parse_event};
use schoolgate_contract::{Severity, Technique};

/// A page's answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One signed-in browser (or none).
pub(crate) struct Browser {
    app: Shared,
    pub(crate) cookie: Option<String>,
    pub csrf: String,
    /// The address requests come from, as the server would see it.
    pub(crate) peer: Option<std::net::SocketAddr>,
}

impl Browser {
    pub(crate) async fn get(&self, path: &str) -> Reply {
        let mut req = Request::get(path);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// The live stream this browser opens, once it answers 200 with an event stream.
    pub(crate) async fn live(&self) -> axum::body::BodyDataStream {
        let req = Request::get("/alerts/live")
            .header(header::COOKIE, self.cookie.clone().unwrap())
            .body(Body::empty())
            .unwrap();
        let res = router(Arc::clone(&self.app)).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        res.into_body().into_data_stream()
    }

    /// Posts `fields` (the session's CSRF token is added unless a field names its own).
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf", &self.csrf));
        }
        let body = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    super::alert::urlencode(k),
                    super::alert::urlencode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn send(&self, mut req: Request<Body>) -> Reply {
        if let Some(addr) = self.peer {
            req.extensions_mut().insert(super::Peer(addr));
        }
        let res = router(Arc::clone(&self.app)).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }
}

/// A console on `db` with a `dsl` and an `it` user.
pub(crate) struct Console {
    pub app: Shared,
}

impl Console {
    pub(crate) async fn new(db: Db) -> Self {
        Self::with(db, Config::default(), true).await
    }

    /// A console with `config`, served over TLS or not.
    pub(crate) async fn with(db: Db, config: Config, tls: bool) -> Self {
        // A cheap argon2id hash: verification reads the cost from the hash itself.
        let cheap = {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let params = argon2::Params::new(8, 1, 1, None).unwrap();
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(
                    b"correct horse battery",
                    &SaltString::encode_b64(b"saltsaltsalt").unwrap(),
                )
                .unwrap()
                .to_string()
        };
        db.put_user("dsl", Role::Dsl, &cheap, 1).await.unwrap();
        db.put_user("it", Role::It, &cheap, 1).await.unwrap();
        db.put_user("mr.osei", Role::Teacher, &cheap, 1)
            .await
            .unwrap();
        db.put_user("ms.ade", Role::Teacher, &cheap, 1)
            .await
            .unwrap();
        db.put_user("head", Role::Approver, &cheap, 1)
            .await
            .unwrap();
        db.put_user("root", Role::Admin, &cheap, 1).await.unwrap();
        // As `serve` does: the daily sums cut in the console's zone.
        db.roll_up_in(&config.time_zone).await.unwrap();
        Self {
            app: Arc::new(App::new(db, config, tls)),
        }
    }

    pub(crate) fn anonymous(&self) -> Browser {
        Browser {
            app: Arc::clone(&self.app),
            cookie: None,
            csrf: String::new(),
            peer: None,
        }
    }

    /// A browser signed in as `name`, through a session made directly.
    pub(crate) async fn signed_in(&self, name: &str) -> Browser {
        let user = self.app.db.user_by_name(name).await.unwrap().unwrap();
        let token = crate::auth::random_token().unwrap();
        let csrf = crate::auth::random_token().unwrap();
        let now = super::now_ms();
        self.app
            .db
            .add_session(&token_hash(&token), user.id, &csrf, now, now + 3_600_000)
            .await
            .unwrap();
        Browser {
            app: Arc::clone(&self.app),
            cookie: Some(format!("{}={token}", self.app.cookie_name(SESSION_COOKIE))),
            csrf,
            peer: None,
        }
    }

    /// Adds the agent `gw1` with a fresh token, and gives the token.
    pub(crate) async fn gateway(&self) -> String {
        let token = crate::auth::random_token().unwrap();
        self.app
            .db
            .add_agent("gw1", &token_hash(&token), 1)
            .await
            .unwrap();
        token
    }

    /// The agent with `token` sends `text` as the policy it has in force.
    pub(crate) async fn sends_policy(&self, token: &str, text: &str) {
        let policy = serde_json::json!({"fingerprint": "00aa", "text": text});
        let (sent, _) = self
            .api(token, "POST", "/api/v1/policy", &policy.to_string())
            .await;
        assert_eq!(sent, StatusCode::NO_CONTENT);
    }

    /// `method path` on the agents' API as the agent with `token`, with `body` (JSON): the
    /// status and the answer's body.
    pub(crate) async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let res = router(Arc::clone(&self.app)).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub(crate) async fn audit_actions(&self) -> Vec<(String, String)> {
        let mut log = self
            .app
            .db
            .audit_log(&crate::db::Scope::Trust, 1000, 0)
            .await
            .unwrap();
        log.reverse();
        log.into_iter().map(|e| (e.who, e.action)).collect()
    }
}

/// Every route the router answers with GET, as `mod.rs` writes them.
pub(crate) fn get_routes() -> Vec<&'static str> {
    include_str!("mod.rs")
        .split(".route(\"")
        .skip(1)
        .filter_map(|r| {
            let (path, rest) = r.split_once('"')?;
            let handler = rest.split(".route(").next()?;
            handler.contains("get(").then_some(path)
        })
        .collect()
}

pub(crate) fn alert(kind: &str, name: &str, ip: &str) -> Received {
    parse_event(serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(), "time": jiff::Timestamp::now().to_string(),
        "kind": kind, "device": {"ip": ip, "name": "Y6-iPad-12", "owner": "6B"},
        "group": "pupils", "name": name, "technique": "openvpn",
        "evidence": "OpenVPN handshake to 192.0.2.9:1194", "severity": "high",
    }))
    .unwrap()
}

#[tokio::test]
async fn pages_need_a_session_and_carry_the_strict_headers() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let anon = c.anonymous();
        for path in [
            "/alerts",
            "/alerts/x",
            "/devices",
            "/devices/10.0.0.1",
            "/audit",
        ] {
            let a = anon.get(path).await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(a.location(), "/login", "{path}");
        }
        let a = anon.post("/alerts/x/notes", &[("body", "x")]).await;
        assert_eq!(a.location(), "/login");
        let a = c.signed_in("dsl").await.get("/alerts").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
    }
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_is_audited() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let wrong = c.login("dsl", "wrong", "").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let forged = c
            .login_form("dsl", "correct horse battery", "", Some("0"))
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let ok = c.login("dsl", "correct horse battery", "").await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        assert_eq!(ok.location(), "/alerts");
        let session = ok
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with(&c.app.cookie_name(SESSION_COOKIE)))
            .unwrap()
            .to_owned();
        for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(session.contains(flag), "{session}");
        }
        let signed = Browser {
            cookie: Some(session.split(';').next().unwrap().to_owned()),
            ..c.anonymous()
        };
        assert_eq!(signed.get("/alerts").await.status, StatusCode::OK);
        assert_eq!(
            c.audit_actions().await,
            [
                ("dsl".to_owned(), "login_failed".to_owned()),
                ("dsl".to_owned(), "login_form_refused".to_owned()),
                ("dsl".to_owned(), "login".to_owned())
            ]
        );
    }
}

#[tokio::test]
async fn the_dsl_triages_notes_and_releases_and_it_sees_no_case_detail() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let e = alert("quarantined", "vpn.example", "10.10.3.7");
        c.app
            .db
            .ingest("gw1", std::slice::from_ref(&e), 1)
            .await
            .unwrap();
        let id = e.id.to_string();
        let path = format!("/alerts/{id}");
        let dsl = c.signed_in("dsl").await;

        let page = dsl.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("Y6-iPad-12 (10.10.3.7) was put in quarantine"),
            "{}",
            page.body
        );
        assert!(page.body.contains("In quarantine"));
        assert!(page.body.contains("Release from quarantine"));

        // A form without this session's token is refused and changes nothing.
        let forged = dsl
            .post(
                &format!("{path}/triage"),
                &[("status", "acknowledged"), ("csrf", "0")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let ack = dsl
            .post(&format!("{path}/triage"), &[("status", "acknowledged")])
            .await;
        assert_eq!(ack.status, StatusCode::SEE_OTHER);
        assert_eq!(ack.location(), format!("{path}?done=triage"));
        let unresolved = dsl
            .post(&format!("{path}/triage"), &[("status", "resolved")])
            .await;
        assert_eq!(
            unresolved.status,
            StatusCode::BAD_REQUEST,
            "needs an outcome"
        );
        let note = dsl
            .post(
                &format!("{path}/notes"),
                &[("body", "Spoke to <b>6B</b>'s teacher.")],
            )
            .await;
        assert_eq!(note.status, StatusCode::SEE_OTHER);
        let release = dsl
            .post(
                &format!("{path}/release"),
                &[("reason", "spoken to; supervised use")],
            )
            .await;
        assert_eq!(release.status, StatusCode::SEE_OTHER);
        let pending = c.app.db.pending_commands("gw1").await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (
                pending[0].device.as_str(),
                pending[0].by.as_str(),
                pending[0].reason.as_str()
            ),
            ("10.10.3.7", "dsl", "spoken to; supervised use")
        );

        let page = dsl.get(&path).await;
        assert!(
            page.body
                .contains("Spoke to &#60;b&#62;6B&#60;/b&#62;&#39;s teacher.")
                || page
                    .body
                    .contains("Spoke to &lt;b&gt;6B&lt;/b&gt;&#x27;s teacher."),
            "{}",
            page.body
        );
        assert!(page.body.contains("dsl: status acknowledged"));
        assert!(
            page.body
                .contains("release from quarantine asked for: spoken to; supervised use")
        );
        assert!(page.body.contains("A release has been sent"));

        // IT: the technical detail, but no notes, outcomes or case history, and no actions.
        let it = c.signed_in("it").await;
        let seen = it.get(&path).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(seen.body.contains("OpenVPN handshake to 192.0.2.9:1194"));
        for hidden in [
            "6B</b>",
            "&lt;b&gt;",
            "&#60;b&#62;",
            "Case notes",
            "supervised use",
            "dsl: status acknowledged",
        ] {
            assert!(!seen.body.contains(hidden), "IT sees {hidden:?}");
        }
        for (action, fields) in [
            ("notes", [("body", "x")]),
            ("triage", [("status", "resolved")]),
            ("release", [("reason", "x")]),
        ] {
            let a = it.post(&format!("{path}/{action}"), &fields).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{action}");
        }
        assert_eq!(c.app.db.notes(&id).await.unwrap().len(), 1);

        let actions = c.audit_actions().await;
        // The forged triage and IT's three refused actions are audited too.
        let expected = [
            ("dsl", "view_alert"),
            ("dsl", "refused"),
            ("dsl", "triage"),
            ("dsl", "add_note"),
            ("dsl", "release"),
            ("dsl", "view_alert"),
            ("it", "view_alert"),
            ("it", "refused"),
            ("it", "refused"),
            ("it", "refused"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(w, a)| (w.to_string(), a.to_string()))
            .collect();
        assert_eq!(actions, expected);
    }
}

#[tokio::test]
async fn devices_in_quarantine_are_listed_released_and_their_history_audited() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let q = alert("quarantined", "vpn.example", "10.10.3.9");
        let blocked = {
            let mut b = alert("blocked", "instagram.com", "10.10.3.9");
            b.severity = Severity::Low;
            b
        };
        c.app
            .db
            .ingest("gw1", &[q.clone(), blocked], 1)
            .await
            .unwrap();
        let dsl = c.signed_in("dsl").await;
        let list = dsl.get("/devices").await;
        assert!(
            list.body.contains("Y6-iPad-12 (10.10.3.9)"),
            "{}",
            list.body
        );
        let lookup = dsl.get("/devices?device=10.10.3.9").await;
        assert_eq!(lookup.location(), "/devices/10.10.3.9");
        let history = dsl.get("/devices/10.10.3.9").await;
        assert!(history.body.contains("instagram.com"));
        assert!(history.body.contains("vpn.example"));
        let released = dsl
            .post(
                "/devices/release",
                &[("event", &q.id.to_string()), ("reason", "parents met")],
            )
            .await;
        assert_eq!(released.location(), "/devices?done=release");
        assert!(dsl.get("/devices").await.body.contains("release sent"));
        let it = c.signed_in("it").await;
        let refused = it
            .post(
                "/devices/release",
                &[("event", &q.id.to_string()), ("reason", "x")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.app.db.pending_commands("gw1").await.unwrap().len(), 1);
        let audit = it.get("/audit").await;
        assert!(audit.body.contains("view_device"));
        assert!(audit.body.contains("release"));
        assert!(
            c.audit_actions()
                .await
                .contains(&("dsl".to_owned(), "view_device".to_owned()))
        );
    }
}

#[tokio::test]
async fn names_from_devices_render_as_text() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let mut e = alert(
            "bypass_attempt",
            "<script>alert(1)</script>.example",
            "10.10.3.7",
        );
        // The list shows the device's name, the incident page and history the site's.
        e.event.device.name = Some("<script>alert(1)</script>-iPad".into());
        c.app
            .db
            .ingest("gw1", std::slice::from_ref(&e), 1)
            .await
            .unwrap();
        let dsl = c.signed_in("dsl").await;
        for path in [
            "/alerts".to_owned(),
            format!("/alerts/{}", e.id),
            format!("/events/{}", e.id),
            "/devices/10.10.3.7".to_owned(),
        ] {
            let page = dsl.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(!page.body.contains("<script>"), "{path}: {}", page.body);
            assert!(page.body.contains("alert(1)"), "{path}: the name is shown");
        }
    }
}

#[tokio::test]
async fn alerts_name_the_person_first_and_the_device_second() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let mut v =
            serde_json::to_value(&alert("bypass_attempt", "vpn.example", "10.10.4.21").event)
                .unwrap();
        v["person"] = serde_json::json!({
            "username": "amira.k", "display_name": "Amira <i>Khan</i>", "group": "pupils", "class": "6B"
        });
        let e = parse_event(v).unwrap();
        c.app
            .db
            .ingest("gw1", std::slice::from_ref(&e), 1)
            .await
            .unwrap();
        let dsl = c.signed_in("dsl").await;
        let list = dsl.get("/alerts").await;
        assert!(
            list.body.contains(&format!(
                "<a href=\"/alerts/{}\">Amira K. (6B) used a VPN (OpenVPN) on Y6-iPad-12</a>",
                e.id
            )),
            "{}",
            list.body
        );
        let page = dsl.get(&format!("/alerts/{}", e.id)).await;
        assert!(
            page.body.contains(
                "Amira &#60;i&#62;Khan&#60;/i&#62; (6B) on Y6-iPad-12 (10.10.4.21) tried"
            ),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains("<code>amira.k</code></a> · class 6B · pupils")
        );
        // The person's page: found by name, every device, each view audited.
        let mut other =
            serde_json::to_value(&alert("blocked", "youtube.com", "10.10.4.22").event).unwrap();
        other["person"] = serde_json::json!({"username": "amira.k", "display_name": "Amira <i>Khan</i>", "class": "6B"});
        c.app
            .db
            .ingest("gw1", &[parse_event(other).unwrap()], 1)
            .await
            .unwrap();
        let found = dsl.get("/people?q=khan").await;
        assert_eq!(found.location(), "/people/amira.k");
        let person = dsl.get("/people/amira.k").await;
        assert_eq!(person.status, StatusCode::OK);
        assert!(
            person
                .body
                .contains("<h1>Amira &#60;i&#62;Khan&#60;/i&#62;</h1>"),
            "{}",
            person.body
        );
        assert!(person.body.contains("10.10.4.21") && person.body.contains("10.10.4.22"));
        assert!(person.body.contains("vpn.example") && person.body.contains("youtube.com"));
        let actions = c.audit_actions().await;
        assert!(actions.contains(&("dsl".to_owned(), "search_people".to_owned())));
        assert!(actions.contains(&("dsl".to_owned(), "view_person".to_owned())));
        assert_eq!(
            c.anonymous().get("/people/amira.k").await.location(),
            "/login"
        );
        let csv = dsl.get("/alerts.csv").await;
        assert!(
            csv.body
                .contains("\"amira.k\",\"Amira <i>Khan</i>\",\"6B\",\"Y6-iPad-12\""),
            "{}",
            csv.body
        );

        // The DSL eases her ban into supervised use, at the gateway that saw her.
        assert!(person.body.contains("Ban from school ICT"));
        let bad = dsl
            .post(
                "/people/amira.k/release",
                &[("reason", "lesson"), ("supervised", "0")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let sent = dsl
            .post(
                "/people/amira.k/release",
                &[
                    ("reason", "ICT lesson with Mr Osei"),
                    ("supervised", "50"),
                    ("then", "resume"),
                ],
            )
            .await;
        assert_eq!(sent.location(), "/people/amira.k?done=release");
        let pending = c.app.db.pending_commands("gw1").await.unwrap();
        assert_eq!(pending.len(), 1);
        let command = &pending[0];
        assert_eq!(command.person.as_deref(), Some("amira.k"));
        assert_eq!(command.supervised_minutes, Some(50));
        assert_eq!(command.then.as_deref(), Some("resume"));
        assert_eq!(command.device, "");
        assert_eq!(command.by, "dsl");
        assert!(
            c.audit_actions()
                .await
                .contains(&("dsl".to_owned(), "supervise_person".to_owned()))
        );
        // IT staff see no such form, and cannot send one.
        let it = c.signed_in("it").await;
        assert!(
            !it.get("/people/amira.k")
                .await
                .body
                .contains("Ban from school ICT")
        );
        let refused = it.post("/people/amira.k/release", &[("reason", "x")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.app.db.pending_commands("gw1").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn reports_sum_blocked_activity_and_name_no_pupil_to_governors() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        c.gateway().await;
        c.app
            .db
            .agent_seen(
                "gw1",
                Some(r#"{"backlog":12,"version":"0.1.0","policy":"00ab","policy_rejected":2}"#),
                super::now_ms(),
            )
            .await
            .unwrap();
        let mut batch = Vec::new();
        for (name, category) in [
            ("www.instagram.com", "social_networking"),
            ("=cmd|x", "games"),
        ] {
            let mut b = alert("blocked", name, "10.10.3.7");
            b.severity = Severity::Low;
            b.technique = None;
            b.category = Some(category.into());
            b.count = 4;
            batch.push(b);
        }
        let mut resolved = alert("bypass_attempt", "vpn.example", "10.10.3.8");
        resolved.technique = Some(Technique::Wireguard);
        batch.push(resolved.clone());
        c.app.db.ingest("gw1", &batch, 1).await.unwrap();
        let dsl = c.signed_in("dsl").await;
        dsl.post(
            &format!("/alerts/{}/triage", resolved.id),
            &[
                ("status", "resolved"),
                ("outcome", "spoken to the pupil"),
                ("action_taken", "=1+1"),
            ],
        )
        .await;

        let blocked = dsl.get("/blocked").await;
        assert_eq!(blocked.status, StatusCode::OK);
        assert!(blocked.body.contains("8 blocks"), "{}", blocked.body);
        assert!(blocked.body.contains("social_networking"));
        assert!(blocked.body.contains("<svg class=\"chart\""));

        let dash = dsl.get("/dashboard?days=30").await;
        assert_eq!(dash.status, StatusCode::OK);
        assert!(dash.body.contains("Last 30 days"));
        assert!(
            dash.body.contains(">a VPN (WireGuard)</text>"),
            "{}",
            dash.body
        );
        assert!(dash.body.contains("policy rejected 2"));
        assert!(dash.body.contains("<td>12</td>"), "backlog shown");
        assert!(dash.body.contains("Y6-iPad-12"), "top devices");

        let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
        let week = dsl.get(&format!("/reports/weekly?week={today}")).await;
        assert_eq!(week.status, StatusCode::OK);
        assert!(week.body.contains("a VPN (WireGuard)"));
        assert!(week.body.contains("spoken to the pupil"));
        for private in ["10.10.3", "Y6-iPad", "6B"] {
            assert!(
                !week.body.contains(private),
                "{private} in the weekly report"
            );
        }
        let csv = dsl.get(&format!("/reports/weekly.csv?week={today}")).await;
        assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert!(
            csv.body
                .contains("\"Blocks by category\",\"social_networking\",\"4\""),
            "{}",
            csv.body
        );
        assert!(
            csv.body
                .contains("\"Most blocked names\",\"'=cmd|x\",\"4\""),
            "{}",
            csv.body
        );

        let by_name = dsl.get("/blocked.csv?by=name").await;
        assert!(by_name.body.starts_with("\"name\",\"blocks\"\r\n"));
        assert_eq!(
            dsl.get("/blocked.csv?by=teacher").await.status,
            StatusCode::BAD_REQUEST
        );

        let alerts = dsl.get("/alerts.csv?technique=wireguard").await;
        assert_eq!(alerts.body.lines().count(), 2, "{}", alerts.body);
        assert!(alerts.body.contains("\"'=1+1\""), "action taken, defused");
        let it = c.signed_in("it").await;
        let alerts = it.get("/alerts.csv?technique=wireguard").await;
        assert!(!alerts.body.contains("spoken to the pupil") && !alerts.body.contains("=1+1"));
        assert!(alerts.body.contains("wireguard"));
        let history = it.get("/devices/10.10.3.7/history.csv").await;
        assert_eq!(history.body.lines().count(), 3);
        assert!(it.get("/audit.csv").await.body.contains("export_alerts"));

        let actions = c.audit_actions().await;
        for a in [
            "view_report",
            "export_report",
            "export_blocked",
            "export_alerts",
            "export_device",
        ] {
            assert!(actions.iter().any(|(_, x)| x == a), "{a} not audited");
        }
    }
}

#[tokio::test]
async fn new_alerts_stream_to_open_pages_once() {
    use futures_util::StreamExt;
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::new(db).await;
    let token = c.gateway().await;
    assert_eq!(
        c.anonymous().get("/alerts/live").await.status,
        StatusCode::UNAUTHORIZED
    );

    let dsl = c.signed_in("dsl").await;
    let mut stream = dsl.live().await;
    let mut rx = c.app.live.subscribe();

    let hostile = alert(
        "bypass_attempt",
        "<script>alert(1)</script>.example",
        "10.10.3.7",
    );
    let mut quiet = alert("blocked", "instagram.com", "10.10.3.7");
    quiet.severity = Severity::Low;
    let body = serde_json::json!({"agent": "gw1", "events": [
        {"id": hostile.id.to_string(), "time": "2026-11-24T10:02:03.123Z", "kind": "bypass_attempt",
         "device": {"ip": "10.10.3.7"}, "name": hostile.name, "technique": "openvpn", "severity": "high"},
        {"id": quiet.id.to_string(), "time": "2026-11-24T10:02:04.000Z", "kind": "blocked",
         "device": {"ip": "10.10.3.7"}, "name": "instagram.com", "severity": "low"},
    ]})
    .to_string();
    let post = || {
        Request::post("/api/v1/events")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let first = router(Arc::clone(&c.app)).oneshot(post()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let mut got = String::new();
    while !got.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("no event within 5 s")
            .unwrap()
            .unwrap();
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(got.starts_with("event: alerts\n"), "{got}");
    let data = got.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let alerts: Vec<serde_json::Value> = serde_json::from_str(data).unwrap();
    assert_eq!(alerts.len(), 1, "only the incident, not the blocked event");
    assert_eq!(alerts[0]["id"], hostile.id.to_string());
    assert_eq!(alerts[0]["title"], "10.10.3.7 used a VPN (OpenVPN)");
    assert_eq!(alerts[0]["risk"], "High");
    assert_eq!(alerts[0]["events"], 1);
    assert_eq!(rx.try_recv().unwrap().len(), 1);

    // The same batch again (a retry) stores nothing new and announces nothing.
    let again = router(Arc::clone(&c.app)).oneshot(post()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert!(rx.try_recv().is_err());

    // The page loads the script that shows them, from the console itself.
    let page = dsl.get("/alerts").await;
    // In the head, after the title (inside `<title>` it would be text, never run).
    let head = page.body.split("</head>").next().unwrap();
    let (title, after) = head.split_once("</title>").unwrap();
    assert!(after.contains(r#"<script src="/static/live.js" defer></script>"#));
    assert!(!title.contains("<script"));
    let js = dsl.get("/static/live.js").await;
    assert!(js.body.contains("textContent") && !js.body.contains("innerHTML"));
}

impl Console {
    /// Signs in through the form as a browser does; the answer to the form.
    async fn login(&self, name: &str, password: &str, code: &str) -> Reply {
        self.login_form(name, password, code, None).await
    }

    /// The login form sent with the form's own token, or with `csrf` instead.
    async fn login_form(
        &self,
        name: &str,
        password: &str,
        code: &str,
        csrf: Option<&str>,
    ) -> Reply {
        self.login_from(None, name, password, code, csrf).await
    }

    /// The login form sent from `peer`.
    async fn login_from(
        &self,
        peer: Option<std::net::SocketAddr>,
        name: &str,
        password: &str,
        code: &str,
        csrf: Option<&str>,
    ) -> Reply {
        let form = self.anonymous().get("/login").await;
        let set = form.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let login_cookie = set.split(';').next().unwrap().to_owned();
        let form_csrf = login_cookie.split_once('=').unwrap().1.to_owned();
        let browser = Browser {
            cookie: Some(login_cookie),
            peer,
            ..self.anonymous()
        };
        let csrf = csrf.map_or(form_csrf, str::to_owned);
        browser
            .post(
                "/login",
                &[
                    ("username", name),
                    ("password", password),
                    ("code", code),
                    ("csrf", &csrf),
                ],
            )
            .await
    }
}

#[tokio::test]
async fn an_account_with_totp_needs_a_fresh_code() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let secret = crate::auth::new_totp_secret().unwrap();
        let sealed = c.app.sealer.seal(&secret).unwrap();
        assert!(c.app.db.set_totp("dsl", Some(&sealed)).await.unwrap());
        assert!(!c.app.db.set_totp("nobody", Some(&secret)).await.unwrap());
        let password = "correct horse battery";
        assert_eq!(
            c.login("dsl", password, "").await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c.login("dsl", password, "000000").await.status,
            StatusCode::UNAUTHORIZED
        );
        let now_s = u64::try_from(super::now_ms() / 1000).unwrap();
        let code = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
            .build()
            .unwrap()
            .generate(now_s)
            .to_string();
        assert_eq!(
            c.login("dsl", "wrong", &code).await.status,
            StatusCode::UNAUTHORIZED
        );
        let ok = c.login("dsl", password, &code).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        assert_eq!(ok.location(), "/alerts");
        // The same code again (seen over a shoulder, say) is refused.
        assert_eq!(
            c.login("dsl", password, &code).await.status,
            StatusCode::UNAUTHORIZED
        );
        // An account without TOTP ignores the field.
        assert_eq!(
            c.login("it", password, "").await.status,
            StatusCode::SEE_OTHER
        );
        c.app.db.set_totp("dsl", None).await.unwrap();
        assert_eq!(
            c.login("dsl", password, "").await.status,
            StatusCode::SEE_OTHER
        );
    }
}

#[tokio::test]
async fn signing_out_needs_the_form_token_ends_the_session_and_is_audited() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::new(db).await;
    let dsl = c.signed_in("dsl").await;
    let forged = dsl.post("/logout", &[("csrf", "0")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(dsl.get("/alerts").await.status, StatusCode::OK);
    let out = dsl.post("/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    assert_eq!(dsl.get("/alerts").await.location(), "/login");
    // The forged form is audited as refused.
    assert_eq!(
        c.audit_actions().await,
        [
            ("dsl".to_owned(), "refused".to_owned()),
            ("dsl".to_owned(), "logout".to_owned())
        ]
    );
}

/// Fifty sign-ins at once for one account from one address, all wrong: only the first five
/// are checked, and then the right password is refused too, from there and (for a moment)
/// from anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_guesses_cannot_pass_the_limit() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Arc::new(Console::new(db).await);
    let from: std::net::SocketAddr = "192.0.2.10:40000".parse().unwrap();
    let statuses = fifty_guesses(std::slice::from_ref(&c), from).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 45), "{statuses:?}");
    let right = c
        .login_from(Some(from), "dsl", "correct horse battery", "", None)
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // From elsewhere the account is slowed, not locked: a wait of a second after the fifth
    // guess (the unit tests time the delays exactly; here the burst itself takes a while).
    let elsewhere: std::net::SocketAddr = "198.51.100.20:40000".parse().unwrap();
    let other = c
        .login_from(Some(elsewhere), "dsl", "correct horse battery", "", None)
        .await;
    if other.status == StatusCode::TOO_MANY_REQUESTS {
        let wait: u64 = other.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        let ok = c
            .login_from(Some(elsewhere), "dsl", "correct horse battery", "", None)
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    } else {
        assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.body);
    }
    // One audit row for the refusals of each key, not one per refusal.
    let actions = c.audit_actions().await;
    let throttled = actions
        .iter()
        .filter(|(_, a)| a == "login_throttled")
        .count();
    assert!((1..=3).contains(&throttled), "{actions:?}");
}

/// Fifty wrong passwords for `dsl` from `from` at once, spread over `consoles`: the answers'
/// statuses.
async fn fifty_guesses(consoles: &[Arc<Console>], from: std::net::SocketAddr) -> Vec<StatusCode> {
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let c = Arc::clone(&consoles[i % consoles.len()]);
            tokio::spawn(async move {
                c.login_from(Some(from), "dsl", &format!("guess {i}"), "", None)
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    statuses
}

/// Consoles sharing PostgreSQL count sign-ins together: fifty guesses at once spread over
/// two consoles, and only five are checked; the right password is then refused on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consoles_sharing_postgresql_count_guesses_together() {
    for (db, _dir) in testing::each().await {
        if db.postgres_url().is_none() {
            continue;
        }
        let consoles = [
            Arc::new(Console::new(db.clone()).await),
            Arc::new(Console::new(db).await),
        ];
        let from: std::net::SocketAddr = "192.0.2.10:40000".parse().unwrap();
        let statuses = fifty_guesses(&consoles, from).await;
        let checked = statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count();
        assert_eq!(checked, 5, "{statuses:?}");
        for c in &consoles {
            let right = c
                .login_from(Some(from), "dsl", "correct horse battery", "", None)
                .await;
            assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
}

/// A burst of sign-ins for many accounts from many addresses (nothing throttles them) hashes
/// at most a few passwords at once: memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_hashes_a_bounded_number_at_once() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    // The real cost (19 MiB): slow enough that fifty checks overlap unless bounded.
    let slow = crate::auth::hash_password("right").unwrap();
    for i in 0..20 {
        db.put_user(&format!("user{i}"), Role::It, &slow, 1)
            .await
            .unwrap();
    }
    let c = Arc::new(Console::new(db).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let from: std::net::SocketAddr = format!("10.0.{i}.1:5000").parse().unwrap();
                c.login_from(Some(from), &format!("user{i}"), "wrong", "", None)
                    .await
                    .status
            })
        })
        .collect();
    for t in tasks {
        // Checked and wrong, or (when the checks queued past their wait) told to come back.
        let status = t.await.unwrap();
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
            "{status}"
        );
    }
    let peak = c
        .app
        .password_checks
        .peak
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=super::login::PasswordChecks::PERMITS).contains(&peak),
        "{peak}"
    );
}

/// A resolved incident's record, printable and as JSON, for the school's records: the DSL's
/// only, only once resolved, every export audited.
#[tokio::test]
async fn a_closed_case_is_exported_whole_for_the_schools_records() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let attempt = alert("bypass_attempt", "vpn.example", "10.10.3.7");
        let quarantine = alert("quarantined", "vpn.example", "10.10.3.7");
        c.app
            .db
            .ingest("gw1", &[attempt.clone(), quarantine], super::now_ms())
            .await
            .unwrap();
        let path = format!("/alerts/{}", attempt.id);
        let dsl = c.signed_in("dsl").await;
        assert_eq!(
            dsl.get(&format!("{path}/record")).await.status,
            StatusCode::BAD_REQUEST,
            "an open case is not exported"
        );
        dsl.post(&format!("{path}/notes"), &[("body", "Mum <b>phoned</b>.")])
            .await;
        let done = dsl
            .post(
                &format!("{path}/triage"),
                &[
                    ("status", "resolved"),
                    ("outcome", "spoken to the pupil"),
                    ("action_taken", "VPN app removed"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        assert!(
            dsl.get(&path)
                .await
                .body
                .contains("/record\">Case record</a>")
        );

        let page = dsl.get(&format!("{path}/record")).await;
        assert_eq!(page.status, StatusCode::OK);
        for expected in [
            "Case record: Y6-iPad-12 used a VPN (OpenVPN) — quarantined",
            "spoken to the pupil",
            "VPN app removed",
            "Mum &#60;b&#62;phoned&#60;/b&#62;.",
            "Exported by dsl",
        ] {
            assert!(page.body.contains(expected), "{expected}: {}", page.body);
        }
        let json = dsl.get(&format!("{path}/record.json")).await;
        assert_eq!(json.status, StatusCode::OK);
        assert!(
            json.headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=\"case-")
        );
        let r: serde_json::Value = serde_json::from_str(&json.body).unwrap();
        assert_eq!(r["schema"], "schoolgate.case/1");
        assert_eq!(r["time_zone"], "Europe/London");
        assert_eq!(r["incident"]["outcome"], "spoken to the pupil");
        assert_eq!(r["incident"]["quarantined"], true);
        assert_eq!(r["incident"]["techniques"][0]["name"], "openvpn");
        assert_eq!(r["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(r["notes"][0]["body"], "Mum <b>phoned</b>.");
        let history = r["history"].as_array().unwrap();
        assert!(
            history
                .iter()
                .any(|h| h["what"].as_str().unwrap().starts_with("status resolved"))
        );
        // Times carry their offset: a record read elsewhere is not an hour out.
        let first = r["incident"]["first_seen"].as_str().unwrap();
        assert!(
            first.ends_with("+00:00") || first.ends_with("+01:00"),
            "{first}"
        );

        let it = c.signed_in("it").await;
        assert_eq!(
            it.get(&format!("{path}/record.json")).await.status,
            StatusCode::FORBIDDEN
        );
        let exports = c
            .audit_actions()
            .await
            .into_iter()
            .filter(|(who, a)| who == "dsl" && a == "export_case")
            .count();
        assert_eq!(exports, 2);
    }
}

/// Every page and download the router serves (read from its source, so a new route is
/// walked too), opened by IT after the DSL has resolved, noted and released a case: no
/// outcome, note, action taken or release reason appears anywhere.
#[tokio::test]
async fn it_sees_no_case_detail_on_any_route() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let e = alert("quarantined", "vpn.example", "10.10.3.7");
        c.app
            .db
            .ingest("gw1", std::slice::from_ref(&e), super::now_ms())
            .await
            .unwrap();
        let id = e.id.to_string();
        let dsl = c.signed_in("dsl").await;
        let path = format!("/alerts/{id}");
        for (action, fields) in [
            ("notes", vec![("body", "XYZZY-NOTE")]),
            (
                "triage",
                vec![
                    ("status", "resolved"),
                    ("outcome", "referred under safeguarding procedures"),
                    ("action_taken", "XYZZY-ACTION"),
                ],
            ),
            ("release", vec![("reason", "XYZZY-REASON")]),
        ] {
            let done = dsl.post(&format!("{path}/{action}"), &fields).await;
            assert_eq!(
                done.status,
                StatusCode::SEE_OTHER,
                "{action}: {}",
                done.body
            );
        }
        // The DSL sees them, so their absence below means something.
        let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
        let weekly = dsl.get(&format!("/reports/weekly?week={today}")).await.body;
        assert!(
            weekly.contains("referred under safeguarding procedures"),
            "{weekly}"
        );
        assert!(dsl.get(&path).await.body.contains("XYZZY-NOTE"));

        let it = c.signed_in("it").await;
        let question = c
            .app
            .db
            .ask_explanation(
                &crate::db::explanations::Ask {
                    agent: "gw1",
                    asked_by: "it",
                    client: "10.10.3.7",
                    mac: None,
                    person: None,
                    name: "vpn.example",
                    at_ms: super::now_ms(),
                },
                super::now_ms(),
            )
            .await
            .unwrap();
        c.app
            .db
            .put_policy("gw1", "00aa", REQUESTS_POLICY, 1)
            .await
            .unwrap();
        let policy = c.app.db.policy_of("gw1").await.unwrap().unwrap().id;
        let routes = get_routes();
        assert!(routes.len() >= 15, "{routes:?}");
        let mut walked = 0;
        for route in routes {
            // The live stream never ends; it carries the alerts list's columns only (its
            // own test shows what it sends).
            if route == "/alerts/live" {
                continue;
            }
            let mut path = route.replace("{id}", &id).replace("{key}", "10.10.3.7");
            if route == "/explain/{id}" {
                path = format!("/explain/{question}");
            }
            if route == "/policy/changes/{id}" {
                path = format!("/policy/changes/{policy}");
            }
            if path.starts_with("/reports/weekly") {
                path = format!("{path}?week={today}");
            }
            if path == "/blocked.csv" {
                path.push_str("?by=group");
            }
            let page = it.get(&path).await;
            let agents_only = path.starts_with("/api/") && page.status == StatusCode::UNAUTHORIZED;
            // A case record is the DSL's to export: IT is refused it.
            // The accounts page is the admin's.
            let cases_only = (route.contains("/record") || route == "/accounts")
                && page.status == StatusCode::FORBIDDEN;
            assert!(
                page.status.is_success()
                    || page.status.is_redirection()
                    || agents_only
                    || cases_only,
                "{path}: {}",
                page.status
            );
            for hidden in OUTCOMES_AND_CASE_TEXT {
                assert!(!page.body.contains(hidden), "IT sees {hidden:?} on {path}");
            }
            for o in super::alert::OUTCOMES {
                assert!(!page.body.contains(o), "IT sees outcome {o:?} on {path}");
            }
            walked += 1;
        }
        assert!(walked >= 15);
    }
}

/// Texts only the DSL may read, as the walk above wrote them.
const OUTCOMES_AND_CASE_TEXT: [&str; 4] =
    ["XYZZY-NOTE", "XYZZY-ACTION", "XYZZY-REASON", "by outcome"];

/// An agent sends the largest counts it may, and one it may not: the reports still add up.
#[tokio::test]
async fn the_largest_counts_break_no_report() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let now = jiff::Timestamp::now();
        let blocked = |count: i64| {
            serde_json::json!({
                "id": uuid::Uuid::now_v7().to_string(), "time": now.to_string(),
                "kind": "blocked", "device": {"ip": "10.10.3.7"}, "group": "pupils",
                "name": "tiktok.com", "category": "social", "count": count,
            })
        };
        let body = serde_json::json!({"agent": "gw1", "events": [
            blocked(i64::from(MAX_COUNT)), blocked(i64::from(MAX_COUNT)), blocked(i64::MAX),
        ]});
        let batch = schoolgate_contract::wire::parse_batch(body.to_string().as_bytes()).unwrap();
        assert_eq!((batch.events.len(), batch.refused.len()), (2, 1));
        c.app.db.ingest("gw1", &batch.events, 1).await.unwrap();
        let dsl = c.signed_in("dsl").await;
        let today = now.strftime("%Y-%m-%d").to_string();
        for path in [
            "/dashboard".to_owned(),
            "/blocked".to_owned(),
            "/blocked.csv?by=name".to_owned(),
            format!("/reports/weekly?week={today}"),
            format!("/reports/weekly.csv?week={today}"),
        ] {
            let page = dsl.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
        }
        let csv = dsl.get("/blocked.csv?by=name").await.body;
        assert!(csv.contains("2000000000"), "{csv}");
    }
}

/// Pages busy reading (here: holding every turn pages get) leave the agents' command poll
/// and signing in their own database connections.
#[tokio::test]
async fn busy_pages_cannot_starve_agents_or_sign_in() {
    for (db, _dir) in testing::each().await {
        db.add_agent("gw1", &token_hash("sga_t"), 1).await.unwrap();
        let c = Console::new(db).await;
        let n = c.app.db.connections() - 2;
        let held = c
            .app
            .page_reads
            .acquire_many(u32::try_from(n).unwrap())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let poll = Request::get("/api/v1/commands")
            .header(header::AUTHORIZATION, "Bearer sga_t")
            .body(Body::empty())
            .unwrap();
        let res = router(Arc::clone(&c.app)).oneshot(poll).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let login = c.login("dsl", "correct horse battery", "").await;
        assert_eq!(login.status, StatusCode::SEE_OTHER);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A page waits its turn, and gets it when one is free.
        let dsl = c.signed_in("dsl").await;
        let page = tokio::spawn(async move { dsl.get("/devices").await.status });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!page.is_finished());
        drop(held);
        assert_eq!(page.await.unwrap(), StatusCode::OK);
        if c.app.db.backend == crate::db::Backend::Postgres {
            let t: String = sqlx::query_scalar("SHOW statement_timeout")
                .fetch_one(&c.app.db.pool)
                .await
                .unwrap();
            assert_eq!(t, "20s");
        }
    }
}

/// Over HTTPS the session cookie is `__Host-` named, Secure, gone when the browser closes,
/// and pages carry HSTS; over plain HTTP neither claim is made.
#[tokio::test]
async fn cookies_and_hsts_follow_the_transport() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::new(db).await;
    let ok = c.login("dsl", "correct horse battery", "").await;
    let set: Vec<&str> = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|v| v.starts_with("__Host-sg_session="))
        .unwrap();
    assert!(
        session.contains("; Secure") && session.contains("Path=/"),
        "{session}"
    );
    assert!(
        !session.contains("Max-Age"),
        "a browser-session cookie: {session}"
    );
    let page = c.signed_in("dsl").await.get("/alerts").await;
    assert_eq!(
        page.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );

    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let plain = Console::with(db, Config::default(), false).await;
    let ok = plain.login("dsl", "correct horse battery", "").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let set = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        set.iter()
            .any(|v| v.starts_with("sg_session=") && !v.contains("Secure")),
        "{set:?}"
    );
    let page = plain.signed_in("dsl").await.get("/alerts").await;
    assert!(
        page.headers
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none()
    );
}

/// Behind a trusted proxy the client's own address is throttled and audited; anyone else's
/// `X-Forwarded-For` is ignored. Behind a proxy, cookies are Secure though the console
/// itself serves plain HTTP.
#[tokio::test]
async fn the_client_address_comes_from_a_trusted_proxy_only() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let config = Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..Config::default()
    };
    let c = Console::with(db, config, false).await;
    assert!(c.app.secure_cookies);
    for (peer, claimed) in [
        ("127.0.0.1:5000", "203.0.113.9"),
        ("192.0.2.1:5000", "203.0.113.10"),
    ] {
        let form = c.anonymous().get("/login").await;
        let cookie = form.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = cookie.split_once('=').unwrap().1.to_owned();
        let body = format!(
            "username=dsl&password=wrong&csrf={}",
            super::alert::urlencode(&csrf)
        );
        let mut req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .header("x-forwarded-for", format!("198.51.100.1, {claimed}"))
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut()
            .insert(super::Peer(peer.parse().unwrap()));
        let res = router(Arc::clone(&c.app)).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let log = c
        .app
        .db
        .audit_log(&crate::db::Scope::Trust, 10, 0)
        .await
        .unwrap();
    let mut addresses: Vec<_> = log.iter().map(|e| e.address.clone().unwrap()).collect();
    addresses.sort();
    assert_eq!(addresses, ["192.0.2.1", "203.0.113.9"]);
    let hops = |v: &str| {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    };
    let trusted: Vec<std::net::IpAddr> =
        vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
    assert_eq!(
        super::forwarded_for(&hops("1.2.3.4, 10.0.0.2"), &trusted),
        Some("1.2.3.4".parse().unwrap())
    );
    assert_eq!(
        super::forwarded_for(&hops("nonsense, 5.6.7.8"), &trusted),
        Some("5.6.7.8".parse().unwrap())
    );
    assert_eq!(super::forwarded_for(&hops("nonsense"), &trusted), None);
}

/// The login form takes only a token the console issued: a pair of values the client chose
/// (cookie and field alike) is refused.
#[tokio::test]
async fn the_login_form_takes_only_tokens_the_console_signed() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::new(db).await;
    let name = c.app.cookie_name("sg_login");
    let now = super::now_ms();
    for chosen in [
        "0123456789abcdef".to_owned(),
        format!("{now}.abcd.0000"),
        format!("{}.abcd.00", now - 2 * 3_600_000),
    ] {
        let browser = Browser {
            cookie: Some(format!("{name}={chosen}")),
            ..c.anonymous()
        };
        let res = browser
            .post(
                "/login",
                &[
                    ("username", "dsl"),
                    ("password", "correct horse battery"),
                    ("csrf", &chosen),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{chosen}");
    }
    // Three forged forms from one place: one audit row for the window.
    let refused = c
        .audit_actions()
        .await
        .into_iter()
        .filter(|(_, a)| a == "login_form_refused")
        .count();
    assert_eq!(refused, 1);
    assert_eq!(
        c.login("dsl", "correct horse battery", "").await.status,
        StatusCode::SEE_OTHER
    );
}

/// A session unused for longer than `session_idle_minutes` has ended.
#[tokio::test]
async fn an_idle_session_ends() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let user = c.app.db.user_by_name("dsl").await.unwrap().unwrap();
        let now = super::now_ms();
        for (idle_min, live) in [(31, false), (29, true)] {
            let token = crate::auth::random_token().unwrap();
            let used = now - idle_min * 60_000;
            c.app
                .db
                .add_session(&token_hash(&token), user.id, "csrf", used, now + 3_600_000)
                .await
                .unwrap();
            let browser = Browser {
                cookie: Some(format!("{}={token}", c.app.cookie_name(SESSION_COOKIE))),
                ..c.anonymous()
            };
            let page = browser.get("/alerts").await;
            assert_eq!(page.status == StatusCode::OK, live, "{idle_min} minutes");
        }
    }
}

/// An agent's status whose 4,096th byte falls inside a character (or far past it) is taken,
/// and the agent is noted as seen each time.
#[tokio::test]
async fn an_agents_long_status_is_kept_whole_or_not_at_all() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    db.add_agent("gw1", &token_hash("sga_t"), 1).await.unwrap();
    let c = Console::new(db).await;
    for (filler, kept) in [(4_000, true), (4_083, false), (100_000, false)] {
        // `{"note":"` + filler + `€…"}`: with 4,083 bytes of filler, byte 4,096 is inside '€'.
        let status =
            serde_json::json!({"note": format!("{}{}", "a".repeat(filler), "€".repeat(10))});
        let body = serde_json::json!({"agent": "gw1", "events": [], "status": status});
        let req = Request::post("/api/v1/events")
            .header(header::AUTHORIZATION, "Bearer sga_t")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = router(Arc::clone(&c.app)).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{filler}");
        let agents = c.app.db.agents(&crate::db::Scope::Trust).await.unwrap();
        let stored = agents[0].status.clone().unwrap();
        let value: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(value.get("note").is_some(), kept, "{filler}");
        assert!(stored.len() <= super::api::MAX_STATUS);
    }
}

/// A page's live stream ends when its session does: an alert announced after signing out is
/// not sent, and the stream closes.
#[tokio::test]
async fn the_live_stream_ends_with_its_session() {
    use futures_util::StreamExt;
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    let c = Console::new(db).await;
    let dsl = c.signed_in("dsl").await;
    let mut stream = dsl.live().await;
    assert_eq!(dsl.post("/logout", &[]).await.location(), "/login");
    let e = alert("bypass_attempt", "pupil-named.example", "10.10.3.7");
    let i = crate::db::incidents::Incident::open("gw1", &e);
    super::live::announce(
        &c.app.live,
        &[i],
        &crate::zone::Zone::default(),
        &std::collections::HashMap::new(),
    );
    let mut got = String::new();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            got.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end");
    assert!(!got.contains("pupil-named.example"), "{got}");
}

/// An alert an agent dates 2999 is stored at the time it arrived, so it neither sits above
/// every real alert nor escapes retention; the agent's date is kept beside it.
#[tokio::test]
async fn an_event_from_the_future_is_dated_when_received() {
    for (db, _dir) in testing::each().await {
        db.add_agent("gw1", &token_hash("sga_t"), 1).await.unwrap();
        let c = Console::new(db).await;
        let id = uuid::Uuid::now_v7().to_string();
        let body = serde_json::json!({"agent": "gw1", "events": [
            {"id": id, "time": "2999-01-01T00:00:00Z", "kind": "bypass_attempt",
             "device": {"ip": "10.10.3.7"}, "technique": "tor", "severity": "high"},
        ]});
        let req = Request::post("/api/v1/events")
            .header(header::AUTHORIZATION, "Bearer sga_t")
            .body(Body::from(body.to_string()))
            .unwrap();
        let before = super::now_ms();
        let res = router(Arc::clone(&c.app)).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let stored = c
            .app
            .db
            .event(&crate::db::Scope::Trust, &id)
            .await
            .unwrap()
            .unwrap();
        assert!((before..=super::now_ms()).contains(&stored.time_ms));
        let agent_time: Option<i64> =
            sqlx::query_scalar("SELECT agent_time_ms FROM events WHERE id = $1")
                .bind(&id)
                .fetch_one(&c.app.db.pool)
                .await
                .unwrap();
        assert_eq!(agent_time, Some(32_472_144_000_000));
    }
}

/// Two schools' gateways with a device at 10.10.3.7 each: the device's page asks which is
/// meant and never merges their histories; each alert links to its own.
#[tokio::test]
async fn one_address_behind_two_gateways_is_two_devices() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let a = alert("bypass_attempt", "school-a.example", "10.10.3.7");
        let b = alert("bypass_attempt", "school-b.example", "10.10.3.7");
        c.app
            .db
            .ingest("gw-a", std::slice::from_ref(&a), 1)
            .await
            .unwrap();
        c.app
            .db
            .ingest("gw-b", std::slice::from_ref(&b), 1)
            .await
            .unwrap();
        let dsl = c.signed_in("dsl").await;
        let both = dsl.get("/devices/10.10.3.7").await;
        assert_eq!(both.status, StatusCode::OK);
        assert!(both.body.contains("/devices/10.10.3.7?agent=gw-a"));
        assert!(both.body.contains("/devices/10.10.3.7?agent=gw-b"));
        assert!(!both.body.contains("school-a.example") && !both.body.contains("school-b.example"));
        let one = dsl.get("/devices/10.10.3.7?agent=gw-a").await;
        assert!(one.body.contains("school-a.example") && !one.body.contains("school-b.example"));
        let csv = dsl.get("/devices/10.10.3.7/history.csv?agent=gw-b").await;
        assert!(csv.body.contains("school-b.example") && !csv.body.contains("school-a.example"));
        assert_eq!(
            dsl.get("/devices/10.10.3.7/history.csv").await.status,
            StatusCode::BAD_REQUEST
        );
        let page = dsl.get(&format!("/alerts/{}", a.id)).await;
        assert!(
            page.body.contains("/devices/10.10.3.7?agent=gw-a"),
            "{}",
            page.body
        );
        // A key only one gateway knows needs no choice.
        let c2 = alert("quarantined", "x.example", "10.10.9.9");
        c.app
            .db
            .ingest("gw-a", std::slice::from_ref(&c2), 1)
            .await
            .unwrap();
        assert!(
            dsl.get("/devices/10.10.9.9")
                .await
                .body
                .contains("x.example")
        );
    }
}

/// The policy a gateway sends: YouTube for any class for two hours, social networking for
/// Year 6 only.
const REQUESTS_POLICY: &str = r#"version: 1
school: { name: Test, timezone: Europe/London }
schedules:
  lessons: { days: [mon, tue, wed, thu, fri], times: ["09:00-10:00", "13:00-15:00"] }
categories:
  youtube: { label: YouTube, domains: [youtube.com] }
  social_networking: { label: social networking, domains: [instagram.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
requests:
  - { name: Lesson video, allow: [youtube], groups: [pupils], classes: [all], longest_minutes: 120 }
  - { name: Year 6 media, allow: [social_networking], classes: [6A, 6B], longest_minutes: 60 }
"#;

/// A teacher asks, an approver decides, the gateway is sent what was approved until it is
/// revoked; a teacher sees their own requests and nothing of pupils; every step audited.
#[tokio::test]
async fn a_teachers_request_is_approved_and_sent_to_the_gateway() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let token = c.gateway().await;
        let teacher = c.signed_in("mr.osei").await;
        // Before the gateway has sent its policy, nothing can be asked for.
        let early = teacher.get("/requests").await;
        assert!(
            early.body.contains("has not sent its policy"),
            "{}",
            early.body
        );
        c.sends_policy(&token, REQUESTS_POLICY).await;

        // A teacher's account opens the requests, and nothing of what pupils did.
        assert_eq!(teacher.get("/").await.location(), "/requests");
        for path in [
            "/alerts",
            "/people/amira.k",
            "/devices",
            "/dashboard",
            "/audit",
        ] {
            assert_eq!(
                teacher.get(path).await.status,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
        let page = teacher.get("/requests").await;
        assert!(
            page.body
                .contains("<option value=\"youtube\">YouTube</option>"),
            "{}",
            page.body
        );
        assert!(
            !page.body.contains("href=\"/alerts\""),
            "no incidents in a teacher's menu"
        );

        // Social networking for Year 3 is not the teacher's to ask for: refused, saying why.
        let refused = teacher
            .post(
                "/requests",
                &[
                    ("agent", "gw1"),
                    ("allow", "social_networking"),
                    ("classes", "3A"),
                    ("when", "now"),
                    ("minutes", "30"),
                    ("reason", "Unit 3"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("class 3A"), "{}", refused.body);
        let asked = teacher
            .post(
                "/requests",
                &[
                    ("agent", "gw1"),
                    ("allow", "youtube"),
                    ("classes", "6B"),
                    ("when", "now"),
                    ("minutes", "45"),
                    ("reason", "Evaluating video adverts"),
                ],
            )
            .await;
        assert_eq!(asked.location(), "/requests?done=asked");
        let other = c.signed_in("ms.ade").await;
        let lesson = other
            .post(
                "/requests",
                &[
                    ("agent", "gw1"),
                    ("allow", "youtube"),
                    ("groups", "pupils"),
                    ("when", "lesson"),
                    ("schedule", "lessons"),
                    ("reason", "Assembly video"),
                ],
            )
            .await;
        assert_eq!(lesson.location(), "/requests?done=asked");
        // Each teacher sees their own only.
        let mine = teacher.get("/requests").await.body;
        assert!(mine.contains("Evaluating video adverts") && !mine.contains("Assembly video"));

        // Nothing reaches the gateway until it is approved.
        let granted = || {
            let (c, token) = (&c, token.clone());
            async move {
                let (status, body) = c.api(&token, "GET", "/api/v1/exceptions", "").await;
                assert_eq!(status, StatusCode::OK);
                serde_json::from_str::<serde_json::Value>(&body).unwrap()["exceptions"]
                    .as_array()
                    .unwrap()
                    .clone()
            }
        };
        assert!(granted().await.is_empty());
        let requests = c
            .app
            .db
            .requests(&crate::db::Scope::Trust, Some("mr.osei"), 10)
            .await
            .unwrap();
        let id = requests[0].id;
        // A teacher does not approve, even another's.
        let by_teacher = other.post(&format!("/requests/{id}/approve"), &[]).await;
        assert_eq!(by_teacher.status, StatusCode::FORBIDDEN);
        let head = c.signed_in("head").await;
        let waiting = head.get("/requests").await.body;
        assert!(
            waiting.contains("Waiting for your decision")
                && waiting.contains("Evaluating video adverts")
        );
        let approved = head
            .post(&format!("/requests/{id}/approve"), &[("note", "Fine")])
            .await;
        assert_eq!(approved.location(), "/requests?done=approved");
        let again = head.post(&format!("/requests/{id}/decline"), &[]).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "decided once");
        let sent = granted().await;
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["classes"], serde_json::json!(["6B"]));
        assert_eq!(sent[0]["allow"], serde_json::json!(["youtube"]));
        assert_eq!(sent[0]["approved_by"], "head");
        assert_eq!(sent[0]["name"], format!("youtube for 6B (request {id})"));
        let (from, to) = (
            sent[0]["from"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap(),
            sent[0]["to"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap(),
        );
        assert_eq!(to.as_second() - from.as_second(), 45 * 60);

        // The teacher withdraws it: the gateway is sent it no more.
        let revoked = teacher.post(&format!("/requests/{id}/revoke"), &[]).await;
        assert_eq!(revoked.location(), "/requests?done=revoked");
        assert!(granted().await.is_empty());
        // Another teacher cannot revoke what is not theirs.
        let theirs = c
            .app
            .db
            .requests(&crate::db::Scope::Trust, Some("ms.ade"), 10)
            .await
            .unwrap()[0]
            .id;
        assert_eq!(
            teacher
                .post(&format!("/requests/{theirs}/revoke"), &[])
                .await
                .status,
            StatusCode::FORBIDDEN
        );

        let actions = c.audit_actions().await;
        for (who, what) in [
            ("mr.osei", "request_exception"),
            ("head", "approve_request"),
            ("mr.osei", "revoke_request"),
        ] {
            assert!(
                actions.contains(&(who.to_owned(), what.to_owned())),
                "{who} {what} not audited: {actions:?}"
            );
        }
    }
}

/// A site alone, as a teacher pastes its address: asked for where its category may be
/// (YouTube's for any class), refused where it may not (Instagram for 3A), and refused when
/// it is in no category (nothing to open) or is not a site's name.
#[tokio::test]
async fn a_single_site_is_asked_for_as_its_category_allows() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let token = c.gateway().await;
        c.sends_policy(&token, REQUESTS_POLICY).await;
        let teacher = c.signed_in("mr.osei").await;
        let ask = |site: &'static str, class: &'static str| {
            [
                ("agent", "gw1"),
                ("allow", "youtube"),
                ("site", site),
                ("classes", class),
                ("when", "now"),
                ("minutes", "30"),
                ("reason", "One video"),
            ]
        };
        for (site, class, said) in [
            (
                "https://instagram.com/",
                "3A",
                "may not be asked for class 3A",
            ),
            ("homework.example", "6B", "in no category"),
            ("not a site", "6B", "is not a site's name"),
        ] {
            let refused = teacher.post("/requests", &ask(site, class)).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{site}");
            assert!(refused.body.contains(said), "{site}: {}", refused.body);
        }
        let asked = teacher
            .post(
                "/requests",
                &ask("https://www.YouTube.com/watch?v=abc", "6B"),
            )
            .await;
        assert_eq!(asked.location(), "/requests?done=asked", "{}", asked.body);
        let r = c
            .app
            .db
            .requests(&crate::db::Scope::Trust, Some("mr.osei"), 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(r.allow, ["www.youtube.com"]);
        let listed = teacher.get("/requests").await.body;
        assert!(listed.contains("www.youtube.com"), "{listed}");
    }
}

/// IT's question goes for the moment it is asked when no time is given (the form offers
/// none, so a question asked within a minute of a change is not answered for the minute's
/// start), and for the school's local time when one is.
#[tokio::test]
async fn a_question_is_for_now_unless_a_local_time_is_given() {
    let (db, _dir) = testing::each().await.into_iter().next().unwrap();
    db.add_agent("gw1", &token_hash("sga_t"), 1).await.unwrap();
    let c = Console::new(db).await;
    let it = c.signed_in("it").await;
    let form = it.get("/explain").await.body;
    assert!(
        form.contains("<input name=\"at\" type=\"datetime-local\">"),
        "{form}"
    );
    let ask = |at: &'static str| {
        [
            ("agent", "gw1"),
            ("client", "10.10.3.7"),
            ("name", "www.youtube.com"),
            ("at", at),
        ]
    };
    // The instant the question stored is for.
    let asked_for = |at: &'static str| {
        let (c, it) = (&c, &it);
        async move {
            let asked = it.post("/explain", &ask(at)).await;
            let id: i64 = asked
                .location()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            c.app
                .db
                .explanation(&crate::db::Scope::Trust, id)
                .await
                .unwrap()
                .unwrap()
                .at_ms
        }
    };
    let before = super::now_ms();
    let at_ms = asked_for("").await;
    let after = super::now_ms();
    assert!(
        (before..=after).contains(&at_ms),
        "{at_ms} not in {before}..{after}"
    );
    // 09:10 on a summer's day in London is 08:10 UTC.
    assert_eq!(
        asked_for("2026-06-15T09:10").await,
        "2026-06-15T08:10:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    );
}

/// A lesson asked for each week: the gateway is sent the periods that start within the
/// coming eight days, each a week after the last at the same time, each named apart; more
/// weeks than a term are refused.
#[tokio::test]
async fn a_lesson_asked_for_each_week_reaches_the_gateway_a_week_ahead() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let token = c.gateway().await;
        c.sends_policy(&token, REQUESTS_POLICY).await;
        let teacher = c.signed_in("mr.osei").await;
        let ask = |weeks: &'static str| {
            [
                ("agent", "gw1"),
                ("allow", "youtube"),
                ("classes", "6B"),
                ("when", "lesson"),
                ("schedule", "lessons"),
                ("weeks", weeks),
                ("reason", "Weekly media lesson"),
            ]
        };
        let too_long = teacher.post("/requests", &ask("15")).await;
        assert_eq!(
            too_long.status,
            StatusCode::BAD_REQUEST,
            "{}",
            too_long.body
        );
        let asked = teacher.post("/requests", &ask("6")).await;
        assert_eq!(asked.location(), "/requests?done=asked", "{}", asked.body);
        let r = c
            .app
            .db
            .requests(&crate::db::Scope::Trust, Some("mr.osei"), 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(r.weeks, 6);
        let zone = crate::zone::Zone::default();
        assert_eq!(r.until_ms, zone.weeks_later(r.to_ms, 5));
        let listed = teacher.get("/requests").await.body;
        assert!(listed.contains("and the same each week to"), "{listed}");
        let head = c.signed_in("head").await;
        let approved = head
            .post(&format!("/requests/{}/approve", r.id), &[("note", "")])
            .await;
        assert_eq!(approved.location(), "/requests?done=approved");

        let (status, body) = c.api(&token, "GET", "/api/v1/exceptions", "").await;
        assert_eq!(status, StatusCode::OK);
        let sent: schoolgate_contract::granted::GrantedList = serde_json::from_str(&body).unwrap();
        let now = super::now_ms();
        // The first period, and the next week's when it starts within eight days.
        let expected: Vec<(i64, i64)> = r
            .periods(&zone)
            .into_iter()
            .filter(|(from, to)| *to > now && *from < now + super::api::AHEAD_MS)
            .collect();
        assert!((1..=2).contains(&expected.len()), "{expected:?}");
        let got: Vec<(i64, i64)> = sent
            .exceptions
            .iter()
            .map(|g| (g.from.as_millisecond(), g.to.as_millisecond()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got[0], (r.from_ms, r.to_ms));
        let names: std::collections::BTreeSet<&str> =
            sent.exceptions.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), sent.exceptions.len(), "{names:?}");
        assert!(sent.exceptions.iter().all(|g| g.id == r.id));
    }
}

/// Threshold rules in `console.yaml`: three blocks of social networking within ten minutes
/// are an incident with those blocks as its evidence, and more join it; a member of staff
/// blocked from it counts only in lesson time (the gateway's own schedule).
#[tokio::test]
async fn many_small_events_cross_a_threshold_and_become_one_incident() {
    for (db, _dir) in testing::each().await {
        let config: Config = serde_saphyr::from_str(
            "thresholds:\n\
             - { name: Blocked from social networking again and again, kind: blocked, \
                 category: social_networking, count: 3, minutes: 10, risk: high }\n\
             - { name: Staff on social networking in lesson time, kind: blocked, \
                 category: social_networking, group: staff, during: lessons, count: 1, \
                 minutes: 60, risk: low }\n",
        )
        .unwrap();
        let c = Console::with(db, config, true).await;
        let token = c.gateway().await;
        let post = |path: &'static str, body: serde_json::Value| {
            let token = token.clone();
            let c = &c;
            async move { c.api(&token, "POST", path, &body.to_string()).await.0 }
        };
        let sent = post(
            "/api/v1/policy",
            serde_json::json!({"fingerprint": "00aa", "text": REQUESTS_POLICY}),
        )
        .await;
        assert_eq!(sent, StatusCode::NO_CONTENT);
        // Tuesday 1 December 2026 (London is on UTC).
        let blocked = |minute: u32, who: serde_json::Value, hour: u32| {
            serde_json::json!({
                "id": uuid::Uuid::now_v7().to_string(),
                "time": format!("2026-12-01T{hour:02}:{minute:02}:00Z"), "kind": "blocked",
                "severity": "low", "device": {"ip": "10.10.3.7", "name": "Y6-iPad-12"},
                "group": "pupils", "name": "www.instagram.com",
                "category": "social_networking", "person": who,
            })
        };
        let amira = serde_json::json!({"username": "amira.k", "display_name": "Amira Khan",
                                       "class": "6B", "group": "pupils"});
        let batch =
            |events: Vec<serde_json::Value>| serde_json::json!({"agent": "gw1", "events": events});
        assert_eq!(
            post(
                "/api/v1/events",
                batch(vec![
                    blocked(0, amira.clone(), 11),
                    blocked(1, amira.clone(), 11)
                ])
            )
            .await,
            StatusCode::OK
        );
        let every = crate::db::incidents::Filter::default();
        let all = || c.app.db.incidents(&crate::db::Scope::Trust, &every, 10, 0);
        assert!(all().await.unwrap().is_empty(), "two are not yet three");
        post("/api/v1/events", batch(vec![blocked(2, amira.clone(), 11)])).await;
        let found = all().await.unwrap();
        assert_eq!(found.len(), 1);
        let i = &found[0];
        assert_eq!((i.events, i.times), (3, 3));
        assert_eq!(i.severity, Severity::High);
        assert_eq!(
            super::alert::title(i),
            "Amira K. (6B): Blocked from social networking again and again (3 times) on Y6-iPad-12"
        );
        // Its evidence is the blocks themselves; the next one joins it.
        post("/api/v1/events", batch(vec![blocked(3, amira.clone(), 11)])).await;
        let found = all().await.unwrap();
        assert_eq!((found.len(), found[0].times), (1, 4));
        let dsl = c.signed_in("dsl").await;
        let page = dsl.get(&format!("/alerts/{}", found[0].id)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.matches("www.instagram.com").count() >= 4,
            "{}",
            page.body
        );
        assert_eq!(
            c.app.db.unmailed(10).await.unwrap().len(),
            1,
            "high risk: e-mailed"
        );

        // Staff: only in lesson time.
        let head = serde_json::json!({"username": "head", "group": "staff"});
        post("/api/v1/events", batch(vec![blocked(30, head.clone(), 19)])).await;
        assert_eq!(
            all().await.unwrap().len(),
            1,
            "after school is not lesson time"
        );
        post("/api/v1/events", batch(vec![blocked(30, head, 9)])).await;
        let found = all().await.unwrap();
        assert_eq!(found.len(), 2);
        assert!(
            found.iter().any(|i| i.rule.as_deref()
                == Some("Staff on social networking in lesson time")
                && i.severity == Severity::Low),
            "{found:?}"
        );
    }
}

/// IT reads the policy a gateway applied: its groups, a week's grid of when each group's
/// rules apply (term time and days in the school's time), the exceptions in force and to
/// come, and its history; a teacher cannot.
#[tokio::test]
async fn the_policy_in_force_is_shown_with_its_week() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        c.gateway().await;
        let text = REQUESTS_POLICY.replace(
            "requests:",
            "rules:\n  - { name: Pupils off social in lessons, groups: [pupils], block: [social_networking], when: lessons }\nrequests:",
        );
        c.app.db.put_policy("gw1", "00aa", &text, 1).await.unwrap();
        let now = super::now_ms();
        let six_b = vec!["6B".to_owned()];
        let youtube = vec!["youtube".to_owned()];
        let id = c
            .app
            .db
            .add_request(
                &crate::db::requests::NewRequest {
                    agent: "gw1",
                    requested_by: "mr.osei",
                    allow: &youtube,
                    groups: &[],
                    classes: &six_b,
                    people: &[],
                    from_ms: now,
                    to_ms: now + 3_600_000,
                    weeks: 1,
                    until_ms: now + 3_600_000,
                    reason: "Media unit",
                },
                now,
            )
            .await
            .unwrap();
        c.app
            .db
            .decide_request(id, "requested", "approved", "head", None, now)
            .await
            .unwrap();
        let it = c.signed_in("it").await;
        // The week of Tuesday 1 December 2026.
        let page = it.get("/policy?week=2026-12-01").await;
        assert_eq!(page.status, StatusCode::OK);
        for expected in [
            "<code>00aa</code>",
            "<h3>pupils</h3>",
            "Pupils off social in lessons",
            "blocks social networking",
            "<th>Tue 2026-12-01</th>",
            "<td>09:00–10:00, 13:00–15:00</td>",
            "<td>—</td>",
            &format!("youtube for 6B (request {id})"),
        ] {
            assert!(page.body.contains(expected), "{expected}: {}", page.body);
        }
        let teacher = c.signed_in("mr.osei").await;
        assert_eq!(teacher.get("/policy").await.status, StatusCode::FORBIDDEN);

        // IT edits the file; the gateway sends it; the change reads line by line.
        let edited = text.replace("longest_minutes: 120", "longest_minutes: 90");
        c.app
            .db
            .put_policy("gw1", "00bb", &edited, 2)
            .await
            .unwrap();
        let newest = c.app.db.policy_of("gw1").await.unwrap().unwrap().id;
        let page = it.get("/policy").await;
        assert!(
            page.body.contains(&format!("/policy/changes/{newest}")),
            "{}",
            page.body
        );
        let change = it.get(&format!("/policy/changes/{newest}")).await;
        assert_eq!(change.status, StatusCode::OK);
        assert!(
            change.body.contains("against <code>00aa</code>"),
            "{}",
            change.body
        );
        assert!(
            change.body.contains("<span class=\"removed\">- ")
                && change.body.contains("longest_minutes: 120")
                && change.body.contains("<span class=\"added\">+ "),
            "{}",
            change.body
        );
        assert_eq!(
            change.body.matches("class=\"added\"").count(),
            1,
            "{}",
            change.body
        );
    }
}

/// The admin manages users and agents in the browser as the command line does: each change
/// ends the user's sessions and is audited; an agent's token is shown once and works; nobody
/// else opens the page, and the admin cannot lock themselves out.
#[tokio::test]
async fn the_admin_manages_accounts_and_agents() {
    for (db, _dir) in testing::each().await {
        let c = Console::new(db).await;
        let root = c.signed_in("root").await;
        let it = c.signed_in("it").await;
        assert_eq!(it.get("/accounts").await.status, StatusCode::FORBIDDEN);
        let page = root.get("/accounts").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("mr.osei") && page.body.contains(">teacher<"));

        let weak = root
            .post(
                "/accounts/users",
                &[
                    ("action", "add"),
                    ("name", "ms.new"),
                    ("role", "teacher"),
                    ("password", "password1234"),
                ],
            )
            .await;
        assert_eq!(weak.status, StatusCode::BAD_REQUEST, "a guessable password");
        let added = root
            .post(
                "/accounts/users",
                &[
                    ("action", "add"),
                    ("name", "ms.new"),
                    ("role", "teacher"),
                    ("password", "plum orchard viaduct 1987!"),
                ],
            )
            .await;
        assert_eq!(added.location(), "/accounts?done=user_add");
        let user = c.app.db.user_by_name("ms.new").await.unwrap().unwrap();
        assert_eq!(user.role, Role::Teacher);

        // A new role ends IT's session at once.
        assert_eq!(it.get("/alerts").await.status, StatusCode::OK);
        let role = root
            .post(
                "/accounts/users",
                &[("action", "role"), ("name", "it"), ("role", "dsl")],
            )
            .await;
        assert_eq!(role.location(), "/accounts?done=user_role");
        assert_eq!(it.get("/alerts").await.location(), "/login");
        for action in ["remove", "disable", "role"] {
            let own = root
                .post(
                    "/accounts/users",
                    &[("action", action), ("name", "root"), ("role", "it")],
                )
                .await;
            assert_eq!(
                own.status,
                StatusCode::FORBIDDEN,
                "{action} of one's own account"
            );
        }

        // A new agent: its token shown once, and it works at once; revoked, it does not.
        let agent = root
            .post("/accounts/agents/add", &[("name", "gw-annex")])
            .await;
        assert_eq!(agent.status, StatusCode::OK);
        let token = agent
            .body
            .split("<code>sga_")
            .nth(1)
            .and_then(|t| t.split("</code>").next())
            .map(|t| format!("sga_{t}"))
            .unwrap();
        let ask = |token: String| {
            let c = &c;
            async move { c.api(&token, "GET", "/api/v1/exceptions", "").await.0 }
        };
        assert_eq!(ask(token.clone()).await, StatusCode::OK);
        let revoked = root
            .post("/accounts/agents/revoke", &[("name", "gw-annex")])
            .await;
        assert_eq!(revoked.location(), "/accounts?done=agent_revoke");
        assert_eq!(ask(token).await, StatusCode::UNAUTHORIZED);
        let actions = c.audit_actions().await;
        for a in ["user_add", "user_role", "agent_add", "agent_revoke"] {
            assert!(
                actions.contains(&("root".to_owned(), a.to_owned())),
                "{a}: {actions:?}"
            );
        }
    }
}

/// Two consoles behind a load balancer share one PostgreSQL database: an incident one of
/// them stores is announced live on the other (and on itself) through `LISTEN`/`NOTIFY`.
#[tokio::test]
async fn an_incident_stored_by_one_console_appears_live_on_another() {
    for (db, _dir) in testing::each().await {
        if db.postgres_url().is_none() {
            continue;
        }
        let one = Console::new(db.clone()).await;
        let two = Arc::new(App::new(db, Config::default(), true));
        let token = one.gateway().await;
        let listening = [
            super::live::follow(Arc::clone(&one.app)).unwrap(),
            super::live::follow(Arc::clone(&two)).unwrap(),
        ];
        let mut on_two = two.live.subscribe();
        let mut on_one = one.app.live.subscribe();
        // The listeners take a moment to connect: send until one hears, at most 10 s.
        let started = std::time::Instant::now();
        let mut n = 0;
        let heard = loop {
            // A device of its own each time: an incident of its own.
            n += 1;
            let e = alert("bypass_attempt", "vpn.example", &format!("10.10.3.{n}"));
            let body = serde_json::json!({"agent": "gw1", "events": [
                serde_json::to_value(&e.event).unwrap()
            ]});
            let req = Request::post("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let res = router(Arc::clone(&one.app)).oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            match tokio::time::timeout(std::time::Duration::from_millis(500), on_two.recv()).await {
                Ok(Ok(batch)) => break (batch, e),
                _ => assert!(
                    started.elapsed().as_secs() < 10,
                    "the other console heard nothing"
                ),
            }
        };
        let (batch, e) = heard;
        assert!(
            batch
                .iter()
                .any(|l| l.title == "Y6-iPad-12 used a VPN (OpenVPN)"),
            "{batch:?}"
        );
        // The console that stored it announces it once, through the same channel.
        let mut mine = Vec::new();
        while let Ok(Ok(b)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), on_one.recv()).await
        {
            mine.extend(b.iter().map(|l| l.id.clone()));
        }
        assert_eq!(mine.iter().filter(|id| **id == e.id.to_string()).count(), 1);
        for l in listening {
            l.abort();
        }
    }
}

mod schools;

//! The console's HTTP side: the router, the security headers every response carries, who is
//! signed in, and serving over TLS (or plain HTTP behind a proxy).
//!
//! - [`accounts`]: users and agents, for the admin role.
//! - [`api`]: the agents' API (events in, commands out), bearer tokens.
//! - [`login`]: sign in and out; sessions, CSRF, throttling.
//! - [`alerts`]: the incident list.
//! - [`alert`]: one incident: its alerts and evidence, the device's activity, triage, notes,
//!   release; one raw event.
//! - [`case`]: a resolved incident's record, printable and as JSON.
//! - [`devices`]: devices in quarantine; one device's history.
//! - [`people`]: finding a person; one person's history across devices.
//! - [`policy`]: the policy in force on each gateway, read-only, with its week grid.
//! - [`audit`]: the audit log.
//! - [`reports`]: blocked activity, the dashboard, the weekly report.
//! - [`explain`]: asking a gateway why a site is blocked or allowed, in the browser.
//! - [`requests`]: teachers' requests for exceptions, and their approval.
//! - [`live`]: new alerts pushed to open pages over server-sent events.
//! - [`chart`]: SVG charts drawn on the server; [`csv`]: CSV downloads.
//! - [`server`]: connections: TLS, time limits, how many at once.

pub mod accounts;
pub mod alert;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod case;
pub mod chart;
pub mod csv;
pub mod devices;
pub mod explain;
pub mod live;
pub mod login;
pub mod people;
pub mod policy;
pub mod reports;
pub mod requests;
pub mod server;

pub use schoolgate_serve::{Limits, Peer, TlsError, serve, tls_config};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tracing::warn;

use crate::auth::{Role, Throttle, token_hash};
use crate::config::Config;
use crate::db::Db;
use crate::db::accounts::Session;
use crate::zone::Zone;

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub db: Db,
    pub config: Config,
    pub throttle: Mutex<Throttle>,
    /// Passwords being checked, bounded.
    pub password_checks: login::PasswordChecks,
    /// Pages reading at once: two fewer than the database pool's connections.
    pub page_reads: tokio::sync::Semaphore,
    /// The browser reaches the console over HTTPS (served with TLS, or behind a trusted TLS
    /// proxy): cookies are `Secure` with a `__Host-` name, and HSTS is sent.
    pub secure_cookies: bool,
    /// Signs the login form's tokens, so only tokens this console issued are taken.
    pub form_key: ring::hmac::Key,
    /// Opens the sealed TOTP secrets (the data directory's key; see [`crate::files`]).
    pub sealer: crate::auth::Sealer,
    /// New alerts, announced to open pages.
    pub live: live::Announcer,
    /// Agents' policies compiled for checking requests, by their text (the last few).
    pub policies: Mutex<Vec<(Arc<str>, Arc<schoolgate_engine::Policy>)>>,
}

pub type Shared = Arc<App>;

impl App {
    pub fn new(db: Db, config: Config, tls: bool) -> Self {
        let secure_cookies = tls || !config.trusted_proxies.is_empty();
        let form_key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .unwrap_or_else(|_| {
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, uuid::Uuid::now_v7().as_bytes())
                });
        let page_reads = tokio::sync::Semaphore::new(db.connections().saturating_sub(2).max(1));
        Self {
            db,
            config,
            throttle: Mutex::default(),
            password_checks: login::PasswordChecks::default(),
            page_reads,
            secure_cookies,
            form_key,
            // `serve` gives the data directory's key; a fresh one serves a console that
            // keeps no sealed secret of its own (tests).
            sealer: crate::auth::Sealer::random()
                .unwrap_or_else(|_| crate::auth::Sealer::new(&[0; 32])),
            live: tokio::sync::broadcast::channel(live::BACKLOG).0,
            policies: Mutex::default(),
        }
    }

    /// This console with `sealer` for the TOTP secrets.
    #[must_use]
    pub fn with_sealer(mut self, sealer: crate::auth::Sealer) -> Self {
        self.sealer = sealer;
        self
    }

    /// Cookie `base`'s name: `__Host-` before it over HTTPS, so no other site or plain-HTTP
    /// page can set it.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// The login throttle (a panic elsewhere while holding it leaves it usable).
    pub fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sg_session";

/// The content security policy: nothing but the console's own script and style, no inline
/// code, no frames; anything a device sent that slipped past escaping still cannot run.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The whole console.
pub fn router(app: Shared) -> Router {
    // Pages that read many rows share fewer database connections than the pool has, so
    // they can never take the ones the agents' API and signing in need.
    let pages = Router::new()
        .route("/alerts", get(alerts::list))
        .route("/alerts.csv", get(alerts::export))
        .route("/alerts/{id}", get(alert::show))
        .route("/events/{id}", get(alert::event))
        .route("/alerts/{id}/record", get(case::page))
        .route("/alerts/{id}/record.json", get(case::json))
        .route("/devices", get(devices::list))
        .route("/devices/{key}", get(devices::history))
        .route("/devices/{key}/history.csv", get(devices::history_csv))
        .route("/people", get(people::search))
        .route("/people/{username}", get(people::history))
        .route("/people/{username}/history.csv", get(people::history_csv))
        .route("/people/{username}/release", post(people::release))
        .route("/policy", get(policy::page))
        .route("/policy/changes/{id}", get(policy::change))
        .route("/audit", get(audit::list))
        .route("/audit.csv", get(audit::export))
        .route("/blocked", get(reports::blocked))
        .route("/blocked.csv", get(reports::blocked_csv))
        .route("/dashboard", get(reports::dashboard))
        .route("/reports/weekly", get(reports::weekly))
        .route("/reports/weekly.csv", get(reports::weekly_csv))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), page_reads));
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/alerts/live", get(live::stream))
        .route("/static/live.js", get(live::script))
        .route("/alerts/{id}/triage", post(alert::triage))
        .route("/alerts/{id}/notes", post(alert::note))
        .route("/alerts/{id}/release", post(alert::release))
        .route("/devices/release", post(devices::release))
        .route("/requests", get(requests::page).post(requests::ask))
        .route("/accounts", get(accounts::page))
        .route("/accounts/users", post(accounts::user))
        .route("/accounts/agents/{action}", post(accounts::agent))
        .route("/requests/{id}/approve", post(requests::approve))
        .route("/requests/{id}/decline", post(requests::decline))
        .route("/requests/{id}/revoke", post(requests::revoke))
        .route("/static/console.css", get(style))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/events", post(api::events))
        .route("/api/v1/commands", get(api::commands))
        .route("/api/v1/commands/{id}/done", post(api::command_done))
        .route("/api/v1/exceptions", get(api::exceptions))
        .route("/api/v1/policy", post(api::policy))
        .route("/api/v1/explanations/{id}", post(api::explanation))
        .route("/explain", get(explain::page).post(explain::ask))
        .route("/explain/{id}", get(explain::answer))
        .merge(pages)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            audit_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            security_headers,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), forwarded))
        .layer(middleware::from_fn(schoolgate_serve::catch_panic))
        .with_state(app)
}

/// Behind a trusted proxy, the client is the address it says it forwarded for: the last in
/// `X-Forwarded-For` that is not itself a trusted proxy. Anyone else's header is ignored.
async fn forwarded(
    axum::extract::State(app): axum::extract::State<Shared>,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let trusted = &app.config.trusted_proxies;
    if let Some(Peer(addr)) = req.extensions().get::<Peer>().copied()
        && trusted.contains(&addr.ip())
        && let Some(client) = forwarded_for(req.headers(), trusted)
    {
        req.extensions_mut()
            .insert(Peer(SocketAddr::new(client, addr.port())));
    }
    next.run(req).await
}

/// The client named by `X-Forwarded-For` headers, read from the right past `trusted`.
pub fn forwarded_for(
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let ip: std::net::IpAddr = hop.parse().ok()?;
        if !trusted.contains(&ip) {
            return Some(ip);
        }
    }
    None
}

/// Lets a page read once one of [`App::page_reads`] is free; 503 after [`PAGE_WAIT`].
async fn page_reads(
    axum::extract::State(app): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(PAGE_WAIT, app.page_reads.acquire()).await {
        Ok(Ok(_permit)) => next.run(req).await,
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "The console is busy. Please try again in a moment.",
        )
            .into_response(),
    }
}

/// How long a page waits for its turn to read.
pub const PAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn security_headers(
    axum::extract::State(app): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if app.secure_cookies {
        // A year; not subdomains, which may be other schools' or other services' sites.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/console.css"),
    )
}

/// The value of cookie `name` in the request's headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for cookie `base` (named by [`App::cookie_name`]): Path=/,
/// HttpOnly, SameSite=Strict, Secure over HTTPS; kept for `max_age_s`, or with `None` until
/// the browser closes.
pub fn set_cookie(app: &App, base: &str, value: &str, max_age_s: Option<i64>) -> String {
    let name = app.cookie_name(base);
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    let age = max_age_s.map_or_else(String::new, |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}{secure}")
}

/// The signed-in user of a page request; anyone else is sent to `/login`.
#[derive(Debug)]
pub struct Signed(pub Session, pub Option<Peer>);

impl Signed {
    pub fn name(&self) -> &str {
        &self.0.user.name
    }

    pub fn role(&self) -> Role {
        self.0.user.role
    }

    /// Whose records this user sees: their school's, or the whole trust's.
    pub fn scope(&self) -> crate::db::Scope {
        self.0.user.scope()
    }

    /// Whether `csrf` is this session's token (every form sends it).
    pub fn csrf_ok(&self, csrf: &str) -> bool {
        crate::auth::same_secret(csrf, &self.0.csrf)
    }

    pub fn address(&self) -> Option<String> {
        self.1.map(|p| p.0.ip().to_string())
    }

    /// What every page's frame shows of the user.
    pub fn frame<'a>(&'a self, app: &'a App) -> Frame<'a> {
        Frame {
            school: self
                .scope()
                .column()
                .map(|ids| app.config.school_names(&ids)),
            zone: app.config.time_zone.name(),
            user: &self.0.user.name,
            role: self.role().as_str(),
            csrf: &self.0.csrf,
            cases: self.role().handles_cases(),
            records: self.role().sees_records(),
            admin: self.role() == crate::auth::Role::Admin,
        }
    }

    /// Writes `action` on `target` to the audit log. A view or action that cannot be
    /// audited is refused.
    pub async fn audit(
        &self,
        app: &App,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), Refused> {
        app.db
            .audit(&crate::db::audit::Entry {
                time_ms: now_ms(),
                who: self.name().to_owned(),
                action: action.to_owned(),
                target: target.map(str::to_owned),
                detail: detail.map(str::to_owned),
                address: self.address(),
                school: self.0.user.school.clone(),
            })
            .await?;
        Ok(())
    }

    /// Refuses anyone who does not handle cases.
    pub fn handles_cases(&self) -> Result<(), Refused> {
        if self.role().handles_cases() {
            Ok(())
        } else {
            Err(Refused::Forbidden(
                "Only the safeguarding lead's accounts can do this.",
            ))
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn form_ok(&self, csrf: &str) -> Result<(), Refused> {
        if self.csrf_ok(csrf) {
            Ok(())
        } else {
            Err(Refused::Forbidden(
                "The form had expired. Go back, reload the page and try again.",
            ))
        }
    }
}

/// Why a request was refused with 403, kept on the answer for [`audit_refusals`].
#[derive(Debug, Clone, Copy)]
pub struct Forbidden(pub &'static str);

/// Writes every refused form (403: a role that may not, or a form token that is not the
/// session's) to the audit log, with who sent it.
async fn audit_refusals(
    axum::extract::State(app): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let post = req.method() == axum::http::Method::POST;
    let path = req.uri().path().to_owned();
    let peer = req.extensions().get::<Peer>().copied();
    let token = cookie(req.headers(), &app.cookie_name(SESSION_COOKIE)).map(token_hash);
    let res = next.run(req).await;
    if let (true, Some(Forbidden(why)), Some(token)) =
        (post, res.extensions().get::<Forbidden>().copied(), token)
    {
        let idle_ms = app.config.session_idle_ms();
        let (who, school) = match app.db.session_used(&token, now_ms(), idle_ms, false).await {
            Ok(Some(s)) => (s.user.name, s.user.school),
            _ => return res,
        };
        let entry = crate::db::audit::Entry {
            time_ms: now_ms(),
            who,
            action: "refused".to_owned(),
            target: Some(schoolgate_contract::text::bounded_to(&path, 200)),
            detail: Some(why.to_owned()),
            address: peer.map(|p| p.0.ip().to_string()),
            school,
        };
        if let Err(e) = app.db.audit(&entry).await {
            return internal(&e);
        }
    }
    res
}

/// Why a page or form was refused; each becomes a short plain-text answer.
#[derive(Debug)]
pub enum Refused {
    /// 400: what to put right.
    Bad(String),
    /// 403.
    Forbidden(&'static str),
    /// 404: what was not found.
    NotFound(&'static str),
    /// 500; the cause is in the log, not the answer.
    Internal,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Bad(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Self::Forbidden(why) => {
                let mut res = (StatusCode::FORBIDDEN, why).into_response();
                res.extensions_mut().insert(Forbidden(why));
                res
            }
            Self::NotFound(what) => {
                (StatusCode::NOT_FOUND, format!("No such {what}.")).into_response()
            }
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong; see the console's log.",
            )
                .into_response(),
        }
    }
}

impl From<crate::db::DbError> for Refused {
    fn from(e: crate::db::DbError) -> Self {
        warn!(error = %e, "request failed");
        Self::Internal
    }
}

impl From<askama::Error> for Refused {
    fn from(e: askama::Error) -> Self {
        warn!(error = %e, "a page could not be drawn");
        Self::Internal
    }
}

/// What page handlers return.
pub type Answer = Result<Response, Refused>;

/// Renders an askama template as a page, for handlers that return [`Answer`].
pub fn render(t: &impl askama::Template) -> Answer {
    Ok(Html(t.render()?).into_response())
}

/// The user as every page's frame shows them.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub user: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
    /// The user handles cases (sees notes and outcomes, triages, releases).
    pub cases: bool,
    /// The user sees what the gateways recorded (not a teacher's or approver's account).
    pub records: bool,
    /// The user manages accounts.
    pub admin: bool,
    /// The time zone the page's times are in.
    pub zone: &'a str,
    /// The schools whose records the user sees (their names); `None`: the whole trust's.
    pub school: Option<String>,
}

/// A redirect after a form (303, so the browser follows with GET).
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

impl FromRequestParts<Shared> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Response> {
        let peer = parts.extensions.get::<Peer>().copied();
        let Some(token) = cookie(&parts.headers, &app.cookie_name(SESSION_COOKIE)) else {
            return Err(Redirect::to("/login").into_response());
        };
        let idle_ms = app.config.session_idle_ms();
        match app.db.session(&token_hash(token), now_ms(), idle_ms).await {
            Ok(Some(s)) if s.user.role.sees_records() || open_to_all(parts.uri.path()) => {
                Ok(Self(s, peer))
            }
            // A teacher or approver sent anywhere else goes to the requests, where their work is.
            Ok(Some(_)) if parts.uri.path() == "/" => {
                Err(Redirect::to("/requests").into_response())
            }
            Ok(Some(_)) => Err(Refused::Forbidden(
                "Your account can open the requests only. Ask the safeguarding lead or IT.",
            )
            .into_response()),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(internal(&e)),
        }
    }
}

/// `/`: the incidents for the DSL and IT; a teacher or approver is sent to the requests.
async fn home(_: Signed) -> Redirect {
    Redirect::to("/alerts")
}

/// Whether every role may open `path`: the requests and signing out. Everything else (what
/// the gateways recorded about pupils and staff) is for the DSL's and IT's roles only.
pub fn open_to_all(path: &str) -> bool {
    path == "/requests" || path.starts_with("/requests/") || path == "/logout"
}

/// A 500 that says nothing of the cause to the browser; the cause goes to the log.
pub fn internal(e: &dyn std::error::Error) -> Response {
    warn!(error = %e, "request failed");
    Refused::Internal.into_response()
}

/// Renders an askama template as a page, for handlers that return a `Response`.
pub fn page(t: &impl askama::Template) -> Response {
    render(t).unwrap_or_else(IntoResponse::into_response)
}

/// An event with its time as pages show it.
#[derive(Debug)]
pub struct Row {
    pub e: crate::db::events::Stored,
    pub when: String,
    /// The technique in words, where the event names one.
    pub technique: Option<&'static str>,
}

impl Row {
    pub fn of(e: crate::db::events::Stored, zone: &Zone) -> Self {
        Self {
            when: zone.when(e.time_ms),
            technique: e.technique.as_deref().and_then(technique_words),
            e,
        }
    }
}

/// The technique named `name` on the wire, in words (`dns_over_tls` → "DNS over TLS").
pub fn technique_words(name: &str) -> Option<&'static str> {
    schoolgate_contract::Technique::from_name(name).map(schoolgate_contract::Technique::words)
}

/// A page of a list asked for with one row more than `page_len`: the page, and whether
/// more follow it.
pub fn one_page<T>(mut rows: Vec<T>, page_len: i64) -> (Vec<T>, bool) {
    let len = usize::try_from(page_len).unwrap_or(0);
    let more = rows.len() > len;
    rows.truncate(len);
    (rows, more)
}

/// The time now.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The time now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    now().as_millisecond()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests;

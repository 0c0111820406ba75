//! Signing in and out.
//!
//! The login form is protected against cross-site posting by a token the console signs
//! ([`App::form_key`](super::App::form_key)), set both as a cookie (`sg_login`) and as a
//! hidden field, which must match and carry a valid signature less than an hour old; every
//! later form carries the session's own CSRF token. The session cookie lasts until the
//! browser closes (and at most `session_hours`, and ends after `session_idle_minutes`
//! unused). Attempts are counted before the password is
//! checked and throttled per name, per address and per both
//! ([`Throttle`](crate::auth::Throttle); on PostgreSQL counted in the database, so consoles
//! sharing it count every guess together); at most [`PasswordChecks::PERMITS`] passwords are
//! hashed at once, so a burst of sign-ins cannot exhaust memory. A name that does not exist
//! costs as long to refuse as a wrong password. Every success and failure is in the audit
//! log, and the first refusal of each throttled key in its window.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{App, Peer, SESSION_COOKIE, Shared, cookie, internal, now_ms, set_cookie};
use crate::auth::{Attempt, decoy_hash, random_token, same_secret, token_hash, totp_check};
use crate::db::audit::Entry;

const LOGIN_COOKIE: &str = "sg_login";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    message: Option<&'a str>,
}

/// How long a login form's token is taken.
const FORM_LIFETIME_MS: i64 = 3_600_000;

/// A login form token issued at `now`: `time.nonce.signature`.
fn form_token(app: &Shared, now: i64) -> Result<String, crate::auth::HashError> {
    let signed = format!("{now}.{}", random_token()?);
    let tag = ring::hmac::sign(&app.form_key, signed.as_bytes());
    Ok(format!("{signed}.{}", crate::auth::hex(tag.as_ref())))
}

/// Whether `token` is one this console issued within the last hour.
fn form_token_ok(app: &Shared, token: &str, now: i64) -> bool {
    let Some((signed, hex)) = token.rsplit_once('.') else {
        return false;
    };
    let Some(tag) = crate::auth::unhex(hex) else {
        return false;
    };
    let fresh = signed
        .split_once('.')
        .and_then(|(t, _)| t.parse::<i64>().ok())
        .is_some_and(|t| t <= now && now - t < FORM_LIFETIME_MS);
    fresh && ring::hmac::verify(&app.form_key, signed.as_bytes(), &tag).is_ok()
}

/// The login form, with a fresh form token.
pub async fn page_for(app: &Shared, status: StatusCode, message: Option<&str>) -> Response {
    let csrf = match form_token(app, now_ms()) {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let mut res = super::page(&LoginPage {
        csrf: &csrf,
        message,
    });
    *res.status_mut() = status;
    if let Ok(v) = set_cookie(app, LOGIN_COOKIE, &csrf, Some(FORM_LIFETIME_MS / 1000)).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub async fn page(State(app): State<Shared>) -> Response {
    page_for(&app, StatusCode::OK, None).await
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// The authenticator app's code, for accounts that use one.
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

pub async fn submit(
    State(app): State<Shared>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = now_ms();
    let address = peer.map(|p| p.0.0.ip());
    let form_ok = cookie(&headers, &app.cookie_name(LOGIN_COOKIE))
        .is_some_and(|c| same_secret(c, &form.csrf) && form_token_ok(&app, c, now));
    if !form_ok {
        // Audited once per address and window: anyone can send these.
        let key = format!(
            "form:{}",
            address.map_or_else(String::new, crate::auth::address_key)
        );
        let first = match first_in_window(&app, &key, now).await {
            Ok(f) => f,
            Err(e) => return internal(&e),
        };
        if first {
            let entry = Entry {
                time_ms: now,
                who: schoolgate_contract::text::bounded_to(form.username.trim(), 64),
                action: "login_form_refused".to_owned(),
                target: None,
                detail: Some("the form's token was missing, forged or expired".to_owned()),
                address: address.map(|a| a.to_string()),
                school: None,
            };
            if let Err(e) = app.db.audit(&entry).await {
                return internal(&e);
            }
        }
        return page_for(
            &app,
            StatusCode::FORBIDDEN,
            Some("The form had expired. Please sign in again."),
        )
        .await;
    }
    let name = schoolgate_contract::text::bounded_to(form.username.trim(), 64);
    // A disabled account is refused as a wrong password is, after the same work.
    let user = match app.db.user_by_name(&name).await {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => return internal(&e),
    };
    // A school's admin reads its own users' sign-ins.
    let school = user.as_ref().and_then(|u| u.school.clone());
    let audit = |action: &str, detail: Option<String>| Entry {
        time_ms: now,
        who: name.clone(),
        action: action.to_owned(),
        target: None,
        detail,
        address: address.map(|a| a.to_string()),
        school: school.clone(),
    };
    // Counted before the password is checked, so simultaneous guesses each see the others.
    let address_key = address.map_or_else(String::new, crate::auth::address_key);
    let counted = match begin(&app, Attempt::new(&name, user.is_some(), &address_key), now).await {
        Ok(c) => c,
        Err(e) => return internal(&e),
    };
    let attempt = match counted {
        Ok(a) => a,
        Err(refusal) => {
            if refusal.audit
                && let Err(e) = app.db.audit(&audit("login_throttled", None)).await
            {
                return internal(&e);
            }
            let seconds = (refusal.until_ms - now).div_euclid(1000) + 1;
            let message = if seconds > 90 {
                format!(
                    "Too many failed sign-ins. Try again in {} minute(s).",
                    seconds.div_euclid(60) + 1
                )
            } else {
                format!("Too many failed sign-ins. Try again in {seconds} second(s).")
            };
            let mut res = page_for(&app, StatusCode::TOO_MANY_REQUESTS, Some(&message)).await;
            if let Ok(v) = seconds.to_string().parse() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
    };
    let hash = user
        .as_ref()
        .map_or(decoy_hash(), |u| u.password_hash.as_str())
        .to_owned();
    let Some(matched) = app.password_checks.verify(form.password, hash).await else {
        if let Err(e) = abandoned(&app, &attempt).await {
            tracing::warn!(error = %e, "cannot take back a sign-in attempt");
        }
        let mut res = page_for(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The console is busy. Please try again in a moment."),
        )
        .await;
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return res;
    };
    // An account with a TOTP secret also needs a code, each accepted once.
    let user = match user.filter(|_| matched) {
        Some(u) => match u.totp_secret.as_deref().map(|s| app.sealer.open(s)) {
            None => Some(u),
            // Sealed with another key (a data directory restored without its key): no code
            // can match.
            Some(None) => None,
            Some(Some(secret)) => {
                let secret = secret.as_str();
                let now_s = u64::try_from(now.div_euclid(1000)).unwrap_or(0);
                match totp_check(secret, &form.code, now_s).and_then(|s| i64::try_from(s).ok()) {
                    Some(step) => match app.db.use_totp_step(u.id, step).await {
                        Ok(true) => Some(u),
                        Ok(false) => None,
                        Err(e) => return internal(&e),
                    },
                    None => None,
                }
            }
        },
        None => None,
    };
    let Some(user) = user else {
        if let Err(e) = app.db.audit(&audit("login_failed", None)).await {
            return internal(&e);
        }
        return page_for(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name, password or code."),
        )
        .await;
    };
    if let Err(e) = succeeded(&app, &attempt).await {
        return internal(&e);
    }
    let (token, csrf) = match (random_token(), random_token()) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let lifetime_ms = i64::from(app.config.session_hours) * 3_600_000;
    if let Err(e) = app
        .db
        .add_session(&token_hash(&token), user.id, &csrf, now, now + lifetime_ms)
        .await
    {
        return internal(&e);
    }
    if let Err(e) = app
        .db
        .audit(&audit("login", Some(format!("role {}", user.role))))
        .await
    {
        return internal(&e);
    }
    // Each role lands where its work is.
    let home = if user.role.sees_records() {
        "/alerts"
    } else {
        "/requests"
    };
    let mut res = Redirect::to(home).into_response();
    let cookies = [
        set_cookie(&app, SESSION_COOKIE, &token, None),
        set_cookie(&app, LOGIN_COOKIE, "", Some(0)),
    ];
    for c in cookies {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Shared>,
    signed: super::Signed,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(r) = signed.form_ok(&form.csrf) {
        return r.into_response();
    }
    if let Some(token) = cookie(&headers, &app.cookie_name(SESSION_COOKIE))
        && let Err(e) = app.db.end_session(&token_hash(token)).await
    {
        return internal(&e);
    }
    if let Err(r) = signed.audit(&app, "logout", None, None).await {
        return r.into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(&app, SESSION_COOKIE, "", Some(0)).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Password checks (19 MiB of argon2 each) run at most [`Self::PERMITS`] at a time, off the
/// async threads; a check that waits longer than [`Self::WAIT`] is not made. The permit
/// goes with the hashing itself, so a browser that leaves mid-check frees nothing early.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The most that ever ran at once (for the tests).
    pub peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::PERMITS)),
            running: std::sync::Arc::default(),
            peak: std::sync::Arc::default(),
        }
    }
}

impl PasswordChecks {
    pub const PERMITS: usize = 4;
    pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Whether `password` matches `hash`; `None` if no check could start in time.
    pub async fn verify(&self, password: String, hash: String) -> Option<bool> {
        use std::sync::atomic::Ordering;
        let permit = tokio::time::timeout(Self::WAIT, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        let (running, peak) = (self.running.clone(), self.peak.clone());
        let check = tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let matched = crate::auth::verify_password(&password, &hash);
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            matched
        });
        Some(check.await.unwrap_or(false))
    }
}

/// Counts a sign-in attempt, or refuses it: in the database on PostgreSQL, so consoles
/// sharing it count every guess together; else in this console's memory.
async fn begin(
    app: &App,
    attempt: Attempt,
    now: i64,
) -> Result<Result<Attempt, crate::auth::Refusal>, crate::db::DbError> {
    if app.db.postgres_url().is_some() {
        app.db.login_begin(attempt, now).await
    } else {
        Ok(app.throttle().begin(attempt, now))
    }
}

async fn succeeded(app: &App, attempt: &Attempt) -> Result<(), crate::db::DbError> {
    if app.db.postgres_url().is_some() {
        app.db.login_succeeded(attempt).await
    } else {
        app.throttle().succeeded(attempt);
        Ok(())
    }
}

async fn abandoned(app: &App, attempt: &Attempt) -> Result<(), crate::db::DbError> {
    if app.db.postgres_url().is_some() {
        app.db.login_abandoned(attempt).await
    } else {
        app.throttle().abandoned(attempt);
        Ok(())
    }
}

async fn first_in_window(app: &App, key: &str, now: i64) -> Result<bool, crate::db::DbError> {
    if app.db.postgres_url().is_some() {
        app.db.login_first_refusal(key, now).await
    } else {
        Ok(app.throttle().first_in_window(key, now))
    }
}

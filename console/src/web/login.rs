//! Signing in and out.
//!
//! The login form is protected against cross-site posting by a random token set both as a
//! cookie (`sg_login`, this path only) and as a hidden field, which must match; every later
//! form carries the session's own CSRF token. Failures are throttled per name and per
//! address ([`Throttle`](crate::auth::Throttle)), and a name that does not exist costs as
//! long to refuse as a wrong password. Every success and failure is in the audit log.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Peer, SESSION_COOKIE, Shared, cookie, internal, now_ms, set_cookie};
use crate::auth::{decoy_hash, random_token, same_secret, token_hash, totp_check, verify_password};
use crate::db::audit::Entry;

const LOGIN_COOKIE: &str = "sg_login";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    message: Option<&'a str>,
}

/// The login form, with a fresh form token.
pub async fn page_for(app: &Shared, status: StatusCode, message: Option<&str>) -> Response {
    let csrf = match random_token() {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let mut res = super::page(&LoginPage {
        csrf: &csrf,
        message,
    });
    *res.status_mut() = status;
    if let Ok(v) = set_cookie(app, LOGIN_COOKIE, &csrf, "/login", 3600).parse() {
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
    let address = peer.map(|p| p.0.0.ip().to_string());
    let form_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &form.csrf));
    if !form_ok {
        return page_for(
            &app,
            StatusCode::FORBIDDEN,
            Some("The form had expired. Please sign in again."),
        )
        .await;
    }
    let name = crate::wire::clean(form.username.trim(), 64);
    let keys = [
        format!("user:{name}"),
        format!("addr:{}", address.as_deref().unwrap_or("")),
    ];
    let locked = {
        let t = app.throttle();
        keys.iter().filter_map(|k| t.locked_until(k, now)).max()
    };
    let audit = |action: &str, detail: Option<String>| Entry {
        time_ms: now,
        who: name.clone(),
        action: action.to_owned(),
        target: None,
        detail,
        address: address.clone(),
    };
    if let Some(until) = locked {
        if let Err(e) = app.db.audit(&audit("login_throttled", None)).await {
            return internal(&e);
        }
        let minutes = (until - now).div_euclid(60_000) + 1;
        let message = format!("Too many failed sign-ins. Try again in {minutes} minute(s).");
        return page_for(&app, StatusCode::TOO_MANY_REQUESTS, Some(&message)).await;
    }
    let user = match app.db.user_by_name(&name).await {
        Ok(u) => u,
        Err(e) => return internal(&e),
    };
    let hash = user
        .as_ref()
        .map_or(decoy_hash(), |u| u.password_hash.as_str());
    let password = form.password;
    let hash = hash.to_owned();
    let matched = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    // An account with a TOTP secret also needs a code, each accepted once.
    let user = match user.filter(|_| matched) {
        Some(u) => match u.totp_secret.as_deref() {
            None => Some(u),
            Some(secret) => {
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
        {
            let mut t = app.throttle();
            for k in &keys {
                t.failed(k, now);
            }
        }
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
    {
        let mut t = app.throttle();
        for k in &keys {
            t.succeeded(k);
        }
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
    let mut res = Redirect::to("/alerts").into_response();
    let cookies = [
        set_cookie(&app, SESSION_COOKIE, &token, "/", lifetime_ms / 1000),
        set_cookie(&app, LOGIN_COOKIE, "", "/login", 0),
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
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = app.db.end_session(&token_hash(token)).await
    {
        return internal(&e);
    }
    if let Err(r) = signed.audit(&app, "logout", None, None).await {
        return r.into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(&app, SESSION_COOKIE, "", "/", 0).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

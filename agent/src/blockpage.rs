//! The block page: a small HTTP server on the sinkhole address that tells whoever was sent
//! there why, in words for a child or for staff (the group's `audience`).
//!
//! The page asks the decision engine again with the request's `Host` and the sender's
//! address, so it always says what the resolver decided. HTTPS to a blocked name cannot show
//! a page without a certificate error, so port 443 of the same address accepts and resets at
//! once: the browser fails fast instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use schoolgate_engine::policy::{Audience, Target};
use schoolgate_engine::{Action, Decision, Policy, Reason, decide_as};
use schoolgate_serve::Peer;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::report::events::bounded;
use crate::shared::Shared;

/// The port browsers use for HTTPS; blocked names' HTTPS is reset here.
pub const HTTPS_PORT: u16 = 443;

#[derive(Template)]
#[template(path = "block.html")]
struct Page<'a> {
    school: &'a str,
    host: &'a str,
    blocked: bool,
    staff: bool,
    rule: String,
    category: Option<&'a str>,
    matched: Option<&'a str>,
    group: Option<&'a str>,
    why: String,
    when: String,
    until: String,
}

/// The host a request names: the `Host` header without its port, bounded and lower-cased.
fn host_of(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| h.trim_start_matches('['))?
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(bounded(host).to_ascii_lowercase())
}

/// "at 15:30" today, "on Monday 24 November at 08:30" another day.
fn when_text(policy: &Policy, until: Timestamp, now: Timestamp) -> String {
    let tz = policy.timezone().clone();
    let (u, n) = (until.to_zoned(tz.clone()), now.to_zoned(tz));
    if u.date() == n.date() {
        format!("at {}", u.strftime("%H:%M"))
    } else {
        format!("on {}", u.strftime("%A %-d %B at %H:%M"))
    }
}

/// Renders the page for `decision` about `host`.
fn render(policy: &Policy, decision: &Decision<'_>, host: &str, now: Timestamp) -> Response {
    let blocked = decision.action == Action::Block;
    let group = decision.identity.group.and_then(|g| policy.group(g));
    let staff = group.is_some_and(|g| g.audience == Audience::Staff);
    let rule = match decision.reason {
        Reason::Quarantine => "quarantine after an attempt to get round the filter",
        _ => decision.rule_name(policy).unwrap_or_default(),
    }
    .to_owned();
    let category = decision
        .matched
        .and_then(|m| match policy.target(m.target) {
            Some(Target::Category { label, .. }) => Some(label.as_str()),
            _ => None,
        });
    let schedule = match decision.reason {
        Reason::Rule(r) => policy
            .rule(r)
            .and_then(|r| policy.schedule(r.when))
            .filter(|s| !s.is_always()),
        _ => None,
    };
    let why = match (decision.reason, category, schedule) {
        (Reason::Quarantine, _, _) => "This device tried to get round the school's filter, so it can only reach school sites until a member of staff checks it.".to_owned(),
        (_, Some(c), Some(s)) => format!("The school does not allow {c} {}.", s.label),
        (_, Some(c), None) => format!("The school does not allow {c} on this device."),
        (_, None, Some(s)) => format!("The school does not allow this website {}.", s.label),
        (_, None, None) => "The school does not allow this website on this device.".to_owned(),
    };
    let (when, until) = match decision.until {
        Some(t) => {
            let at = when_text(policy, t, now);
            (format!("You can use it again {at}."), at)
        }
        None if decision.reason == Reason::Quarantine => (
            "A member of staff will check this device.".to_owned(),
            "released by staff".to_owned(),
        ),
        None => (
            "It stays blocked on this device.".to_owned(),
            "no end".to_owned(),
        ),
    };
    let page = Page {
        school: policy.school_name(),
        host,
        blocked,
        staff,
        rule,
        category,
        matched: decision.matched.map(|m| m.domain),
        group: group.map(|g| g.name.as_str()),
        why,
        when,
        until,
    };
    let status = if blocked {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    match page.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            // The answer depends on the time and the device: never cache it.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            warn!(error = %e, "block page template");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn page(
    State(shared): State<Arc<Shared>>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    shared.metrics.block_page_requests.inc();
    let policy = shared.live.current();
    let now = crate::clock::now();
    let host = host_of(&headers).unwrap_or_default();
    let who = shared.who(&policy, peer.ip(), now);
    // The page must say what the resolver did: a quarantined device is sent here for
    // everything but the quarantine's allowed names.
    let quarantined = shared.quarantine.contains(&who.client);
    let decision = decide_as(&policy, &who.client, who.identity, &host, now, quarantined);
    render(&policy, &decision, &host, now)
}

/// Serves the block page on `listener` until the task is dropped.
///
/// Pupils' devices reach it, so it is served with `schoolgate-serve`'s limits: a slow or idle
/// client, or one holding many connections, cannot keep it from the rest.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .fallback(page)
        .with_state(shared)
        .layer(axum::middleware::from_fn(schoolgate_serve::catch_panic));
    let limits = schoolgate_serve::Limits {
        per_address: 16,
        ..schoolgate_serve::Limits::default()
    };
    schoolgate_serve::serve(
        listener,
        app,
        None,
        limits,
        Arc::from([]),
        std::future::pending(),
    )
    .await;
}

/// Accepts TLS connections to blocked names and resets each at once (RST, not FIN), so the
/// browser shows its error straight away rather than waiting.
pub async fn reset_tls(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                shared.metrics.tls_resets.inc();
                // A zero linger turns close into a reset.
                if let Err(e) = stream.set_zero_linger() {
                    debug!(%peer, error = %e, "linger");
                }
                drop(stream);
            }
            Err(e) => {
                warn!(error = %e, "tls reset accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            host_of(&m)
        };
        assert_eq!(h("WWW.Instagram.com").as_deref(), Some("www.instagram.com"));
        assert_eq!(h("instagram.com:80").as_deref(), Some("instagram.com"));
        assert_eq!(h("[2001:db8::1]:80").as_deref(), Some("2001:db8::1"));
        assert_eq!(host_of(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_quarantined_device_is_told_so() {
        const POLICY: &str = "version: 1\nschool: { name: Lab School, timezone: UTC }\n\
            categories:\n  vle: { domains: [vle.example] }\n\
            groups:\n  pupils: { networks: [10.0.0.0/8] }\n\
            bypass: { response: { pupils: quarantine }, quarantine_allow: [vle] }\n";
        let no_lists = |_: &std::path::Path| Ok(String::new());
        let policy = Policy::from_yaml(POLICY, "p.yaml".as_ref(), &no_lists).unwrap();
        let client = schoolgate_engine::Client::new("10.1.2.3".parse().unwrap(), None);
        let now: Timestamp = "2026-11-24T09:15:00Z".parse().unwrap();
        let page = |quarantined: bool| {
            let d = decide_as(
                &policy,
                &client,
                policy.identify(&client),
                "www.bbc.co.uk",
                now,
                quarantined,
            );
            render(&policy, &d, "www.bbc.co.uk", now)
        };
        assert_eq!(page(false).status(), StatusCode::OK);
        let answer = page(true);
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("This device tried to get round"), "{body}");
    }
}

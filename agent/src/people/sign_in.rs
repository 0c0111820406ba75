//! The sign-in endpoint (`gateway.sign_in`): Windows logon and logoff scripts, and Chromebook
//! and Mac agents, report who signed in on a device over HTTPS:
//!
//! ```text
//! POST /api/v1/sign-in
//! Authorization: Bearer sgs_…
//! {"user": "SCHOOL\\amira.k", "event": "logon", "mac": "02:00:00:00:00:21", "host": "ICT-03"}
//! ```
//!
//! Each source (the logon script of one domain, a sign-in relay) has its own token, kept as
//! its SHA-256 in `tokens_file` (`NAME HASH [relay]` per line; `schoolgate-agent sign-in-token
//! NAME` makes one). The token is checked before the body is read. A device reports the
//! address it connects from, which is the address signed in: a script run by a pupil cannot
//! sign someone in at another machine, even with the school's token. Only a source marked
//! `relay` (a server reporting for many devices, such as a NAC) may name another `address`.
//! Connections are served by `schoolgate-serve`, with its limits on slow and idle clients.
//!
//! A school device away from school reports to the off-site listener instead, by the id its
//! DNS profile carries: `POST /api/v1/sign-in/{device-id}` with the same token and body
//! (without `address`). The person is then signed in on that device wherever it is, and its
//! off-site requests are decided and reported for them; from an address on the school's
//! networks the same report also signs them in at that address, so one logon script serves
//! both.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use schoolgate_people::sessions::{Change, SignIn};
use schoolgate_serve::Peer;
use serde::Deserialize;

use super::sessions::LiveSessions;
use crate::reload::LivePolicy;
use crate::report::metrics::Metrics;

/// The largest request body read.
const MAX_BODY: usize = 4096;
/// The longest tokens file read.
const MAX_TOKENS_FILE: u64 = 1 << 20;
/// What a token starts with.
pub const TOKEN_PREFIX: &str = "sgs_";

/// One source allowed to report sign-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    /// The SHA-256 of its token, as lower-case hex.
    hash: String,
    /// May report for addresses other than its own.
    pub relay: bool,
}

/// Why the tokens file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    #[error("cannot read the sign-in tokens file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: `{text}` is not `NAME SHA256 [relay]` (64 hex digits)", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("cannot use the sign-in certificate: {0}")]
    Tls(#[from] schoolgate_serve::TlsError),
    #[error("cannot listen for sign-ins on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The sources in `path`: `NAME HASH [relay]` per line, `#` comments and blank lines skipped.
pub fn read_tokens(path: &Path) -> Result<Vec<Source>, TokensError> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKENS_FILE).read_to_string(&mut text))
        .map_err(|source| TokensError::Read {
            path: path.to_owned(),
            source,
        })?;
    let mut sources = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let source = match words.as_slice() {
            [name, hash] | [name, hash, "relay"]
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Source {
                    name: (*name).to_owned(),
                    hash: hash.to_ascii_lowercase(),
                    relay: words.len() == 3,
                }
            }
            _ => {
                let mut text: String = line.chars().take(80).collect();
                // Never echo a token pasted in by mistake.
                if text.contains(TOKEN_PREFIX) {
                    text = "(a line holding a token: put its hash here, not the token)".into();
                }
                return Err(TokensError::Line {
                    path: path.to_owned(),
                    line: i + 1,
                    text,
                });
            }
        };
        sources.push(source);
    }
    Ok(sources)
}

/// A new token and the line for the tokens file that admits it.
pub fn new_token(name: &str, relay: bool) -> (String, String) {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    // The system's generator does not fail on Linux once the kernel has seeded it.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let line = format!(
        "{name} {}{}",
        hash(&token),
        if relay { " relay" } else { "" }
    );
    (token, line)
}

use schoolgate_serve::secret::{hex, token_hash as hash};

/// What the endpoint needs.
#[derive(Debug)]
pub struct Endpoint {
    pub sources: Vec<Source>,
    pub sessions: Arc<LiveSessions>,
    pub live: Arc<LivePolicy>,
    pub metrics: Arc<Metrics>,
}

/// A report, as a script sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    user: String,
    event: Event,
    #[serde(default)]
    address: Option<IpAddr>,
    #[serde(default)]
    mac: Option<String>,
    /// The device's name, kept as the session's id.
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Event {
    Logon,
    Logoff,
}

impl Endpoint {
    /// The endpoint `config` describes, its sources read from the tokens file.
    pub fn new(
        config: &schoolgate_engine::policy::gateway::SignInEndpoint,
        sessions: Arc<LiveSessions>,
        live: Arc<LivePolicy>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TokensError> {
        Ok(Arc::new(Self {
            sources: read_tokens(&config.tokens_file)?,
            sessions,
            live,
            metrics,
        }))
    }
}

/// The endpoint's routes.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/api/v1/sign-in", post(report))
        .with_state(endpoint)
        .layer(axum::middleware::from_fn(schoolgate_serve::catch_panic))
}

/// The route the off-site listener adds for school devices away from school.
pub fn device_router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/api/v1/sign-in/{id}", post(report_from_device))
        .with_state(endpoint)
        .layer(axum::middleware::from_fn(schoolgate_serve::catch_panic))
}

async fn report(State(endpoint): State<Arc<Endpoint>>, req: Request) -> Response {
    take(&endpoint, req, None).await
}

async fn report_from_device(
    State(endpoint): State<Arc<Endpoint>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    take(&endpoint, req, Some(&id)).await
}

fn refuse(endpoint: &Endpoint, status: StatusCode, result: &'static str, why: &str) -> Response {
    endpoint.metrics.sign_in(result);
    (status, why.to_owned()).into_response()
}

/// Takes one report: at the address it comes from (or a relay's `address`), or on the
/// device whose off-site id is `device`.
async fn take(endpoint: &Arc<Endpoint>, req: Request, device: Option<&str>) -> Response {
    let endpoint = Arc::clone(endpoint);
    let Some(Peer(peer)) = req.extensions().get::<Peer>().copied() else {
        return refuse(
            &endpoint,
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "no peer",
        );
    };
    // The token first: nothing of the body is parsed for a request without one.
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Hashes are compared, as the console compares its agents': how long a comparison takes
    // tells nothing about a token, only about its hash.
    let hashed = token.map(hash);
    let source = hashed
        .as_deref()
        .and_then(|h| endpoint.sources.iter().find(|s| s.hash == h));
    let Some(source) = source.cloned() else {
        // What was sent (at most the largest report) is taken and dropped, so the refusal
        // reaches the client: over HTTP/2 an answer before the body ends is a reset stream,
        // which clients report as a broken connection rather than as the 401.
        let _ = axum::body::to_bytes(req.into_body(), MAX_BODY).await;
        return refuse(
            &endpoint,
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "A valid sign-in token is needed.\n",
        );
    };
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                &endpoint,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "The report is too large.\n",
            );
        }
    };
    let report: Report = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let why = format!(
                "The report is not {{user, event: logon|logoff, address?, mac?, host?}}: {e}\n"
            );
            return refuse(&endpoint, StatusCode::BAD_REQUEST, "malformed", &why);
        }
    };
    let peer_ip = peer.ip().to_canonical();
    let policy = endpoint.live.current();
    // A device away from school: the id as the policy spells it, and the address only when
    // it reports from the school's networks.
    let device = match device {
        None => None,
        Some(id) => {
            let entry = policy
                .off_site_device(id)
                .and_then(|i| policy.device(i.device?))
                .and_then(|d| d.off_site_id.clone());
            let Some(id) = entry else {
                return refuse(
                    &endpoint,
                    StatusCode::FORBIDDEN,
                    "unknown_device",
                    "No device has this id.\n",
                );
            };
            if report.address.is_some() {
                return refuse(
                    &endpoint,
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "A device away from school reports no `address`.\n",
                );
            }
            Some(id)
        }
    };
    let address = report.address.map_or(peer_ip, |a| a.to_canonical());
    let addresses = match device {
        Some(_) if !policy.serves(address) => Vec::new(),
        _ => vec![address],
    };
    if address != peer_ip && !source.relay {
        return refuse(
            &endpoint,
            StatusCode::FORBIDDEN,
            "not_own_address",
            "A device reports the address it connects from; only a relay source may name another.\n",
        );
    }
    let mac = match report.mac.as_deref().map(parse_mac) {
        Some(None) => {
            return refuse(
                &endpoint,
                StatusCode::BAD_REQUEST,
                "malformed",
                "`mac` is not a MAC address.\n",
            );
        }
        Some(Some(m)) => Some(m),
        None => None,
    };
    let Some((username, known)) = endpoint.sessions.username(&report.user) else {
        return refuse(
            &endpoint,
            StatusCode::BAD_REQUEST,
            "bad_user",
            "`user` is not a username.\n",
        );
    };
    let origin = format!("sign-in {}", source.name);
    let changes = match report.event {
        Event::Logon => endpoint.sessions.sign_in(
            &policy,
            SignIn {
                username,
                addresses,
                device,
                mac,
                source: origin,
                id: report.host,
            },
            crate::clock::now(),
        ),
        Event::Logoff => {
            let mut changes = Vec::new();
            if let Some(id) = &device {
                changes = endpoint.sessions.sign_out_device(&policy, &username, id);
            }
            if !addresses.is_empty() {
                changes.extend(
                    endpoint
                        .sessions
                        .sign_out(&policy, &username, &addresses, &origin),
                );
            }
            changes
        }
    };
    endpoint.metrics.sessions_ended(&changes);
    if changes.iter().any(|c| matches!(c, Change::Full(_))) {
        return refuse(
            &endpoint,
            StatusCode::SERVICE_UNAVAILABLE,
            "full",
            "Too many people are signed in.\n",
        );
    }
    let result = match (report.event, known) {
        (Event::Logoff, _) => "signed_out",
        (Event::Logon, true) => "signed_in",
        (Event::Logon, false) => "unknown_user",
    };
    endpoint.metrics.sign_in(result);
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_default()
}

/// `02:00:00:00:00:21` or `02-00-00-00-00-21`, any case.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.trim().split([':', '-']);
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_kept_as_hashes_one_source_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let (token, line) = new_token("logon-script", false);
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 68);
        let (_, relay) = new_token("nac", true);
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("# sources\n{line}\n\n{relay}\n")).unwrap();
        let sources = read_tokens(&path).unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].hash, hash(&token));
        assert!(!sources[0].relay && sources[1].relay);
        // A token pasted where its hash belongs is refused without being repeated.
        std::fs::write(&path, format!("script {token}\n")).unwrap();
        let e = read_tokens(&path).unwrap_err().to_string();
        assert!(e.contains(":1:") && !e.contains(&token), "{e}");
    }

    #[test]
    fn macs_in_both_spellings() {
        assert_eq!(parse_mac("02:00:00:00:00:2A"), Some([2, 0, 0, 0, 0, 0x2a]));
        assert_eq!(parse_mac("02-00-00-00-00-2a"), Some([2, 0, 0, 0, 0, 0x2a]));
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "0g:00:00:00:00:00",
            "2:0:0:0:0:0",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}

//! The resolver for school devices away from school: DNS over TLS (RFC 7858) and DNS over
//! HTTPS (RFC 8484), each request decided for the device named by its off-site id with the
//! same policy, schedules and calendar as at school.
//!
//! - DNS over TLS carries the id as the first label of the name the device asks by
//!   (`{id}.dns.school.example`, the convention Android's Private DNS and AdGuard's ClientIDs
//!   use). An id no device has is refused in the handshake: no certificate is offered.
//! - DNS over HTTPS carries it in the path: `/dns-query/{id}`, by GET (`?dns=` base64url) or
//!   POST (`application/dns-message`). An unknown id is 403; a malformed request gets the
//!   status RFC 8484 and HTTP give it (400, 405, 413, 414, 415).
//! - A device whose profile points here asks here at school too: from an address on the
//!   school's networks it is judged and reported as at school (its address, who is signed
//!   in there), its group still the one its id names.
//! - Each id has its own token bucket (`gateway.off_site.rate_limit`): over it, DoH answers
//!   429 and DoT answers nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use schoolgate_engine::policy::gateway::OffSite as Settings;
use schoolgate_gateway::dns::ratelimit::SharedLimiter;
use schoolgate_serve::{Peer, SingleCert, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

use super::server::Resolver;

/// The largest DNS message (the two-byte length of DNS over TCP and TLS).
const MAX_MESSAGE: usize = 65_535;
/// The longest `dns` parameter a GET may carry: 6 KiB of query in base64url. A query is one
/// question and its EDNS options, a few hundred bytes; longer ones come by POST (and HTTP/2
/// refuses a head over 16 KiB before it gets here).
const MAX_GET_PARAM: usize = 8192;
/// A DNS over TLS connection with no query for this long is closed (RFC 7858 §3.4 leaves it
/// to the server; Unbound closes after 30 s of quiet on a busy server, we do sooner).
const DOT_IDLE: Duration = Duration::from_secs(20);
/// DNS over TLS connections open at once: beyond it new ones are closed at once.
const DOT_CONNECTIONS: usize = 2048;
/// The media type of a DNS message (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";

/// What both listeners share: the resolver, the server's name and the buckets per id.
#[derive(Debug)]
pub struct OffSite {
    resolver: Arc<Resolver>,
    /// Lower case, without the final dot.
    server_name: String,
    /// By the id's FNV-1a hash: no allocation per request, and a collision between two of a
    /// school's ids only shares a bucket.
    limiter: SharedLimiter<u64>,
}

/// Why a request from away is not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No device has this id (or it was revoked: taken out of the policy).
    UnknownId,
    /// The id asked more than its rate allows.
    RateLimited,
    /// The resolver sends nothing for it (it was not a query).
    NoAnswer,
}

impl OffSite {
    pub fn new(resolver: Arc<Resolver>, settings: &Settings) -> Arc<Self> {
        Arc::new(Self {
            resolver,
            server_name: settings.server_name.clone(),
            limiter: SharedLimiter::new(settings.rate_limit),
        })
    }

    /// Answers `query` from the device with off-site id `id`, connected from `peer`.
    pub async fn answer(&self, id: &str, query: &[u8], peer: IpAddr) -> Result<Vec<u8>, Refusal> {
        let shared = &self.resolver.shared;
        let policy = shared.live.current();
        let Some(who) = shared.who_by_id(&policy, id, peer, crate::clock::now()) else {
            shared.metrics.off_site_refused.inc();
            return Err(Refusal::UnknownId);
        };
        let key = schoolgate_engine::fnv::fnv1a(id.bytes().map(|b| b.to_ascii_lowercase()));
        if !self.limiter.allow(key, crate::clock::instant()) {
            shared.metrics.queries_rate_limited.inc();
            return Err(Refusal::RateLimited);
        }
        shared.metrics.off_site_queries.inc();
        self.resolver
            .handle_as(query, &policy, &who)
            .await
            .ok_or(Refusal::NoAnswer)
    }

    /// The device id a DNS over TLS client named: the first label of `{id}.{server_name}`.
    pub fn id_in_server_name<'a>(&self, sni: &'a str) -> Option<&'a str> {
        let (id, rest) = sni.split_once('.')?;
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        rest.eq_ignore_ascii_case(&self.server_name).then_some(id)
    }
}

/// Offers the certificate only to a handshake naming a known device: `{id}.{server_name}`
/// for DNS over TLS. Any other name (or none) gets no certificate, so the handshake fails.
#[derive(Debug)]
struct ByDevice {
    off_site: Arc<OffSite>,
    key: Arc<CertifiedKey>,
}

impl ResolvesServerCert for ByDevice {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let id = self.off_site.id_in_server_name(hello.server_name()?)?;
        let shared = &self.off_site.resolver.shared;
        if shared.live.current().off_site_device(id).is_none() {
            shared.metrics.off_site_refused.inc();
            debug!(id, "dns over tls: unknown device id");
            return None;
        }
        Some(Arc::clone(&self.key))
    }
}

/// The DNS over TLS server's TLS settings: the certificate only for known devices' names.
pub fn dot_tls(
    off_site: &Arc<OffSite>,
    key: Arc<CertifiedKey>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let by_device = ByDevice {
        off_site: Arc::clone(off_site),
        key,
    };
    schoolgate_serve::server_config(Arc::new(by_device), &[b"dot"])
}

/// The DNS over HTTPS server's TLS settings: HTTP/2 and HTTP/1.1, any name.
pub fn doh_tls(key: Arc<CertifiedKey>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    schoolgate_serve::server_config(Arc::new(SingleCert(key)), &[b"h2", b"http/1.1"])
}

/// Serves DNS over TLS on `listener` until the task is aborted.
pub async fn serve_dot(
    listener: TcpListener,
    off_site: Arc<OffSite>,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let open = Arc::new(tokio::sync::Semaphore::new(DOT_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "dns over tls: accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            continue;
        };
        // Each answer is its own small TLS record: without this it waits on the client's
        // delayed ACK behind the one before.
        let _ = tcp.set_nodelay(true);
        let (acceptor, off_site) = (acceptor.clone(), Arc::clone(&off_site));
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(DOT_IDLE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "dns over tls: handshake");
                    return;
                }
                Err(_) => return,
            };
            let id = tls
                .get_ref()
                .1
                .server_name()
                .and_then(|n| off_site.id_in_server_name(n))
                .map(str::to_owned);
            if let Some(id) = id {
                dot_connection(tls, &id, peer.ip(), &off_site).await;
            }
        });
    }
}

/// Queries on one DNS over TLS connection, answered in turn until it ends or goes quiet.
async fn dot_connection<S>(mut tls: S, id: &str, peer: IpAddr, off_site: &OffSite)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(DOT_IDLE, tls.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let len = usize::from(u16::from_be_bytes(len));
        let Some(query) = buf.get_mut(..len) else {
            return;
        };
        match tokio::time::timeout(DOT_IDLE, tls.read_exact(query)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let answer = match off_site.answer(id, query, peer).await {
            Ok(a) => a,
            // The device was known at the handshake; revoked since, it is cut off.
            Err(Refusal::UnknownId) => return,
            Err(Refusal::RateLimited | Refusal::NoAnswer) => continue,
        };
        let Ok(n) = u16::try_from(answer.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&answer);
        if tls.write_all(&framed).await.is_err() || tls.flush().await.is_err() {
            return;
        }
    }
}

/// The DNS over HTTPS routes.
pub fn doh_router(off_site: Arc<OffSite>) -> Router {
    Router::new()
        .route(
            "/dns-query/{id}",
            axum::routing::get(doh_get).post(doh_post),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE))
        .layer(axum::middleware::from_fn(schoolgate_serve::catch_panic))
        .with_state(off_site)
}

#[derive(Debug, serde::Deserialize)]
struct GetParams {
    dns: Option<String>,
}

async fn doh_get(
    State(off_site): State<Arc<OffSite>>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(id): Path<String>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(GetParams { dns: Some(dns) })) = params else {
        return refuse(StatusCode::BAD_REQUEST, "a GET needs the query in `dns`");
    };
    if dns.len() > MAX_GET_PARAM {
        return refuse(StatusCode::URI_TOO_LONG, "the query is too long");
    }
    let Some(query) = base64url(&dns) else {
        return refuse(StatusCode::BAD_REQUEST, "`dns` is not base64url");
    };
    doh_answer(&off_site, &id, &query, peer.ip()).await
}

async fn doh_post(
    State(off_site): State<Arc<OffSite>>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim());
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/dns-message",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return refuse(e.status(), "the query could not be read"),
    };
    doh_answer(&off_site, &id, &body, peer.ip()).await
}

async fn doh_answer(off_site: &OffSite, id: &str, query: &[u8], peer: IpAddr) -> Response {
    if query.len() < 12 {
        return refuse(StatusCode::BAD_REQUEST, "not a DNS message");
    }
    match off_site.answer(id, query, peer).await {
        Ok(answer) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE))],
            answer,
        )
            .into_response(),
        Err(Refusal::UnknownId) => refuse(StatusCode::FORBIDDEN, "unknown device"),
        Err(Refusal::RateLimited) => refuse(StatusCode::TOO_MANY_REQUESTS, "slow down"),
        Err(Refusal::NoAnswer) => refuse(StatusCode::BAD_REQUEST, "not a DNS query"),
    }
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

/// Base64url without padding (RFC 4648 §5, as RFC 8484 §4.1 asks); padding is accepted
/// too. `None` for any other character.
pub fn base64url(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    // One character left over holds fewer than eight bits: not an encoding of bytes.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_reads_rfc_8484s_example_and_refuses_the_rest() {
        // RFC 8484 §4.1.1: www.example.com A, ID 0.
        let q = base64url("AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB").unwrap();
        assert_eq!(q.len(), 33);
        assert_eq!(q.get(12..16), Some(&b"\x03www"[..]));
        assert_eq!(base64url("AAABAA=="), Some(vec![0, 0, 1, 0]));
        assert_eq!(base64url("AAAB+AAB"), None, "+ is base64, not base64url");
        assert_eq!(base64url("AAAB/AAB"), None);
        assert_eq!(base64url("A"), None, "six bits are no byte");
        assert_eq!(base64url(""), Some(Vec::new()));
    }
}

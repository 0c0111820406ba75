//! HTTP(S) serving for the console and the agent's sign-in endpoint. Connections: accepted,
//! TLS-wrapped, handed to hyper, and bounded so that slow or idle clients cannot hold the
//! server: a head must arrive within [`Limits::head`], a request
//! (body included) be answered within [`Limits::request`], a connection with nothing sent
//! either way for [`Limits::idle`] is closed, and at most [`Limits::connections`] are open
//! at once, [`Limits::per_address`] of them from one address (an IPv6 /64). A connection
//! over a limit is closed at once, so the rest keep being served.
//!
//! [`secret`]: tokens kept as the hex of their SHA-256, for the console and the agent alike.

pub mod secret;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::warn;

/// The address a request came from (the TCP peer), as an axum extension on every request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// How long and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From connecting (or the last answer) to a whole request head.
    pub head: Duration,
    /// From the head to the answer's head: the body read and the page made.
    pub request: Duration,
    /// Nothing read or written for this long closes the connection (the live alert stream
    /// sends a comment every 15 s, so it stays open).
    pub idle: Duration,
    /// Connections open at once; keep it well under the process's open-file limit (the
    /// unit's `LimitNOFILE`).
    pub connections: usize,
    /// Connections open at once from one address (an IPv6 /64), except trusted proxies.
    pub per_address: usize,
    /// Whether HTTP/2 is spoken besides HTTP/1.1 (chosen by TLS's ALPN, which the TLS
    /// configuration must offer): DNS over HTTPS clients want it. Off, every connection is
    /// HTTP/1.1 with its head's deadline.
    pub http2: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            connections: 1024,
            per_address: 64,
            http2: false,
        }
    }
}

/// Answers 408 when a request (its body included) is not answered within the limit.
pub async fn time_limit(limit: Duration, req: axum::extract::Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "The request took too long.").into_response(),
    }
}

/// Answers 500 for a handler that panicked (a bug, which the log names), instead of
/// dropping the connection: one bad request cannot take a page or an agent down with it.
pub async fn catch_panic(req: axum::extract::Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let path = req.uri().path().to_owned();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(res) => res,
        Err(_) => {
            tracing::error!(%path, "a request handler panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong; see the console's log.",
            )
                .into_response()
        }
    }
}

/// Open connections, in all and per address.
#[derive(Debug, Default)]
struct Open {
    all: usize,
    by_address: HashMap<String, usize>,
}

/// One connection's place among the open ones, given back when it closes.
#[derive(Debug)]
struct Slot {
    open: Arc<Mutex<Open>>,
    key: Option<String>,
}

impl Slot {
    /// A place for a connection from `key` (`None`: a trusted proxy, no per-address count).
    fn take(open: &Arc<Mutex<Open>>, key: Option<String>, limits: &Limits) -> Option<Self> {
        let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
        if o.all >= limits.connections {
            return None;
        }
        if let Some(k) = &key {
            let n = o.by_address.entry(k.clone()).or_default();
            if *n >= limits.per_address {
                return None;
            }
            *n += 1;
        }
        o.all += 1;
        Some(Self {
            open: Arc::clone(open),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        o.all = o.all.saturating_sub(1);
        if let Some(k) = &self.key
            && let Some(n) = o.by_address.get_mut(k)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.by_address.remove(k);
            }
        }
    }
}

/// A stream that notes when bytes last moved either way.
#[derive(Debug)]
struct Watched<S> {
    inner: S,
    start: Instant,
    /// Milliseconds after `start` of the last read or write.
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves: TLS if `tls` is given, within
/// `limits`. Connections from `trusted` addresses (the TLS proxy in front) are not counted
/// per address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    trusted: Arc<[IpAddr]>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let open = Arc::new(Mutex::new(Open::default()));
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        time_limit(limits.request, req, next)
    }));
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        // An answer is written in parts (TLS records; HTTP/2's HEADERS and DATA frames):
        // with Nagle's algorithm the second waits for the client's delayed ACK, 40 ms.
        let _ = tcp.set_nodelay(true);
        let key = (!trusted.contains(&addr.ip())).then(|| address_key(addr.ip()));
        let Some(slot) = Slot::take(&open, key, &limits) else {
            tracing::debug!(%addr, "connection refused: too many open");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(
            router.clone().layer(axum::Extension(Peer(addr))),
        );
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let start = Instant::now();
            let last = Arc::new(AtomicU64::new(0));
            let result = match acceptor {
                Some(a) => match tokio::time::timeout(limits.head, a.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let io = Watched {
                            inner: tls,
                            start,
                            last: Arc::clone(&last),
                        };
                        connection(io, service, &limits, start, &last).await
                    }
                    _ => return,
                },
                None => {
                    let io = Watched {
                        inner: tcp,
                        start,
                        last: Arc::clone(&last),
                    };
                    connection(io, service, &limits, start, &last).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %addr, "connection");
            }
        });
    }
}

/// One connection, until it ends or has been idle too long.
async fn connection<S, Svc>(
    io: S,
    service: Svc,
    limits: &Limits,
    start: Instant,
    last: &AtomicU64,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let tick = (limits.idle / 4).max(Duration::from_millis(10));
    let io = hyper_util::rt::TokioIo::new(io);
    let conn: Pin<Box<dyn std::future::Future<Output = Result<(), _>> + Send>> = if limits.http2 {
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.head);
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(64);
        Box::pin(builder.serve_connection(io, service).into_owned())
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.head);
        let conn = builder.serve_connection(io, service);
        Box::pin(async move { conn.await.map_err(Into::into) })
    };
    tokio::pin!(conn);
    loop {
        tokio::select! {
            r = &mut conn => return r,
            () = tokio::time::sleep(tick) => {
                let idle_ms = u64::try_from(start.elapsed().as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(last.load(Ordering::Relaxed));
                if Duration::from_millis(idle_ms) >= limits.idle {
                    return Ok(());
                }
            }
        }
    }
}

/// A TLS server configuration from PEM files, for HTTP/1.1.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config(
        Arc::new(SingleCert(certified_key(cert, key)?)),
        &[b"http/1.1"],
    )
}

/// A certificate chain and its private key from PEM files, checked to belong together.
pub fn certified_key(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: cert.to_owned(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        path: key.to_owned(),
        source,
    })?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(rustls::sign::CertifiedKey::from_der(
        certs, key, &provider,
    )?))
}

/// A TLS server configuration (TLS 1.2 and 1.3 on ring) whose certificate `resolver`
/// chooses for each handshake, offering the application protocols `alpn`.
pub fn server_config(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// One certificate for every handshake, whatever name it asks for.
#[derive(Debug)]
pub struct SingleCert(pub Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The key an address is counted and throttled by: an IPv4 address itself, an IPv6 address's
/// /64 (one host usually holds a whole /64, so single addresses would give it millions of
/// keys).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                let prefix = std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// A server's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Pem {
        path: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

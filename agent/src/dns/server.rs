//! The resolver's sockets: UDP and TCP on every listen address, IPv4 and IPv6.
//!
//! Each request is rate-limited per client, planned by [`plan`](super::plan::plan) against the
//! policy in force, and answered directly or after asking the upstream resolvers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, warn};

use super::cache::Cache;
use super::plan::{Plan, Request, Settings, answer, plan};
use super::ratelimit::RateLimiter;
use super::upstream::Upstream;
use crate::events::{Event, Kind, Severity};
use crate::metrics::RuleLabels;
use crate::shared::Shared;

/// A UDP answer without EDNS may be at most this long (RFC 1035).
const UDP_PLAIN_MAX: usize = 512;
/// The most we send over UDP even when a client offers more, to avoid fragmentation.
const UDP_EDNS_MAX: usize = 1232;
/// A TCP connection with nothing to say for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How many upstream answers the resolver's own cache keeps.
pub const CACHE_CAPACITY: usize = 65_536;

/// Everything a request needs, shared by every listener.
#[derive(Debug)]
pub struct Resolver {
    pub shared: Arc<Shared>,
    pub settings: Settings,
    pub upstream: Upstream,
    pub cache: Cache,
    limiter: Mutex<RateLimiter>,
}

impl Resolver {
    pub fn new(
        shared: Arc<Shared>,
        settings: Settings,
        upstream: Upstream,
        rate_limit: u32,
    ) -> Self {
        Self {
            shared,
            settings,
            upstream,
            cache: Cache::new(CACHE_CAPACITY),
            limiter: Mutex::new(RateLimiter::new(rate_limit)),
        }
    }

    /// Answers one request from `peer`; `None` means send nothing.
    pub async fn handle(&self, bytes: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let ip = peer.ip().to_canonical();
        let metrics = &self.shared.metrics;
        let allowed = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(ip, Instant::now());
        if !allowed {
            debug!(%ip, "rate limited");
            metrics.query("rate_limited");
            return None;
        }
        let policy = self.shared.live.current();
        let now = Timestamp::now();
        let who = self.shared.who(&policy, ip, now);
        if policy.serves(ip) {
            self.shared
                .note_presence(&policy, &who, now, "asked the school's DNS");
        }
        match plan(bytes, &who.client, false, &policy, &self.settings, now) {
            Plan::Reply { bytes, blocked } => {
                match blocked {
                    Some(b) => {
                        metrics.query("blocked");
                        let rule = b.rule.as_deref().unwrap_or("quarantine");
                        metrics
                            .blocked
                            .get_or_create(&RuleLabels {
                                rule: rule.to_owned(),
                            })
                            .inc();
                        debug!(client = %ip, name = %b.name, rule, "blocked");
                        let mut e = Event::new(Kind::Blocked, now, Severity::Low);
                        e.device = who.device;
                        e.group = who.group;
                        e.name = Some(b.name);
                        e.rule = b.rule;
                        e.evidence = Some("DNS query".to_owned());
                        self.shared.events.sighting(e);
                    }
                    None => metrics.query("local"),
                }
                Some(bytes)
            }
            Plan::Forward { request, strip_ech } => {
                metrics.query("forwarded");
                let name = request.query.name().clone();
                self.forward(&request, name, None, strip_ech).await
            }
            Plan::Rewrite { request, target } => {
                metrics.query("safe_search");
                let cname = Record::from_rdata(
                    request.query.name().clone(),
                    300,
                    RData::CNAME(CNAME(target.clone())),
                );
                self.forward(&request, target, Some(cname), false).await
            }
            Plan::Drop => {
                metrics.query("dropped");
                None
            }
        }
    }
}

impl Resolver {
    /// Asks the cache, then upstream, for `name` (the request's own name, or a safe-search
    /// target) and answers `request` with `first` (the rewrite's CNAME), then the records
    /// found; SERVFAIL if the upstreams fail.
    async fn forward(
        &self,
        request: &Request,
        name: Name,
        first: Option<Record>,
        strip_ech: bool,
    ) -> Option<Vec<u8>> {
        let metrics = &self.shared.metrics;
        let rtype = request.qtype();
        let started = Instant::now();
        let resolved = match self.cache.get(&name, rtype, started) {
            Some(hit) => {
                metrics.cache_hits.inc();
                Ok(hit)
            }
            None => {
                metrics.cache_misses.inc();
                let result = self.upstream.resolve(name.clone(), rtype).await;
                let done = Instant::now();
                metrics
                    .upstream_latency
                    .observe(done.duration_since(started).as_secs_f64());
                if let Ok(r) = &result {
                    self.cache.put(&name, rtype, r, done);
                }
                result
            }
        };
        let message = match resolved {
            Ok(r) => {
                let records = first.into_iter().chain(r.answers).collect();
                let mut m = answer(request, r.code, records, strip_ech);
                m.insert_authorities(r.authorities);
                m
            }
            Err(e) => {
                metrics.upstream_errors.inc();
                warn!(error = %e, "upstream failed");
                answer(request, ResponseCode::ServFail, Vec::new(), false)
            }
        };
        message.to_vec().ok()
    }
}

/// Serves UDP on `socket` until the task is dropped.
pub async fn serve_udp(socket: UdpSocket, resolver: Arc<Resolver>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "udp receive");
                continue;
            }
        };
        let Some(request) = buf.get(..n).map(<[u8]>::to_vec) else {
            continue;
        };
        let socket = Arc::clone(&socket);
        let resolver = Arc::clone(&resolver);
        tokio::spawn(async move {
            if let Some(response) = resolver.handle(&request, peer).await {
                let response = fit_udp(&request, response);
                if let Err(e) = socket.send_to(&response, peer).await {
                    debug!(%peer, error = %e, "udp send");
                }
            }
        });
    }
}

/// Serves TCP on `listener` until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let resolver = Arc::clone(&resolver);
                tokio::spawn(async move {
                    if let Err(e) = tcp_connection(stream, peer, resolver).await {
                        debug!(%peer, error = %e, "tcp connection");
                    }
                });
            }
            Err(e) => warn!(error = %e, "tcp accept"),
        }
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    resolver: Arc<Resolver>,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let mut request = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(response) = resolver.handle(&request, peer).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(response.len()) else {
            return Ok(());
        };
        stream.write_u16(len).await?;
        stream.write_all(&response).await?;
    }
}

/// Makes a response fit in one UDP datagram for this client: too long, and it is replaced by a
/// truncated one (TC set) so the client asks again over TCP.
fn fit_udp(request: &[u8], response: Vec<u8>) -> Vec<u8> {
    // Every client takes 512 bytes: only a longer answer needs the request's EDNS size.
    if response.len() <= UDP_PLAIN_MAX {
        return response;
    }
    let limit = match Message::from_vec(request).ok().and_then(|m| m.edns) {
        Some(edns) => usize::from(edns.max_payload()).clamp(UDP_PLAIN_MAX, UDP_EDNS_MAX),
        None => UDP_PLAIN_MAX,
    };
    if response.len() <= limit {
        return response;
    }
    match Message::from_vec(&response) {
        Ok(m) => m.truncate().to_vec().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Binds UDP and TCP on every address. With port 0, TCP takes the port UDP was given.
pub async fn bind(
    addrs: &[SocketAddr],
) -> std::io::Result<Vec<(SocketAddr, UdpSocket, TcpListener)>> {
    let mut out = Vec::new();
    for addr in addrs {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        let tcp = TcpListener::bind(bound).await?;
        out.push((bound, udp, tcp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::RecordType;

    fn request(edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("big.example.").unwrap(),
            RecordType::TXT,
        ));
        m.edns = edns.map(|size| {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e
        });
        m.to_vec().unwrap()
    }

    fn response(n_records: usize) -> Vec<u8> {
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        let name = Name::from_ascii("big.example.").unwrap();
        for i in 0..n_records {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32);
            m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(ip.into())));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn udp_answers_fit_the_client() {
        let small = response(5);
        assert!(small.len() <= UDP_PLAIN_MAX);
        assert_eq!(fit_udp(&request(None), small.clone()), small);
        // About 750 bytes: too long without EDNS, fine with it.
        let medium = response(45);
        assert!(medium.len() > UDP_PLAIN_MAX && medium.len() < UDP_EDNS_MAX);
        let cut = Message::from_vec(&fit_udp(&request(None), medium.clone())).unwrap();
        assert!(cut.metadata.truncation && cut.answers.is_empty());
        assert_eq!(fit_udp(&request(Some(4096)), medium.clone()), medium);
        // A client offering more than 1232 still gets at most 1232.
        let large = response(100);
        let cut = Message::from_vec(&fit_udp(&request(Some(4096)), large)).unwrap();
        assert!(cut.metadata.truncation);
    }
}

//! The resolver's sockets: UDP and TCP on every listen address, IPv4 and IPv6.
//!
//! Each request is rate-limited per client, planned by [`plan`](super::plan::plan) against the
//! policy in force, and answered directly or after asking the upstream resolvers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::cache::{self, AnswerCache, Cache};
use super::plan::{Plan, Request, Settings, answer, plan};
use super::ratelimit::RateLimiter;
use super::upstream::{Resolved, Upstream, UpstreamError};
use super::wire::Template;
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
    pub cache: AnswerCache,
    /// Encoded answers by request shape: a repeated question is answered by copying bytes.
    wire: Cache<WireKey, Arc<Template>>,
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
            cache: AnswerCache::new(CACHE_CAPACITY),
            wire: Cache::new(CACHE_CAPACITY),
            limiter: Mutex::new(RateLimiter::new(rate_limit)),
        }
    }

    /// Answers one request from `peer`; `None` means send nothing.
    pub async fn handle(&self, bytes: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        match self.prepare(bytes, peer) {
            Step::Done(reply) => reply,
            Step::Upstream(ask) => self.ask_upstream(*ask).await,
        }
    }

    /// Everything that needs no waiting: rate limit, who is asking, the plan, and the cache.
    /// Most requests end here; the rest say what to ask upstream.
    pub fn prepare(&self, bytes: &[u8], peer: SocketAddr) -> Step {
        let ip = peer.ip().to_canonical();
        let metrics = &self.shared.metrics;
        let allowed = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(ip, Instant::now());
        if !allowed {
            debug!(%ip, "rate limited");
            metrics.queries_rate_limited.inc();
            return Step::Done(None);
        }
        let policy = self.shared.live.current();
        let now = Timestamp::now();
        let who = self.shared.who(&policy, ip, now);
        self.shared
            .note_presence(&policy, &who, now, "asked the school's DNS");
        match plan(bytes, &who.client, false, &policy, &self.settings, now) {
            Plan::Reply { bytes, blocked } => {
                match blocked {
                    Some(b) => {
                        metrics.queries_blocked.inc();
                        let rule = b.rule.as_deref().unwrap_or("quarantine");
                        metrics
                            .blocked
                            .get_or_create(&RuleLabels {
                                rule: rule.to_owned(),
                            })
                            .inc();
                        debug!(client = %ip, name = %b.name, rule, "blocked");
                        let mut e = Event::new(Kind::Blocked, now, Severity::Low);
                        (e.device, e.group) = self.shared.describe(&policy, &who, now);
                        e.name = Some(b.name);
                        e.rule = b.rule;
                        e.evidence = Some("DNS query".to_owned());
                        self.shared.events.sighting(e);
                    }
                    None => {
                        metrics.queries_local.inc();
                    }
                }
                Step::Done(Some(bytes))
            }
            Plan::Forward { request, strip_ech } => {
                metrics.queries_forwarded.inc();
                let name = request.query.name().clone();
                self.answer_cached(
                    bytes,
                    Ask {
                        request,
                        name,
                        first: None,
                        strip_ech,
                    },
                )
            }
            Plan::Rewrite { request, target } => {
                metrics.queries_safe_search.inc();
                let cname = Record::from_rdata(
                    request.query.name().clone(),
                    300,
                    RData::CNAME(CNAME(target.clone())),
                );
                self.answer_cached(
                    bytes,
                    Ask {
                        request,
                        name: target,
                        first: Some(cname),
                        strip_ech: false,
                    },
                )
            }
            Plan::Drop => {
                metrics.queries_dropped.inc();
                Step::Done(None)
            }
        }
    }
}

/// A request that needs an answer from upstream: `name` (the request's own name, or a
/// safe-search target), and `first` (the rewrite's CNAME) to put before the records found.
#[derive(Debug)]
pub struct Ask {
    request: Request,
    name: Name,
    first: Option<Record>,
    strip_ech: bool,
}

/// Where [`Resolver::prepare`] got to.
#[derive(Debug)]
pub enum Step {
    /// Send this (or nothing).
    Done(Option<Vec<u8>>),
    /// Ask upstream first: [`Resolver::ask_upstream`].
    Upstream(Box<Ask>),
}

impl Resolver {
    fn answer_cached(&self, bytes: &[u8], ask: Ask) -> Step {
        let metrics = &self.shared.metrics;
        let now = Instant::now();
        let key = WireKey::of(&ask);
        if let Some((template, age)) = self.wire.get(&key, now)
            && let Some(out) = template.render(bytes, age)
        {
            metrics.cache_hits.inc();
            return Step::Done(Some(out));
        }
        match self.cache.answer(&ask.name, ask.request.qtype(), now) {
            Some(hit) => {
                metrics.cache_hits.inc();
                let ttl = cache::ttl_of(&hit);
                let out = reply(ask, Ok(hit));
                self.keep_wire(key, out.as_deref(), ttl, now);
                Step::Done(out)
            }
            None => {
                metrics.cache_misses.inc();
                Step::Upstream(Box::new(ask))
            }
        }
    }

    fn keep_wire(&self, key: WireKey, out: Option<&[u8]>, ttl: u32, now: Instant) {
        if let Some(t) = out.and_then(|o| Template::new(o.to_vec())) {
            self.wire.put(key, Arc::new(t), ttl, now);
        }
    }

    /// Asks upstream, caches what comes back, and answers; SERVFAIL if the upstreams fail.
    pub async fn ask_upstream(&self, ask: Ask) -> Option<Vec<u8>> {
        let metrics = &self.shared.metrics;
        let rtype = ask.request.qtype();
        let started = Instant::now();
        let result = self.upstream.resolve(ask.name.clone(), rtype).await;
        let done = Instant::now();
        metrics
            .upstream_latency
            .observe(done.duration_since(started).as_secs_f64());
        match &result {
            Ok(r) => {
                self.cache.keep(&ask.name, rtype, r, done);
                let key = WireKey::of(&ask);
                let ttl = cache::ttl_of(r);
                let out = reply(ask, result);
                self.keep_wire(key, out.as_deref(), ttl, done);
                out
            }
            Err(e) => {
                metrics.upstream_errors.inc();
                warn!(error = %e, "upstream failed");
                reply(ask, result)
            }
        }
    }
}

/// What an encoded answer depends on besides the request's ID, RD flag and letter case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WireKey {
    name: Box<str>,
    qtype: RecordType,
    rewritten: bool,
    strip_ech: bool,
    edns: bool,
}

impl WireKey {
    fn of(ask: &Ask) -> Self {
        Self {
            name: ask.request.name.as_str().into(),
            qtype: ask.request.qtype(),
            rewritten: ask.first.is_some(),
            strip_ech: ask.strip_ech,
            edns: ask.request.message.edns.is_some(),
        }
    }
}

/// The answer to `ask` from what was found.
fn reply(ask: Ask, found: Result<Resolved, UpstreamError>) -> Option<Vec<u8>> {
    let message = match found {
        Ok(r) => {
            let records = ask.first.into_iter().chain(r.answers).collect();
            let mut m = answer(&ask.request, r.code, records, ask.strip_ech);
            m.insert_authorities(r.authorities);
            m
        }
        Err(_) => answer(&ask.request, ResponseCode::ServFail, Vec::new(), false),
    };
    message.to_vec().ok()
}

/// Serves UDP on `socket` on the calling thread until `stop` is set (checked at least every
/// [`UDP_POLL`]). Requests that need no upstream are answered on this thread with one
/// blocking receive and one send each, no wake-ups between threads; the others become tasks
/// on `runtime` so they never hold the loop up.
pub fn serve_udp(
    socket: std::net::UdpSocket,
    resolver: Arc<Resolver>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = socket.set_read_timeout(Some(UDP_POLL)) {
        warn!(error = %e, "udp socket");
        return;
    }
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                warn!(error = %e, "udp receive");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Some(request) = buf.get(..n) else {
            continue;
        };
        match resolver.prepare(request, peer) {
            Step::Done(None) => {}
            Step::Done(Some(response)) => send_udp(&socket, request, response, peer),
            Step::Upstream(ask) => {
                let request = request.to_vec();
                let socket = Arc::clone(&socket);
                let resolver = Arc::clone(&resolver);
                runtime.spawn(async move {
                    if let Some(response) = resolver.ask_upstream(*ask).await {
                        send_udp(&socket, &request, response, peer);
                    }
                });
            }
        }
    }
}

/// How often a UDP thread looks at its stop flag while no request comes.
pub const UDP_POLL: Duration = Duration::from_millis(200);

/// Sends a UDP answer. A UDP send does not wait for the peer, so this never blocks for long
/// even when called from a task.
fn send_udp(socket: &std::net::UdpSocket, request: &[u8], response: Vec<u8>, peer: SocketAddr) {
    let response = fit_udp(request, response);
    if let Err(e) = socket.send_to(&response, peer) {
        debug!(%peer, error = %e, "udp send");
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

/// Binds UDP and TCP on every address: `udp_per_addr` UDP sockets sharing the address
/// (SO_REUSEPORT: the kernel spreads clients over them, so each UDP thread has its own
/// receive loop) and one TCP listener. With port 0, all take the port first given.
pub async fn bind(
    addrs: &[SocketAddr],
    udp_per_addr: usize,
) -> std::io::Result<Vec<(SocketAddr, Vec<std::net::UdpSocket>, TcpListener)>> {
    let mut out = Vec::new();
    for addr in addrs {
        let first = udp_socket(*addr)?;
        let bound = first.local_addr()?;
        let mut udp = vec![first];
        for _ in 1..udp_per_addr.max(1) {
            udp.push(udp_socket(bound)?);
        }
        let tcp = TcpListener::bind(bound).await?;
        out.push((bound, udp, tcp));
    }
    Ok(out)
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
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

//! Asking the upstream resolvers for allowed names: a forwarder of the agent's own over UDP,
//! and TCP when an answer comes back cut. The rules (which upstream, how long to wait, which
//! datagram is the answer) are `schoolgate_gateway::dns::forward`'s; this file owns the
//! sockets, the randomness and the time.
//!
//! - **Sockets.** A few UDP sockets per address family, each on a port the kernel chose at
//!   random, each with a task that reads its answers and hands each to the query waiting
//!   under its ID (and only when it came from the address asked and repeats the question).
//! - **One question asked once.** Requests for a name and type already being asked wait for
//!   that answer instead of asking again (a class opening its laptops asks the same names).
//! - **A bound.** At most [`MAX_IN_FLIGHT`] questions are out at once, each with at most
//!   [`MAX_WAITERS`] requests waiting on it; beyond that a request is shed at once (the
//!   resolver answers SERVFAIL and counts it), so an upstream that is slow or gone never
//!   piles up work, and cached and blocked names keep their pace.
//! - **Failover.** A question goes to the fastest upstream that is not resting; on silence
//!   or a failure, to the next; an upstream that fails three times in a row rests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use ring::rand::{SecureRandom, SystemRandom};
use schoolgate_gateway::dns::forward::{AnswerError, Query, Reply, Upstreams, resolved};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tracing::debug;

pub use schoolgate_gateway::dns::cache::Resolved;

/// Questions out at once, at most.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Requests waiting on one question, at most.
pub const MAX_WAITERS: usize = 256;
/// UDP sockets per address family.
const SOCKETS: usize = 8;
/// The longest a question is worked on, whatever the upstreams do.
const DEADLINE: Duration = Duration::from_secs(3);
/// The longest wait for a TCP answer.
const TCP_WAIT: Duration = Duration::from_secs(2);
/// The largest answer read, over UDP or TCP.
const MAX_ANSWER: usize = 65_535;

/// Why an upstream answer could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    #[error("no upstream answered in time")]
    Silent,
    #[error("the upstreams answered {0}")]
    Answered(ResponseCode),
    #[error("the upstream's answer does not parse")]
    Unreadable,
    #[error("cannot reach the upstream: {0}")]
    Io(std::io::ErrorKind),
    #[error("too many questions are out already")]
    Shed,
}

/// Why the upstream resolvers could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("no upstream resolvers configured (set gateway.dns.upstreams or --upstream)")]
    NoServers,
    #[error("cannot open a socket for the upstream resolvers: {0}")]
    Socket(#[source] std::io::Error),
    #[error("upstream lookup of {name} {rtype} failed: {failure}")]
    Lookup {
        name: String,
        rtype: RecordType,
        failure: Failure,
    },
}

impl UpstreamError {
    /// Whether the request was shed for load rather than failed upstream.
    pub fn shed(&self) -> bool {
        matches!(
            self,
            Self::Lookup {
                failure: Failure::Shed,
                ..
            }
        )
    }
}

/// What the forwarder has counted since it started.
#[derive(Debug, Default)]
pub struct Counts {
    /// Questions sent upstream (a retry counts again).
    pub sent: AtomicU64,
    /// Requests that joined a question already out.
    pub joined: AtomicU64,
    /// Requests shed for load.
    pub shed: AtomicU64,
    /// Datagrams on the forwarder's sockets that answered nothing asked.
    pub stray: AtomicU64,
    /// Questions asked again over TCP after a cut answer.
    pub tcp: AtomicU64,
}

/// The upstream resolvers.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

type Key = (Name, RecordType);
type Shared = Result<Resolved, Failure>;

struct Inner {
    max_in_flight: usize,
    upstreams: Mutex<Upstreams>,
    v4: Vec<Arc<Port>>,
    v6: Vec<Arc<Port>>,
    in_flight: Mutex<HashMap<Key, Vec<oneshot::Sender<Shared>>>>,
    random: Mutex<Random>,
    counts: Counts,
}

/// One UDP socket and the queries waiting for answers on it, by ID.
struct Port {
    socket: UdpSocket,
    waiting: Mutex<HashMap<u16, Waiting>>,
}

struct Waiting {
    to: SocketAddr,
    query: Query,
    answer: oneshot::Sender<(Vec<u8>, Reply)>,
}

impl Upstream {
    /// The forwarder for `servers`; must be called inside a tokio runtime (its sockets'
    /// readers are tasks on it).
    pub fn new(servers: &[SocketAddr]) -> Result<Self, UpstreamError> {
        Self::with_limit(servers, MAX_IN_FLIGHT)
    }

    /// As [`new`](Self::new), with at most `max_in_flight` questions out at once.
    pub fn with_limit(servers: &[SocketAddr], max_in_flight: usize) -> Result<Self, UpstreamError> {
        if servers.is_empty() {
            return Err(UpstreamError::NoServers);
        }
        let ports = |any: SocketAddr, wanted: bool| -> Result<Vec<Arc<Port>>, UpstreamError> {
            if !wanted {
                return Ok(Vec::new());
            }
            (0..SOCKETS)
                .map(|_| {
                    let std = std::net::UdpSocket::bind(any).map_err(UpstreamError::Socket)?;
                    std.set_nonblocking(true).map_err(UpstreamError::Socket)?;
                    let socket = UdpSocket::from_std(std).map_err(UpstreamError::Socket)?;
                    Ok(Arc::new(Port {
                        socket,
                        waiting: Mutex::new(HashMap::new()),
                    }))
                })
                .collect()
        };
        let v4 = ports(
            SocketAddr::from(([0, 0, 0, 0], 0)),
            servers.iter().any(SocketAddr::is_ipv4),
        )?;
        let v6 = ports(
            SocketAddr::from(([0u16; 8], 0)),
            servers.iter().any(SocketAddr::is_ipv6),
        )?;
        let inner = Arc::new(Inner {
            max_in_flight,
            upstreams: Mutex::new(Upstreams::new(servers)),
            v4,
            v6,
            in_flight: Mutex::new(HashMap::new()),
            random: Mutex::new(Random::new()),
            counts: Counts::default(),
        });
        for port in inner.v4.iter().chain(&inner.v6) {
            tokio::spawn(read_answers(Arc::clone(port), Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    /// What the forwarder has counted.
    pub fn counts(&self) -> &Counts {
        &self.inner.counts
    }

    /// Resolves `name`/`rtype`. A name that does not exist, or has no records of that type,
    /// is an answer (NXDOMAIN, or NOERROR with no records), not an error.
    pub async fn resolve(&self, name: Name, rtype: RecordType) -> Result<Resolved, UpstreamError> {
        let admitted = self.admit(&name, rtype)?;
        self.resolve_admitted(name, rtype, admitted).await
    }

    /// Takes `name`/`rtype`'s place among the questions out, or sheds it at once when there
    /// is none (counted). Taken before any task is made for the request, so that a shed one
    /// costs no more than a cached answer.
    pub fn admit(&self, name: &Name, rtype: RecordType) -> Result<Admitted, UpstreamError> {
        Inner::admit(&self.inner, name, rtype).map_err(lookup_error(name, rtype))
    }

    /// Resolves `name`/`rtype` in the place [`admit`](Self::admit) gave it.
    pub async fn resolve_admitted(
        &self,
        name: Name,
        rtype: RecordType,
        admitted: Admitted,
    ) -> Result<Resolved, UpstreamError> {
        let result = match admitted.0 {
            Place::Joined(rx) => rx.await.unwrap_or(Err(Failure::Silent)),
            Place::Lead(mut lead) => {
                lead.result = tokio::time::timeout(DEADLINE, self.inner.ask(&name, rtype))
                    .await
                    .unwrap_or(Err(Failure::Silent));
                lead.result.clone()
            }
        };
        result.map_err(lookup_error(&name, rtype))
    }
}

/// What a failure to resolve `name`/`rtype` is reported as.
fn lookup_error(name: &Name, rtype: RecordType) -> impl FnOnce(Failure) -> UpstreamError {
    move |failure| UpstreamError::Lookup {
        name: name.to_ascii(),
        rtype,
        failure,
    }
}

/// A question's place among those out: asking it, or waiting for the request that does.
/// Dropped unused, it gives the place up (and the requests waiting on it hear a failure).
#[derive(Debug)]
pub struct Admitted(Place);

#[derive(Debug)]
enum Place {
    Lead(Lead),
    Joined(oneshot::Receiver<Shared>),
}

impl Inner {
    fn admit(this: &Arc<Self>, name: &Name, rtype: RecordType) -> Result<Admitted, Failure> {
        let key = (name.to_lowercase(), rtype);
        let mut in_flight = lock(&this.in_flight);
        let full = in_flight.len() >= this.max_in_flight;
        match in_flight.get_mut(&key) {
            Some(waiters) if waiters.len() < MAX_WAITERS => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                this.counts.joined.fetch_add(1, Ordering::Relaxed);
                Ok(Admitted(Place::Joined(rx)))
            }
            Some(_) => Err(this.shed()),
            None if full => Err(this.shed()),
            None => {
                in_flight.insert(key.clone(), Vec::new());
                // Whatever happens from here, the question leaves the table and its waiters
                // hear an answer (a failure if it was dropped).
                Ok(Admitted(Place::Lead(Lead {
                    inner: Arc::clone(this),
                    key: Some(key),
                    result: Err(Failure::Silent),
                })))
            }
        }
    }

    fn shed(&self) -> Failure {
        self.counts.shed.fetch_add(1, Ordering::Relaxed);
        Failure::Shed
    }

    /// Asks the upstreams in turn until one answers.
    async fn ask(&self, name: &Name, rtype: RecordType) -> Shared {
        // Asked in lower case, with 0x20's capitals on top: an upstream that answers in
        // lower case then matches once 0x20 is off for it, whatever case the client used.
        let name = &name.to_lowercase();
        let attempts = lock(&self.upstreams).len().clamp(2, 4);
        let mut case_retried = false;
        let mut tried = 0u64;
        let mut last = Failure::Silent;
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let now = crate::clock::instant();
            let (random, case_bits, id) = {
                let mut r = lock(&self.random);
                (r.u64(), r.u64(), r.u16())
            };
            let chosen = {
                let u = lock(&self.upstreams);
                u.choose(now, tried, random)
                    .or_else(|| u.choose(now, 0, random))
                    .and_then(|i| Some((i, u.addr(i)?, u.wait(i), u.uses_0x20(i))))
            };
            let Some((i, to, wait, case)) = chosen else {
                break;
            };
            tried |= 1u64
                .checked_shl(u32::try_from(i).unwrap_or(64))
                .unwrap_or(0);
            let query = Query::new(name, rtype, id, if case { case_bits } else { 0 });
            self.counts.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.exchange_udp(to, query.clone(), wait).await {
                Ok((datagram, Reply::Answer)) => Ok(datagram),
                Ok((_, Reply::Truncated)) => {
                    self.counts.tcp.fetch_add(1, Ordering::Relaxed);
                    exchange_tcp(to, &query).await
                }
                Ok((_, Reply::CaseChanged)) if !case_retried => {
                    // Once per question: asked again at once, in lower case.
                    debug!(upstream = %to, "the upstream does not keep the letter case");
                    lock(&self.upstreams).drops_case(i);
                    tried &= !(1u64
                        .checked_shl(u32::try_from(i).unwrap_or(64))
                        .unwrap_or(0));
                    case_retried = true;
                    attempt -= 1;
                    continue;
                }
                Ok((_, Reply::CaseChanged)) => Err(Failure::Unreadable),
                Ok((_, Reply::NotOurs)) => Err(Failure::Silent),
                Err(failure) => Err(failure),
            };
            let outcome = outcome.and_then(|datagram| {
                resolved(&datagram).map_err(|e| match e {
                    AnswerError::Failed(code) => Failure::Answered(code),
                    _ => Failure::Unreadable,
                })
            });
            match outcome {
                Ok(r) => {
                    lock(&self.upstreams).answered(i, now.elapsed());
                    return Ok(r);
                }
                Err(failure) => {
                    lock(&self.upstreams).failed(i, crate::clock::instant());
                    last = failure;
                }
            }
        }
        Err(last)
    }

    /// Sends `query` to `to` from one of the sockets and waits up to `wait` for what the
    /// socket's reader hands back.
    async fn exchange_udp(
        &self,
        to: SocketAddr,
        mut query: Query,
        wait: Duration,
    ) -> Result<(Vec<u8>, Reply), Failure> {
        let ports = if to.is_ipv4() { &self.v4 } else { &self.v6 };
        let pick = usize::from(lock(&self.random).u16()) % ports.len().max(1);
        let port = ports
            .get(pick)
            .ok_or(Failure::Io(std::io::ErrorKind::Unsupported))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = lock(&port.waiting);
            // Another query on this socket has the ID: take the next free one.
            while waiting.contains_key(&query.id) {
                query.id = query.id.wrapping_add(1);
                if let Some(b) = query.wire.get_mut(..2) {
                    b.copy_from_slice(&query.id.to_be_bytes());
                }
            }
            waiting.insert(
                query.id,
                Waiting {
                    to,
                    query: query.clone(),
                    answer: tx,
                },
            );
        }
        let id = query.id;
        let result = async {
            port.socket
                .send_to(&query.wire, to)
                .await
                .map_err(|e| Failure::Io(e.kind()))?;
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(Failure::Silent),
            }
        }
        .await;
        lock(&port.waiting).remove(&id);
        result
    }
}

/// The question first asked, while it is out: on drop it leaves the table and its waiters
/// get its result.
struct Lead {
    inner: Arc<Inner>,
    key: Option<Key>,
    result: Shared,
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lead")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let waiters = lock(&self.inner.in_flight).remove(&key).unwrap_or_default();
        for tx in waiters {
            let _ = tx.send(self.result.clone());
        }
    }
}

/// Reads the answers on one socket for as long as the forwarder lives.
async fn read_answers(port: Arc<Port>, inner: std::sync::Weak<Inner>) {
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        let received = port.socket.recv_from(&mut buf).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Ok((n, from)) = received else {
            continue;
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let id = datagram
            .get(..2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes);
        let mut waiting = lock(&port.waiting);
        let reply = id
            .and_then(|id| waiting.get(&id))
            .filter(|w| w.to == from)
            .map(|w| w.query.judge(datagram))
            .unwrap_or(Reply::NotOurs);
        if reply == Reply::NotOurs {
            inner.counts.stray.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(w) = id.and_then(|id| waiting.remove(&id)) {
            let _ = w.answer.send((datagram.to_vec(), reply));
        }
    }
}

/// Asks `query` of `to` over TCP (RFC 7766's two-byte length before each message).
async fn exchange_tcp(to: SocketAddr, query: &Query) -> Result<Vec<u8>, Failure> {
    let io = |e: std::io::Error| Failure::Io(e.kind());
    let exchange = async {
        let mut stream = TcpStream::connect(to).await.map_err(io)?;
        let len = u16::try_from(query.wire.len()).map_err(|_| Failure::Unreadable)?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(&query.wire);
        stream.write_all(&out).await.map_err(io)?;
        let len = stream.read_u16().await.map_err(io)?;
        let mut answer = vec![0u8; usize::from(len)];
        stream.read_exact(&mut answer).await.map_err(io)?;
        match query.judge(&answer) {
            Reply::Answer | Reply::Truncated => Ok(answer),
            Reply::CaseChanged | Reply::NotOurs => Err(Failure::Unreadable),
        }
    };
    tokio::time::timeout(TCP_WAIT, exchange)
        .await
        .unwrap_or(Err(Failure::Silent))
}

/// Random bits for IDs, letter case and the upstream choice: the system's generator, read
/// a few kilobytes at a time.
struct Random {
    system: SystemRandom,
    buf: [u8; 4096],
    at: usize,
}

impl Random {
    fn new() -> Self {
        Self {
            system: SystemRandom::new(),
            buf: [0; 4096],
            at: 4096,
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        if self.at + N > self.buf.len() {
            // The system generator does not fail on Linux; were it to, the bytes left from
            // the last fill are reused rather than stopping DNS.
            let _ = self.system.fill(&mut self.buf);
            self.at = 0;
        }
        let mut out = [0u8; N];
        if let Some(b) = self.buf.get(self.at..self.at + N) {
            out.copy_from_slice(b);
        }
        self.at += N;
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
}

/// Locks `m`, taking the data even if a holder panicked (the tables stay usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    //! The forwarder against upstreams on loopback that misbehave on purpose: silent, slow,
    //! truncating, careless of case, failing.

    use std::net::TcpListener;
    use std::str::FromStr;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, Record};

    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Habit {
        Answer,
        Silent,
        Slow(Duration),
        /// Cut over UDP; the whole answer over TCP.
        Truncate,
        /// The question comes back in lower case.
        LowerCase,
        ServFail,
    }

    /// An upstream on loopback with a habit; counts the questions it gets and keeps their
    /// names as sent.
    struct Fake {
        addr: SocketAddr,
        asked: Arc<AtomicUsize>,
        names: Arc<Mutex<Vec<String>>>,
    }

    fn answer(query: &[u8], habit: Habit, over_tcp: bool) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        let mut r = Message::response(q.metadata.id, q.metadata.op_code);
        let mut question = q.queries[0].clone();
        if habit == Habit::LowerCase {
            question.set_name(question.name().to_lowercase());
        }
        r.add_query(question.clone());
        match habit {
            Habit::ServFail => r.metadata.response_code = ResponseCode::ServFail,
            Habit::Truncate if !over_tcp => r.metadata.truncation = true,
            _ => {
                r.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::A("192.0.2.7".parse().unwrap()),
                ));
            }
        }
        r.to_vec().ok()
    }

    impl Fake {
        fn start(habit: Habit) -> Self {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let asked = Arc::new(AtomicUsize::new(0));
            let names = Arc::new(Mutex::new(Vec::new()));
            let (count, seen) = (Arc::clone(&asked), Arc::clone(&names));
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    count.fetch_add(1, Ordering::SeqCst);
                    if let Ok(q) = Message::from_vec(&buf[..n]) {
                        lock(&seen).push(q.queries[0].name().to_string());
                    }
                    match habit {
                        Habit::Silent => continue,
                        Habit::Slow(d) => std::thread::sleep(d),
                        _ => {}
                    }
                    if let Some(a) = answer(&buf[..n], habit, false) {
                        let _ = socket.send_to(&a, peer);
                    }
                }
            });
            if habit == Habit::Truncate {
                let listener = TcpListener::bind(addr).unwrap();
                std::thread::spawn(move || {
                    for mut stream in listener.incoming().flatten() {
                        use std::io::{Read, Write};
                        let mut len = [0u8; 2];
                        if stream.read_exact(&mut len).is_err() {
                            continue;
                        }
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if stream.read_exact(&mut q).is_err() {
                            continue;
                        }
                        if let Some(a) = answer(&q, Habit::Truncate, true) {
                            let mut out = u16::try_from(a.len()).unwrap().to_be_bytes().to_vec();
                            out.extend(a);
                            let _ = stream.write_all(&out);
                        }
                    }
                });
            }
            Self { addr, asked, names }
        }

        fn asked(&self) -> usize {
            self.asked.load(Ordering::SeqCst)
        }
    }

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    #[tokio::test]
    async fn answers_with_the_name_in_random_case() {
        let up = Fake::start(Habit::Answer);
        let forwarder = Upstream::new(&[up.addr]).unwrap();
        for i in 0..20 {
            let r = forwarder
                .resolve(name(&format!("www{i}.example.com.")), RecordType::A)
                .await
                .unwrap();
            assert_eq!(r.answers.len(), 1);
        }
        // Twenty names of thirteen letters each: some letters went out in capitals.
        let names = lock(&up.names).clone();
        assert_eq!(names.len(), 20);
        assert!(
            names
                .iter()
                .any(|n| n.chars().any(|c| c.is_ascii_uppercase())),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_upstream_is_passed_over() {
        let silent = Fake::start(Habit::Silent);
        let good = Fake::start(Habit::Answer);
        let forwarder = Upstream::new(&[silent.addr, good.addr]).unwrap();
        for i in 0..6 {
            let r = forwarder
                .resolve(name(&format!("n{i}.example.")), RecordType::A)
                .await;
            assert!(r.is_ok(), "{r:?}");
        }
        // The first question waited for the silent one, then went on; the rest went to
        // the one that answers (resting the silent one is `forward`'s, tested there).
        assert!(silent.asked() >= 1);
        assert_eq!(good.asked(), 6);
    }

    #[tokio::test]
    async fn a_cut_answer_is_asked_again_over_tcp() {
        let up = Fake::start(Habit::Truncate);
        let forwarder = Upstream::new(&[up.addr]).unwrap();
        let r = forwarder
            .resolve(name("big.example."), RecordType::A)
            .await
            .unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(forwarder.counts().tcp.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_upstream_that_drops_the_case_is_asked_in_lower_case() {
        let up = Fake::start(Habit::LowerCase);
        let forwarder = Upstream::new(&[up.addr]).unwrap();
        // Asked with capitals, answered in lower case: refused, then asked in lower case.
        let r = forwarder
            .resolve(name("mixedcasename.example."), RecordType::A)
            .await
            .unwrap();
        assert_eq!(r.answers.len(), 1);
        let names = lock(&up.names).clone();
        assert_eq!(names.last().unwrap(), "mixedcasename.example.");
        // A client's capitals are not 0x20's: the question goes out in lower case, and is
        // answered at once rather than asked again until the deadline.
        let started = Instant::now();
        let r = forwarder
            .resolve(name("WWW.Capitals.Example."), RecordType::A)
            .await
            .unwrap();
        assert_eq!(r.answers.len(), 1);
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(lock(&up.names).last().unwrap(), "www.capitals.example.");
    }

    #[tokio::test]
    async fn failures_are_errors_and_both_upstreams_are_tried() {
        let a = Fake::start(Habit::ServFail);
        let b = Fake::start(Habit::ServFail);
        let forwarder = Upstream::new(&[a.addr, b.addr]).unwrap();
        let e = forwarder
            .resolve(name("x.example."), RecordType::A)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                UpstreamError::Lookup {
                    failure: Failure::Answered(ResponseCode::ServFail),
                    ..
                }
            ),
            "{e}"
        );
        assert!(a.asked() >= 1 && b.asked() >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_question_is_asked_once_however_many_wait_for_it() {
        let up = Fake::start(Habit::Slow(Duration::from_millis(100)));
        let forwarder = Upstream::new(&[up.addr]).unwrap();
        let asks: Vec<_> = (0..50)
            .map(|_| {
                let f = forwarder.clone();
                tokio::spawn(
                    async move { f.resolve(name("Popular.example."), RecordType::A).await },
                )
            })
            .collect();
        for a in asks {
            assert!(a.await.unwrap().is_ok());
        }
        assert_eq!(up.asked(), 1);
        assert_eq!(forwarder.counts().joined.load(Ordering::Relaxed), 49);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_bound_requests_are_shed_at_once() {
        let up = Fake::start(Habit::Slow(Duration::from_millis(300)));
        let forwarder = Upstream::with_limit(&[up.addr], 8).unwrap();
        let started = Instant::now();
        let asks: Vec<_> = (0..20)
            .map(|i| {
                let f = forwarder.clone();
                tokio::spawn(async move {
                    let r = f
                        .resolve(name(&format!("q{i}.example.")), RecordType::A)
                        .await;
                    (r, Instant::now())
                })
            })
            .collect();
        let mut shed = 0;
        for a in asks {
            let (r, at) = a.await.unwrap();
            // The first eight wait for the slow upstream (and may run out of time); the
            // rest are shed.
            if let Err(e) = r
                && e.shed()
            {
                // Shed at once, not after waiting for the upstream.
                assert!(at.duration_since(started) < Duration::from_millis(250));
                shed += 1;
            }
        }
        assert_eq!(shed, 12);
        assert_eq!(forwarder.counts().shed.load(Ordering::Relaxed), 12);
    }

    #[tokio::test]
    async fn a_place_is_held_until_used_or_dropped_and_a_question_out_can_be_joined_when_full() {
        let up = Fake::start(Habit::Answer);
        let forwarder = Upstream::with_limit(&[up.addr], 1).unwrap();
        let first = forwarder
            .admit(&name("one.example."), RecordType::A)
            .unwrap();
        // Full: a new question is shed, the same one (in any case) joins.
        let shed = forwarder.admit(&name("two.example."), RecordType::A);
        assert!(shed.is_err_and(|e| e.shed()));
        let joined = forwarder
            .admit(&name("ONE.example."), RecordType::A)
            .unwrap();
        // Dropped unused, the place is free again, and the request that joined hears a
        // failure rather than waiting for ever.
        drop(first);
        let heard = forwarder
            .resolve_admitted(name("one.example."), RecordType::A, joined)
            .await;
        assert!(heard.is_err_and(|e| !e.shed()));
        let second = forwarder
            .admit(&name("two.example."), RecordType::A)
            .unwrap();
        let answered = forwarder
            .resolve_admitted(name("two.example."), RecordType::A, second)
            .await;
        assert!(answered.is_ok());
        assert_eq!(up.asked(), 1);
        assert_eq!(forwarder.counts().shed.load(Ordering::Relaxed), 1);
    }
}

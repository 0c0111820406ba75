//! The resolver's sockets: UDP and TCP on every listen address, IPv4 and IPv6.
//!
//! Each request is rate-limited per client, planned by [`plan`](schoolgate_gateway::dns::plan::plan) against the
//! policy in force, and answered directly or after asking the upstream resolvers.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use jiff::Timestamp;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use schoolgate_engine::Policy;
use schoolgate_engine::policy::gateway::BlockResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::act::{self, Actor, Outcome, Who};
use crate::firewall::learner::Learner;
use crate::report::events::Ticket;
use crate::shared::Shared;
use crate::upstream::{Admitted, Resolved, Upstream, UpstreamError};
use schoolgate_gateway::dns::cache::{self, AnswerCache, Cache};
use schoolgate_gateway::dns::plan::{
    Blocked, Plan, Request, Route, Settings, answer, plan, route, served,
};
use schoolgate_gateway::dns::question::Question;
use schoolgate_gateway::dns::ratelimit::SharedLimiter;
use schoolgate_gateway::dns::tcp::{self, Next, Reassembly};
use schoolgate_gateway::dns::wire::Template;

/// A UDP answer without EDNS may be at most this long (RFC 1035).
const UDP_PLAIN_MAX: usize = 512;
/// The most we send over UDP even when a client offers more, to avoid fragmentation.
const UDP_EDNS_MAX: usize = 1232;
/// A TCP connection with nothing to say for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How much one read from a TCP client takes at most.
const TCP_READ: usize = 16 * 1024;

/// How many upstream answers the resolver's own cache keeps.
pub const CACHE_CAPACITY: usize = 65_536;
/// How many encoded blocked answers are kept.
const BLOCKED_CAPACITY: usize = 16_384;
/// How long an encoded blocked answer is kept (seconds). The decision is taken again for
/// every request; only the bytes are reused, their TTL counting down with their age.
const BLOCKED_KEEP: u32 = 10;

/// Everything a request needs, shared by every listener.
#[derive(Debug)]
pub struct Resolver {
    pub shared: Arc<Shared>,
    /// Where what the resolver saw goes (blocked names, presence).
    pub actor: Arc<Actor>,
    /// Where answers go so the firewall learns their addresses; `None` without a firewall.
    pub learner: Option<Learner>,
    pub settings: Settings,
    pub upstream: Upstream,
    pub cache: AnswerCache,
    /// Encoded answers by request shape: a repeated question is answered by copying bytes.
    wire: Cache<Box<[u8]>, Arc<Template>>,
    /// Encoded blocked answers, by request shape and what the answer says (the rule, or the
    /// quarantine): a blocked name asked again is answered without decoding the request.
    blocked_wire: Cache<Box<[u8]>, Arc<Template>>,
    limiter: SharedLimiter,
    /// Names to ask again before their answers expire, and those already being asked.
    prefetch: std::sync::Mutex<Prefetch>,
}

/// Popular names whose answers are in the last tenth of their TTL: a name asked then is
/// asked often (Unbound's rule), and its next answer is fetched before the cached one ends.
#[derive(Debug, Default)]
struct Prefetch {
    due: Vec<(Name, RecordType)>,
    asking: std::collections::HashSet<(Name, RecordType)>,
}

/// The most names waiting to be prefetched, and being prefetched, at once.
const MAX_PREFETCH: usize = 1024;
/// Answers kept for less than this are not prefetched (they are meant to change).
const MIN_PREFETCH_TTL: u32 = 10;

impl Resolver {
    pub fn new(
        shared: Arc<Shared>,
        actor: Arc<Actor>,
        learner: Option<Learner>,
        settings: Settings,
        upstream: Upstream,
        rate_limit: u32,
    ) -> Self {
        Self {
            shared,
            actor,
            learner,
            settings,
            upstream,
            cache: AnswerCache::new(CACHE_CAPACITY),
            wire: Cache::new(CACHE_CAPACITY),
            blocked_wire: Cache::new(BLOCKED_CAPACITY),
            limiter: SharedLimiter::new(rate_limit),
            prefetch: std::sync::Mutex::new(Prefetch::default()),
        }
    }

    /// The settings a request from `who` is planned with. Away from school a blocked name is
    /// answered NXDOMAIN whatever `block_response` says: the sinkhole is the block page's
    /// address on the school's network, which at home is someone else's (a home router's
    /// page, another device).
    fn settings_for(&self, who: &Who) -> Settings {
        if who.off_site {
            Settings {
                block_response: BlockResponse::Nxdomain,
                sinkhole_v4: None,
                sinkhole_v6: None,
                ..self.settings
            }
        } else {
            self.settings
        }
    }

    /// Notes that an answer for `name`/`rtype` aged `age` of `ttl` seconds was served.
    fn maybe_prefetch(&self, name: &Name, rtype: RecordType, age: u32, ttl: u32) {
        if ttl < MIN_PREFETCH_TTL || u64::from(age) * 10 < u64::from(ttl) * 9 {
            return;
        }
        let mut p = self.prefetch.lock().unwrap_or_else(|e| e.into_inner());
        if p.asking.len() >= MAX_PREFETCH {
            return;
        }
        let key = (name.to_lowercase(), rtype);
        if p.asking.insert(key.clone()) {
            p.due.push(key);
        }
    }

    /// The names due for prefetching, each to be passed to [`refresh`](Self::refresh).
    pub fn take_prefetches(&self) -> Vec<(Name, RecordType)> {
        let mut p = self.prefetch.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut p.due)
    }

    /// Asks upstream for `name`/`rtype` again and keeps the answer.
    pub async fn refresh(&self, name: Name, rtype: RecordType) {
        self.shared.metrics.prefetches.inc();
        if let Ok(r) = self.upstream.resolve(name.clone(), rtype).await {
            if let Some(l) = &self.learner {
                l.answered(&name, &r.answers);
            }
            self.cache.keep(&name, rtype, &r, crate::clock::instant());
        }
        let mut p = self.prefetch.lock().unwrap_or_else(|e| e.into_inner());
        p.asking.remove(&(name, rtype));
    }

    /// Answers one request from `peer`; `None` means send nothing.
    pub async fn handle(&self, bytes: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let step = self.prepare(bytes, peer, Clock::now());
        self.finish(step).await
    }

    /// Answers one request from `who` (a device away from school) under `policy`.
    pub async fn handle_as(&self, bytes: &[u8], policy: &Policy, who: &Who) -> Option<Vec<u8>> {
        let step = self.prepare_as(bytes, policy, who, Clock::now());
        self.finish(step).await
    }

    async fn finish(&self, step: Step) -> Option<Vec<u8>> {
        match step {
            Step::Done(reply) => reply,
            Step::Kept(reply, how) => {
                let mut tally = Tally::default();
                tally.count(how);
                tally.flush(&self.shared.metrics);
                Some(reply)
            }
            Step::AfterJournal(reply, ticket) => {
                if !self.actor.events().journaled(ticket).await {
                    self.shared.metrics.answers_before_journal.inc();
                }
                Some(reply)
            }
            Step::Upstream(ask) => self.ask_upstream(*ask).await,
        }
    }

    /// Everything that needs no waiting: rate limit, who is asking, the plan, and the cache.
    /// Most requests end here; the rest say what to ask upstream.
    pub fn prepare(&self, bytes: &[u8], peer: SocketAddr, clock: Clock) -> Step {
        let ip = peer.ip().to_canonical();
        let metrics = &self.shared.metrics;
        let Clock { instant, now } = clock;
        if !self.limiter.allow(ip, instant) {
            debug!(%ip, "rate limited");
            metrics.queries_rate_limited.inc();
            return Step::Done(None);
        }
        let policy = self.shared.live.current();
        let who = self.shared.who(&policy, ip, now);
        self.prepare_as(bytes, &policy, &who, clock)
    }

    /// [`prepare`](Self::prepare) once the sender is known: presence, supervision, the
    /// kept answers and the plan.
    pub fn prepare_as(&self, bytes: &[u8], policy: &Policy, who: &Who, clock: Clock) -> Step {
        let metrics = &self.shared.metrics;
        let Clock { instant, now } = clock;
        self.actor.act(
            policy,
            who,
            now,
            Outcome::Presence {
                how: "asked the school's DNS",
            },
        );
        // The question read in place, once: for supervision, the kept answers and keeping
        // a blocked answer.
        let question = Question::parse(bytes);
        // Supervised use: every name asked for is recorded (one load while nobody is).
        if who
            .client
            .ip
            .is_some_and(|ip| self.shared.quarantine.supervised_at(ip))
            && let Some(q) = &question
        {
            let name = q.name().to_owned();
            self.actor.act(
                policy,
                who,
                now,
                Outcome::Supervised {
                    name,
                    how: "DNS query",
                },
            );
        }
        if let Some(q) = &question {
            match self.kept_answer(q, bytes, policy, who, now, instant) {
                Some(KeptAnswer::Answer(out, how)) => return Step::Kept(out, how),
                Some(KeptAnswer::Blocked(out, b)) => {
                    return self.blocked(policy, who, now, out, b);
                }
                None => {}
            }
        }
        let quarantined = self.shared.quarantine.contains(&who.client);
        match plan(
            bytes,
            &who.client,
            who.identity,
            quarantined,
            policy,
            &self.settings_for(who),
            now,
        ) {
            Plan::Reply {
                bytes: out,
                blocked,
            } => match blocked {
                Some(b) => {
                    if let Some(q) = &question {
                        self.keep_blocked(q, &out, &b, who.off_site, instant);
                    }
                    self.blocked(policy, who, now, out, BlockedRef::of(&b))
                }
                None => {
                    metrics.queries_local.inc();
                    Step::Done(Some(out))
                }
            },
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
                        quarantined,
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
                        quarantined,
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

impl Resolver {
    /// The answer kept in wire form for a request of the common shape, without decoding it
    /// in full: its question `q` (read in place) is routed by the same [`route`] as [`plan`],
    /// and looked up. `None` sends the request down the full path, which answers it the same way.
    fn kept_answer<'a>(
        &self,
        q: &'a Question,
        bytes: &[u8],
        policy: &'a Policy,
        who: &Who,
        now: Timestamp,
        instant: Instant,
    ) -> Option<KeptAnswer<'a>> {
        // Clients outside the policy's networks are refused on the full path.
        if !served(&who.client, &who.identity, policy) {
            return None;
        }
        let qtype = RecordType::from(q.qtype);
        let quarantined = self.shared.quarantine.contains(&who.client);
        let (key, how) = match route(
            q.name(),
            qtype,
            &who.client,
            who.identity,
            quarantined,
            policy,
            &self.settings_for(who),
            now,
        ) {
            Route::Forward { strip_ech } => (
                WireKey::new(q.name(), qtype, false, strip_ech, q.edns),
                Kept::Forwarded,
            ),
            Route::SafeSearch(_) => (
                WireKey::new(q.name(), qtype, true, false, q.edns),
                Kept::SafeSearch,
            ),
            Route::Block(decision) => {
                let rule = decision.rule_name(policy);
                let quarantined = decision.reason == schoolgate_engine::Reason::Quarantine;
                let key = WireKey::blocked(q, rule, quarantined, who.off_site)?;
                let (template, age, _) = self.blocked_wire.get_aged(key.bytes(), instant)?;
                let out = template.render(bytes, age)?;
                let blocked = BlockedRef {
                    name: q.name(),
                    rule,
                    category: decision.category(policy),
                };
                return Some(KeptAnswer::Blocked(out, blocked));
            }
            _ => return None,
        };
        let (template, age, ttl) = self.wire.get_aged(key?.bytes(), instant)?;
        if u64::from(age) * 10 >= u64::from(ttl) * 9
            && let Ok(mut name) = Name::from_ascii(q.name())
        {
            name.set_fqdn(true);
            self.maybe_prefetch(&name, qtype, age, ttl);
        }
        Some(KeptAnswer::Answer(template.render(bytes, age)?, how))
    }
}

/// The time a request is handled at: read once for a batch of UDP requests.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub instant: Instant,
    pub now: Timestamp,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            instant: crate::clock::instant(),
            now: crate::clock::now(),
        }
    }
}

/// An answer found kept, without decoding the request.
enum KeptAnswer<'a> {
    /// An upstream's answer (or a safe-search rewrite's), counted per batch.
    Answer(Vec<u8>, Kept),
    /// A blocked name's answer, reported as the full path reports it.
    Blocked(Vec<u8>, BlockedRef<'a>),
}

/// A blocked name and what blocked it, borrowed from the request and the policy: a repeat
/// is counted from these without copying them.
#[derive(Debug, Clone, Copy)]
struct BlockedRef<'a> {
    name: &'a str,
    rule: Option<&'a str>,
    category: Option<&'a str>,
}

impl<'a> BlockedRef<'a> {
    fn of(b: &'a Blocked) -> Self {
        Self {
            name: &b.name,
            rule: b.rule.as_deref(),
            category: b.category.as_deref(),
        }
    }
}

/// Which counters a kept answer adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Forwarded,
    SafeSearch,
}

/// Kept answers counted on a UDP thread and added to the shared counters once per batch: one
/// atomic update per batch instead of two per answer, which the threads would contend for.
#[derive(Debug, Default)]
struct Tally {
    forwarded: u64,
    safe_search: u64,
}

impl Tally {
    fn count(&mut self, how: Kept) {
        match how {
            Kept::Forwarded => self.forwarded += 1,
            Kept::SafeSearch => self.safe_search += 1,
        }
    }

    fn flush(&mut self, metrics: &crate::report::metrics::Metrics) {
        let hits = self.forwarded + self.safe_search;
        if hits > 0 {
            metrics.cache_hits.inc_by(hits);
        }
        if self.forwarded > 0 {
            metrics.queries_forwarded.inc_by(self.forwarded);
        }
        if self.safe_search > 0 {
            metrics.queries_safe_search.inc_by(self.safe_search);
        }
        *self = Self::default();
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
    /// The device is in quarantine: its answer waits for the firewall to learn the addresses.
    quarantined: bool,
}

/// A miss's place upstream, or its answer when it has none.
#[derive(Debug)]
pub enum Admission {
    /// Shed for load: this SERVFAIL (or nothing, should it not encode).
    Shed(Option<Vec<u8>>),
    /// To be asked: [`Resolver::ask_admitted`].
    Admitted(Box<Ask>, Admitted),
}

/// Where [`Resolver::prepare`] got to.
#[derive(Debug)]
pub enum Step {
    /// Send this (or nothing).
    Done(Option<Vec<u8>>),
    /// Send this answer, kept from an earlier one; the caller counts it ([`Kept`]).
    Kept(Vec<u8>, Kept),
    /// Send this once the event with this ticket (the sighting of a blocked name) is in the
    /// journal, or [`JOURNAL_WAIT`](crate::report::events::JOURNAL_WAIT) has passed.
    AfterJournal(Vec<u8>, Ticket),
    /// Ask upstream first: [`Resolver::ask_upstream`].
    Upstream(Box<Ask>),
}

impl Resolver {
    fn answer_cached(&self, bytes: &[u8], ask: Ask) -> Step {
        let metrics = &self.shared.metrics;
        let now = crate::clock::instant();
        let key = WireKey::of(&ask);
        if let Some(key) = &key
            && let Some((template, age, ttl)) = self.wire.get_aged(key.bytes(), now)
            && let Some(out) = template.render(bytes, age)
        {
            metrics.cache_hits.inc();
            self.maybe_prefetch(&ask.name, ask.request.qtype(), age, ttl);
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

    /// A blocked name's answer and what is done about it: counted, the firewall told, and
    /// the sighting reported; a first sighting is journaled before its answer leaves. A
    /// repeat within its window is only counted, with nothing copied.
    fn blocked(
        &self,
        policy: &Policy,
        who: &Who,
        now: Timestamp,
        out: Vec<u8>,
        b: BlockedRef<'_>,
    ) -> Step {
        let metrics = &self.shared.metrics;
        metrics.queries_blocked.inc();
        let rule = b.rule.unwrap_or("quarantine");
        metrics.blocked_by(rule);
        debug!(client = ?who.client.ip, name = b.name, rule, "blocked");
        // Devices may hold its addresses from before: the firewall refuses them once it
        // knows them.
        if let (Some(l), Some(_)) = (&self.learner, b.rule) {
            l.blocked(b.name);
        }
        if self.actor.blocked_again(who, now, b.name, b.rule) {
            return Step::Done(Some(out));
        }
        let seen = Outcome::Blocked(act::Blocked {
            name: Some(b.name.to_owned()),
            rule: b.rule.map(str::to_owned),
            category: b.category.map(str::to_owned),
            destination: None,
            evidence: "DNS query".to_owned(),
        });
        if let Some(ticket) = self.actor.act(policy, who, now, seen)
            && !self.actor.events().settled(ticket)
        {
            return Step::AfterJournal(out, ticket);
        }
        Step::Done(Some(out))
    }

    /// Keeps the encoded blocked answer `out` to the request asking `q`, for
    /// [`kept_answer`].
    fn keep_blocked(&self, q: &Question, out: &[u8], b: &Blocked, off_site: bool, now: Instant) {
        let Some(key) = WireKey::blocked(q, b.rule.as_deref(), b.quarantined, off_site) else {
            return;
        };
        if let Some(t) = Template::new(out.to_vec()) {
            self.blocked_wire
                .put(key.bytes().into(), Arc::new(t), BLOCKED_KEEP, now);
        }
    }

    fn keep_wire(&self, key: Option<WireKey>, out: Option<&[u8]>, ttl: u32, now: Instant) {
        if let Some(key) = key
            && let Some(t) = out.and_then(|o| Template::new(o.to_vec()))
        {
            self.wire.put(key.bytes().into(), Arc::new(t), ttl, now);
        }
    }

    /// Asks upstream, caches what comes back, and answers; SERVFAIL if the upstreams fail.
    pub async fn ask_upstream(&self, ask: Ask) -> Option<Vec<u8>> {
        match self.admit(ask) {
            Admission::Shed(answer) => answer,
            Admission::Admitted(ask, admitted) => self.ask_admitted(*ask, admitted).await,
        }
    }

    /// Takes `ask`'s place among the questions out upstream, or answers SERVFAIL at once
    /// when there is none (counted): a miss shed under load is answered where it was read,
    /// with no task made for it.
    pub fn admit(&self, ask: Ask) -> Admission {
        match self.upstream.admit(&ask.name, ask.request.qtype()) {
            Ok(admitted) => Admission::Admitted(Box::new(ask), admitted),
            Err(e) => {
                self.shared.metrics.upstream_shed.inc();
                Admission::Shed(reply(ask, Err(e)))
            }
        }
    }

    /// Asks upstream in the place [`admit`](Self::admit) gave, caches what comes back, and
    /// answers; SERVFAIL if the upstreams fail.
    pub async fn ask_admitted(&self, ask: Ask, admitted: Admitted) -> Option<Vec<u8>> {
        let metrics = &self.shared.metrics;
        let rtype = ask.request.qtype();
        let started = crate::clock::instant();
        let result = self
            .upstream
            .resolve_admitted(ask.name.clone(), rtype, admitted)
            .await;
        let done = crate::clock::instant();
        metrics
            .upstream_latency
            .observe(done.duration_since(started).as_secs_f64());
        match &result {
            Ok(r) => {
                if let Some(l) = &self.learner {
                    if ask.quarantined {
                        l.answered_for_quarantine(&ask.name, &r.answers).await;
                    } else {
                        l.answered(&ask.name, &r.answers);
                    }
                }
                self.cache.keep(&ask.name, rtype, r, done);
                let key = WireKey::of(&ask);
                let ttl = cache::ttl_of(r);
                let out = reply(ask, result);
                self.keep_wire(key, out.as_deref(), ttl, done);
                out
            }
            Err(e) => {
                // No upstream answered: an answer that expired lately is better than none.
                if let Some(stale) = self.cache.stale_answer(&ask.name, rtype, done) {
                    metrics.stale_answers.inc();
                    return reply(ask, Ok(stale));
                }
                metrics.upstream_errors.inc();
                warn!(error = %e, "upstream failed");
                reply(ask, result)
            }
        }
    }
}

/// What an encoded answer depends on besides the request's ID, RD flag and letter case: the
/// lower-case name, the type, and how the answer was made. Kept as bytes so a lookup can be
/// built on the stack ([`WireKey::bytes`]) and the cache stores `Box<[u8]>`.
struct WireKey {
    bytes: [u8; WIRE_KEY_MAX],
    len: usize,
}

/// The shape byte, the type, the name, and for a blocked answer what it says (a hash of the
/// rule's name and the quarantine flag).
const WIRE_KEY_MAX: usize = 3 + schoolgate_engine::domain::MAX_NAME_LEN + 1 + 9;

impl WireKey {
    fn new(
        name: &str,
        qtype: RecordType,
        rewritten: bool,
        strip_ech: bool,
        edns: bool,
    ) -> Option<Self> {
        let mut bytes = [0u8; WIRE_KEY_MAX];
        let [how, type_hi, type_lo, rest @ ..] = &mut bytes;
        *how = u8::from(rewritten) | u8::from(strip_ech) << 1 | u8::from(edns) << 2;
        [*type_hi, *type_lo] = u16::from(qtype).to_be_bytes();
        // A presentation form cut to MAX_NAME_LEN (escapes make it longer than the wire
        // name) could stand for several names: such answers are not kept.
        if name.len() > schoolgate_engine::domain::MAX_NAME_LEN {
            return None;
        }
        for (o, b) in rest.iter_mut().zip(name.as_bytes()) {
            *o = *b;
        }
        Some(Self {
            bytes,
            len: 3 + name.len(),
        })
    }

    fn of(ask: &Ask) -> Option<Self> {
        Self::new(
            &ask.request.name,
            ask.request.qtype(),
            ask.first.is_some(),
            ask.strip_ech,
            ask.request.message.edns.is_some(),
        )
    }

    fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// The key of a blocked answer to a request asking `q`: its shape, with what the
    /// answer's words depend on (the rule that blocked, or the quarantine, and whether it
    /// went to a device away from school) added, and the shape byte marked.
    fn blocked(
        q: &Question,
        rule: Option<&str>,
        quarantined: bool,
        off_site: bool,
    ) -> Option<Self> {
        let mut key = Self::new(q.name(), RecordType::from(q.qtype), false, false, q.edns)?;
        if let Some(how) = key.bytes.first_mut() {
            *how |= 1 << 3;
        }
        let hash = schoolgate_engine::fnv::fnv1a(rule.unwrap_or_default().bytes());
        let mut suffix = [0u8; 9];
        let (h, q) = suffix.split_at_mut(8);
        h.copy_from_slice(&hash.to_be_bytes());
        if let Some(q) = q.first_mut() {
            *q = u8::from(quarantined) | u8::from(rule.is_some()) << 1 | u8::from(off_site) << 2;
        }
        if let Some(dst) = key.bytes.get_mut(key.len..key.len + suffix.len()) {
            dst.copy_from_slice(&suffix);
            key.len += suffix.len();
        }
        Some(key)
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
/// [`UDP_POLL`]). Requests that need no upstream are answered on this thread, the others
/// become tasks on `runtime` so they never hold the loop up.
///
/// Datagrams are taken up to [`UDP_BATCH`] at a time (`recvmmsg`: whatever is queued, waiting
/// only for the first) and the answers to a batch leave together (`sendmmsg`). Under load this
/// turns dozens of system calls and wake-ups into two; with one request queued it is the same
/// as a receive and a send.
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
    let mut batch = Batch::new();
    let mut tally = Tally::default();
    // The newest sighting this batch's answers wait for.
    let mut journal: Option<Ticket> = None;
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(&socket) {
            Ok(n) => n,
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
        let clock = Clock::now();
        for i in 0..received {
            let Some((request, peer)) = batch.request(i) else {
                continue;
            };
            let response = match resolver.prepare(request, peer, clock) {
                Step::Done(None) => continue,
                Step::Done(Some(response)) => response,
                Step::Kept(response, how) => {
                    tally.count(how);
                    response
                }
                Step::AfterJournal(response, ticket) => {
                    journal = journal.max(Some(ticket));
                    response
                }
                Step::Upstream(ask) => match resolver.admit(*ask) {
                    Admission::Shed(Some(response)) => response,
                    Admission::Shed(None) => continue,
                    Admission::Admitted(ask, admitted) => {
                        let request = request.to_vec();
                        let socket = Arc::clone(&socket);
                        let resolver = Arc::clone(&resolver);
                        runtime.spawn(async move {
                            if let Some(response) = resolver.ask_admitted(*ask, admitted).await {
                                send_udp(&socket, &request, response, peer);
                            }
                        });
                        continue;
                    }
                },
            };
            batch.answer(fit_udp(request, response), peer);
        }
        if let Some(ticket) = journal.take() {
            // One wait for the whole batch: the writer takes its events together.
            let events = resolver.actor.events();
            if !events.settled(ticket) && !runtime.block_on(events.journaled(ticket)) {
                resolver.shared.metrics.answers_before_journal.inc();
            }
        }
        batch.send(&socket);
        tally.flush(&resolver.shared.metrics);
        for (name, rtype) in resolver.take_prefetches() {
            let resolver = Arc::clone(&resolver);
            runtime.spawn(async move { resolver.refresh(name, rtype).await });
        }
    }
}

/// How many datagrams one receive call may take.
pub const UDP_BATCH: usize = 32;
/// Requests longer than this are not DNS we answer over UDP (they arrive cut, and are dropped).
const UDP_REQUEST_MAX: usize = 4096;

/// A UDP thread's buffers: requests received together, and the answers to send together.
struct Batch {
    buffers: Vec<[u8; UDP_REQUEST_MAX]>,
    received: Vec<(usize, Option<SocketAddr>)>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    answers: Vec<(Vec<u8>, SockaddrStorage)>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Self {
        Self {
            buffers: vec![[0; UDP_REQUEST_MAX]; UDP_BATCH],
            received: Vec::with_capacity(UDP_BATCH),
            receive_headers: MultiHeaders::preallocate(UDP_BATCH, None),
            answers: Vec::with_capacity(UDP_BATCH),
            send_headers: MultiHeaders::preallocate(UDP_BATCH, None),
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and takes all that
    /// are queued, up to [`UDP_BATCH`]. Returns how many.
    fn receive(&mut self, socket: &std::net::UdpSocket) -> std::io::Result<usize> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b.as_mut_slice())])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.receive_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        for m in results {
            let peer = m.address.and_then(|a| socket_addr(&a));
            let len = if m.flags.contains(MsgFlags::MSG_TRUNC) {
                0
            } else {
                m.bytes
            };
            self.received.push((len, peer));
        }
        Ok(self.received.len())
    }

    /// The `i`th datagram received and its sender; `None` for one cut short or without one.
    fn request(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let &(len, peer) = self.received.get(i)?;
        let bytes = self.buffers.get(i)?.get(..len).filter(|b| !b.is_empty())?;
        Some((bytes, peer?))
    }

    fn answer(&mut self, response: Vec<u8>, peer: SocketAddr) {
        self.answers.push((response, SockaddrStorage::from(peer)));
    }

    /// Sends every answer collected, in as few calls as the kernel takes them. An answer the
    /// kernel refuses is dropped (as a lost datagram would be) and the rest still go.
    fn send(&mut self, socket: &std::net::UdpSocket) {
        let mut from = 0;
        while from < self.answers.len() {
            let pending = self.answers.get(from..).unwrap_or_default();
            let slices: Vec<[IoSlice<'_>; 1]> =
                pending.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> =
                pending.iter().map(|(_, a)| Some(*a)).collect();
            match sendmmsg(
                socket.as_raw_fd(),
                &mut self.send_headers,
                slices.iter(),
                &addrs,
                [],
                MsgFlags::empty(),
            ) {
                Ok(sent) => from += sent.count().max(1),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    debug!(error = %e, "udp send");
                    from += 1;
                }
            }
        }
        self.answers.clear();
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::new(v4.ip().into(), v4.port()));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::V6(std::net::SocketAddrV6::new(
        v6.ip(),
        v6.port(),
        v6.flowinfo(),
        v6.scope_id(),
    )))
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
    let mut stream_in = Reassembly::default();
    let mut read = vec![0u8; TCP_READ];
    loop {
        // Every whole message already received is answered, in order, before reading more.
        loop {
            let request = match stream_in.take() {
                Next::Message(m) => m.to_vec(),
                Next::Need(_) => break,
                Next::Empty => return Ok(()),
            };
            let Some(response) = resolver.handle(&request, peer).await else {
                return Ok(());
            };
            for (name, rtype) in resolver.take_prefetches() {
                let resolver = Arc::clone(&resolver);
                tokio::spawn(async move { resolver.refresh(name, rtype).await });
            }
            let Some(framed) = tcp::frame(&response) else {
                return Ok(());
            };
            stream.write_all(&framed).await?;
        }
        let n = match tokio::time::timeout(TCP_IDLE, stream.read(&mut read)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(n)) => n,
            // Nothing for a while, or a message begun and left unfinished.
            Err(_) if stream_in.pending() == 0 => return Ok(()),
            Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        stream_in.push(read.get(..n).unwrap_or_default());
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
    // Room for bursts: a class opening its laptops, or a flood of misses beside the cached
    // names, arrive faster than a moment's pause in the thread; the default queue (about
    // 200 KiB, a few hundred requests) overflows and drops them. Root may go beyond the
    // system's `rmem_max`; otherwise the kernel keeps what it allows.
    let fd = std::os::fd::AsFd::as_fd(&socket);
    if nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::RcvBufForce,
        &UDP_RECEIVE_BUFFER,
    )
    .is_err()
    {
        let _ = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The receive queue asked for each DNS socket, in bytes (the kernel doubles it for its
/// bookkeeping).
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::RecordType;

    #[test]
    fn dns_sockets_have_room_for_bursts() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        // The kernel reports twice what it kept. Root gets all it asked; anyone else at
        // most the system's rmem_max.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(got >= UDP_RECEIVE_BUFFER.min(2 * rmem_max), "{got}");
        assert!(got > 2 * 212_992, "{got}: no more than the usual default");
    }

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

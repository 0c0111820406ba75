//! What to do with one DNS request: the resolver's decisions, without sockets or a clock.
//!
//! [`plan`] takes the request bytes, who sent them, the policy and `now`, and returns either
//! the bytes to send back or what to ask upstream. The server around it does the I/O: rate
//! limiting, the cache, the upstream query, and sending.
//!
//! Order: malformed → FORMERR (or silence if not even a header); not a query → silence or
//! NOTIMP; a client outside the policy's networks → REFUSED; the built-in defences; the
//! decision engine (blocked → sinkhole or NXDOMAIN with an Extended DNS Error naming the rule);
//! safe search; otherwise forward.
//!
//! Request bytes come from pupils' devices: nothing here panics on them, and names are
//! bounded before they reach logs or events.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use jiff::Timestamp;
use schoolgate_engine::policy::Identity;
use schoolgate_engine::policy::gateway::{BlockResponse, Defences};
use schoolgate_engine::{Action, Client, Decision, Policy, Reason};
use schoolgate_wire::Reader;
use schoolgate_wire::dns::Header;

/// The EDNS option code of an Extended DNS Error (RFC 8914).
pub const EDE_OPTION: u16 = 15;
/// EDE info-code "Blocked": the operator's policy blocks the name.
pub const EDE_BLOCKED: u16 = 15;

/// The longest EDE text we send, in bytes; rule names are the school's own but bounded anyway.
const MAX_EDE_TEXT: usize = 200;
/// TTL of a sinkholed answer, so that when a block ends devices ask again soon.
const BLOCK_TTL: u32 = 60;
/// Our own answers' payload size when the client sent EDNS.
const EDNS_PAYLOAD: u16 = 1232;

/// The resolver settings `plan` needs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub block_response: BlockResponse,
    pub defences: Defences,
    /// Where sinkholed A and AAAA answers point.
    pub sinkhole_v4: Option<IpAddr>,
    pub sinkhole_v6: Option<IpAddr>,
}

/// A request that parsed as one standard query.
#[derive(Debug, Clone)]
pub struct Request {
    pub message: Message,
    pub query: Query,
    /// The name asked, lower-case, without the trailing dot.
    pub name: String,
}

impl Request {
    pub fn qtype(&self) -> RecordType {
        self.query.query_type()
    }
}

/// Why a name was blocked, for the event the server records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub name: String,
    pub rule: Option<String>,
    pub category: Option<String>,
    pub quarantined: bool,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Plan {
    /// Send these bytes back.
    Reply {
        bytes: Vec<u8>,
        blocked: Option<Blocked>,
    },
    /// Ask the upstream resolvers, then answer with [`answer`]. `strip_ech` removes ECH
    /// configurations from HTTPS/SVCB records in the answer.
    Forward { request: Request, strip_ech: bool },
    /// Answer with a CNAME to `target` followed by `target`'s records, which the server asks
    /// upstream for (safe search).
    Rewrite { request: Request, target: Name },
    /// Send nothing: not a DNS query, or too broken to answer.
    Drop,
}

/// Whether the resolver answers `client` at all: a client at school must be on one of the
/// policy's networks or a device entry's address; a client with no address is a device away
/// from school, named by its off-site id, and is answered once that id found its entry.
pub fn served(client: &Client, identity: &Identity, policy: &Policy) -> bool {
    match client.ip {
        Some(ip) => policy.serves(ip),
        None => identity.device.is_some(),
    }
}

/// Decides what to do with `bytes` from `client` at `now`; `identity` is who the policy
/// says the client is (its device group and the person signed in there), worked out once by
/// the caller.
pub fn plan(
    bytes: &[u8],
    client: &Client,
    identity: Identity,
    quarantined: bool,
    policy: &Policy,
    settings: &Settings,
    now: Timestamp,
) -> Plan {
    let message = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => return formerr_from_header(bytes),
    };
    if message.metadata.message_type != MessageType::Query {
        return Plan::Drop;
    }
    if message.metadata.op_code != OpCode::Query {
        return reply(error(&message, ResponseCode::NotImp), None);
    }
    let [query] = message.queries.as_slice() else {
        return reply(error(&message, ResponseCode::FormErr), None);
    };
    let query = query.clone();
    if !served(client, &identity, policy) {
        return reply(error(&message, ResponseCode::Refused), None);
    }
    if query.query_class() != DNSClass::IN {
        return reply(error(&message, ResponseCode::Refused), None);
    }
    let name = presentation(query.name());
    let request = Request {
        message,
        query,
        name,
    };

    let route = route(
        &request.name,
        request.qtype(),
        client,
        identity,
        quarantined,
        policy,
        settings,
        now,
    );
    match route {
        Route::Defence(code) => reply(empty(&request, code, None), None),
        Route::Block(decision) => {
            let rule = decision.rule_name(policy).map(str::to_owned);
            let text = match (&rule, decision.reason) {
                (_, Reason::Quarantine) => {
                    "device quarantined after a filter bypass attempt".to_owned()
                }
                (Some(rule), _) => format!("blocked by school rule: {rule}"),
                (None, _) => "blocked by school policy".to_owned(),
            };
            let ttl = ttl_until(decision.until, now);
            let blocked = Blocked {
                name: request.name.clone(),
                rule,
                category: decision.category(policy).map(str::to_owned),
                quarantined: decision.reason == Reason::Quarantine,
            };
            reply(block_answer(&request, settings, ttl, &text), Some(blocked))
        }
        Route::SafeSearch(target) => match Name::from_ascii(target) {
            Ok(mut target) => {
                target.set_fqdn(true);
                Plan::Rewrite { request, target }
            }
            Err(_) => Plan::Drop,
        },
        Route::NoRecords => reply(empty(&request, ResponseCode::NoError, None), None),
        Route::Forward { strip_ech } => Plan::Forward { request, strip_ech },
    }
}

/// What the policy and the built-in defences make of one question, before any answer is
/// built. [`plan`] builds answers from it; the server's cached path uses it to find a kept
/// answer without decoding the whole request.
#[derive(Debug)]
pub enum Route<'p> {
    /// A built-in defence answers with this code and no records.
    Defence(ResponseCode),
    /// The decision engine blocks the name.
    Block(Decision<'p>),
    /// Safe search: answer with a CNAME to this host and its addresses.
    SafeSearch(&'static str),
    /// Answer with no records (alternative endpoints of a safe-search host).
    NoRecords,
    /// Ask upstream; `strip_ech` removes ECH configurations from the answer.
    Forward { strip_ech: bool },
}

/// Routes the question `name`/`qtype` from `client` (whose policy identity is `identity`).
/// `name` is lower-case presentation form without the trailing dot.
#[allow(clippy::too_many_arguments)]
pub fn route<'p>(
    name: &str,
    qtype: RecordType,
    client: &Client,
    identity: Identity,
    quarantined: bool,
    policy: &'p Policy,
    settings: &Settings,
    now: Timestamp,
) -> Route<'p> {
    if let Some(code) = defence(name, &settings.defences) {
        return Route::Defence(code);
    }
    let decision = schoolgate_engine::decide_as(policy, client, identity, name, now, quarantined);
    if decision.action == Action::Block {
        return Route::Block(decision);
    }
    let group = identity.group.and_then(|g| policy.group(g));
    if group.is_some_and(|g| g.safe_search)
        && let Some(target) = safe_search_target(name)
    {
        match qtype {
            RecordType::A | RecordType::AAAA => return Route::SafeSearch(target),
            // Alternative endpoints would lead round the rewrite.
            RecordType::HTTPS | RecordType::SVCB => return Route::NoRecords,
            _ => {}
        }
    }
    let strip_ech = settings.defences.strip_ech
        && matches!(qtype, RecordType::HTTPS | RecordType::SVCB)
        && policy.is_filtered(identity.group);
    Route::Forward { strip_ech }
}

fn reply(message: Message, blocked: Option<Blocked>) -> Plan {
    match message.to_vec() {
        Ok(bytes) => Plan::Reply { bytes, blocked },
        Err(_) => Plan::Drop,
    }
}

/// A name in presentation form, lower-case, no trailing dot, at most 253 characters of it.
fn presentation(name: &Name) -> String {
    let mut s = name.to_ascii().to_ascii_lowercase();
    if s.ends_with('.') {
        s.pop();
    }
    schoolgate_engine::text::cut_to_bytes(&mut s, schoolgate_engine::domain::MAX_NAME_LEN);
    s
}

/// The built-in defences: the answer code for a name they cover.
fn defence(name: &str, d: &Defences) -> Option<ResponseCode> {
    match name {
        "use-application-dns.net" if d.firefox_canary => Some(ResponseCode::NXDomain),
        "mask.icloud.com" | "mask-h2.icloud.com" if d.private_relay => Some(ResponseCode::NXDomain),
        "_dns.resolver.arpa" if d.ddr => Some(ResponseCode::NoError),
        _ => None,
    }
}

/// The safe-search host for a search engine's name, if it is one.
pub fn safe_search_target(name: &str) -> Option<&'static str> {
    const GOOGLE: [&str; 6] = [
        "google.com",
        "google.co.uk",
        "google.ie",
        "google.fr",
        "google.de",
        "google.es",
    ];
    const YOUTUBE: [&str; 5] = [
        "youtube.com",
        "www.youtube.com",
        "m.youtube.com",
        "youtubei.googleapis.com",
        "www.youtube-nocookie.com",
    ];
    let bare = name.strip_prefix("www.").unwrap_or(name);
    if GOOGLE.contains(&bare) {
        Some("forcesafesearch.google.com")
    } else if YOUTUBE.contains(&name) {
        Some("restrict.youtube.com")
    } else if bare == "bing.com" {
        Some("strict.bing.com")
    } else if matches!(
        name,
        "duckduckgo.com" | "www.duckduckgo.com" | "start.duckduckgo.com"
    ) {
        Some("safe.duckduckgo.com")
    } else {
        None
    }
}

/// The TTL for a blocked answer: short, and never past the moment the block ends.
fn ttl_until(until: Option<Timestamp>, now: Timestamp) -> u32 {
    let left = until.map(|u| u.as_second().saturating_sub(now.as_second()));
    match left {
        Some(s) => u32::try_from(s.clamp(1, i64::from(BLOCK_TTL))).unwrap_or(BLOCK_TTL),
        None => BLOCK_TTL,
    }
}

/// A response to `request` with no records.
fn empty(request: &Request, code: ResponseCode, ede: Option<(u16, &str)>) -> Message {
    let mut m = response_to(&request.message, code);
    m.add_query(request.query.clone());
    if let (Some(edns), Some((info, text))) = (m.edns.as_mut(), ede) {
        edns.options_mut().insert(ede_option(info, text));
    }
    m
}

fn block_answer(request: &Request, settings: &Settings, ttl: u32, text: &str) -> Message {
    let ede = Some((EDE_BLOCKED, text));
    let mut m = match settings.block_response {
        BlockResponse::Nxdomain => empty(request, ResponseCode::NXDomain, ede),
        BlockResponse::Sinkhole => empty(request, ResponseCode::NoError, ede),
    };
    if settings.block_response == BlockResponse::Sinkhole {
        let name = request.query.name().clone();
        let rdata = match (request.qtype(), settings.sinkhole_v4, settings.sinkhole_v6) {
            (RecordType::A, Some(IpAddr::V4(ip)), _) => Some(RData::A(A(ip))),
            (RecordType::AAAA, _, Some(IpAddr::V6(ip))) => Some(RData::AAAA(AAAA(ip))),
            _ => None,
        };
        if let Some(rdata) = rdata {
            m.add_answer(Record::from_rdata(name, ttl, rdata));
        }
    }
    m
}

/// The EDE option: a 16-bit info-code and UTF-8 text.
pub fn ede_option(info: u16, text: &str) -> EdnsOption {
    let mut text = text.to_owned();
    while text.len() > MAX_EDE_TEXT {
        text.pop();
    }
    let mut payload = info.to_be_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    EdnsOption::Unknown(EDE_OPTION, payload)
}

/// A response header for `request` with `code`, echoing its id, RD flag and EDNS presence.
fn response_to(request: &Message, code: ResponseCode) -> Message {
    let mut m = Message::response(request.metadata.id, request.metadata.op_code);
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

fn error(request: &Message, code: ResponseCode) -> Message {
    let mut m = response_to(request, code);
    if code != ResponseCode::FormErr {
        m.add_queries(request.queries.iter().cloned());
    }
    m
}

/// FORMERR for a request whose header can be read but whose body cannot; nothing for less.
fn formerr_from_header(bytes: &[u8]) -> Plan {
    let Some(header) = Header::read(&mut Reader::new(bytes)) else {
        return Plan::Drop;
    };
    if header.is_response() {
        return Plan::Drop;
    }
    let mut m = Message::response(header.id, OpCode::Query);
    m.metadata.response_code = ResponseCode::FormErr;
    reply(m, None)
}

/// The server's answer to a forwarded request: the upstream's records (ECH removed if asked)
/// under the client's id.
pub fn answer(
    request: &Request,
    code: ResponseCode,
    records: Vec<Record>,
    strip_ech: bool,
) -> Message {
    let mut m = response_to(&request.message, code);
    m.add_query(request.query.clone());
    for mut r in records {
        if strip_ech {
            remove_ech(&mut r);
        }
        m.add_answer(r);
    }
    m
}

/// Removes ECH configurations from an HTTPS or SVCB record. Key 5 is `ech` in RFC 9460 and
/// was `echconfig`/`ech-config` in its drafts: one wire key, removed under every name.
pub fn remove_ech(record: &mut Record) {
    use hickory_proto::rr::rdata::svcb::SvcParamKey;
    let svcb = match &mut record.data {
        RData::HTTPS(h) => &mut h.0,
        RData::SVCB(s) => s,
        _ => return,
    };
    svcb.svc_params
        .retain(|(k, _)| !matches!(k, SvcParamKey::EchConfigList));
}

/// Reads the Extended DNS Error from a response, if it has one (for tests and tools).
pub fn ede_of(message: &Message) -> Option<(u16, String)> {
    match message
        .edns
        .as_ref()?
        .option(EdnsCode::Unknown(EDE_OPTION))?
    {
        EdnsOption::Unknown(_, payload) => {
            let mut r = Reader::new(payload);
            let info = r.u16()?;
            let text = String::from_utf8_lossy(r.rest()).into_owned();
            Some((info, text))
        }
        _ => None,
    }
}

//! Forwarding allowed names to the upstream resolvers, without I/O: which upstream to ask
//! and how long to wait for it (a smoothed round-trip time and a failure count per
//! upstream), the query as it goes on the wire (a random ID and the name's letters in a
//! random case, DNS 0x20), and whether a datagram that comes back is the answer to it.
//!
//! The agent's shell owns the sockets, the randomness and the clock; everything here takes
//! them as arguments, so each rule is tested with chosen times and bits.
//!
//! Spoofing: an answer is taken only from the address asked, with the query's ID, and with
//! its question repeated exactly, letter case included. An off-path forger must guess the
//! source port (one of the shell's sockets, each on a port the kernel chose at random), the
//! 16-bit ID and one bit per letter of the name. An upstream that does not keep the case
//! (rare; RFC 4343 asks it to) is noticed by an answer right in all but case, and is asked
//! in lower case from then on, as Unbound's `use-caps-for-id` falls back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::cache::Resolved;

/// The UDP payload size offered upstream: the DNS flag day 2020 figure, which fits an IPv6
/// minimum MTU without fragments.
pub const EDNS_UDP: u16 = 1232;
/// What a new upstream's round trip is taken to be before it has answered.
const FIRST_RTT: Duration = Duration::from_millis(50);
/// The shortest and longest wait for one upstream's answer.
const MIN_WAIT: Duration = Duration::from_millis(150);
const MAX_WAIT: Duration = Duration::from_millis(1500);
/// Failures in a row after which an upstream is set aside for a while.
const FAILS_TO_REST: u32 = 3;
/// The longest rest.
const MAX_REST: Duration = Duration::from_secs(60);
/// One query in this many goes to an upstream other than the best, so every upstream's
/// round trip stays known.
const EXPLORE_ONE_IN: u64 = 64;

/// One upstream's record.
#[derive(Debug, Clone)]
struct Health {
    srtt: Duration,
    /// Failures since its last answer.
    fails: u32,
    /// Set aside until then.
    resting_until: Option<Instant>,
    /// It answered in a different letter case than it was asked: ask it in lower case.
    no_0x20: bool,
}

/// The upstream resolvers and how each has done.
#[derive(Debug, Clone)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
    health: Vec<Health>,
}

impl Upstreams {
    pub fn new(servers: &[SocketAddr]) -> Self {
        Self {
            servers: servers.to_vec(),
            health: vec![
                Health {
                    srtt: FIRST_RTT,
                    fails: 0,
                    resting_until: None,
                    no_0x20: false,
                };
                servers.len()
            ],
        }
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.servers.get(i).copied()
    }

    /// The upstream to ask next, not one of `tried` (a bit per upstream): the fastest of
    /// those not resting; now and then (`random`) another, to keep its time known; when
    /// all are resting, the one whose rest ends first.
    pub fn choose(&self, now: Instant, tried: u64, random: u64) -> Option<usize> {
        let open = |i: &usize| *i < 64 && tried & (1 << i) == 0;
        let awake = |i: &usize| {
            self.health
                .get(*i)
                .is_some_and(|h| h.resting_until.is_none_or(|t| t <= now))
        };
        let candidates: Vec<usize> = (0..self.servers.len()).filter(open).collect();
        let awake_ones: Vec<usize> = candidates.iter().copied().filter(awake).collect();
        if awake_ones.is_empty() {
            return candidates
                .into_iter()
                .min_by_key(|i| self.health.get(*i).and_then(|h| h.resting_until));
        }
        if awake_ones.len() > 1 && random.is_multiple_of(EXPLORE_ONE_IN) {
            let pick = (random / EXPLORE_ONE_IN) as usize % awake_ones.len();
            return awake_ones.get(pick).copied();
        }
        awake_ones
            .into_iter()
            .min_by_key(|i| self.health.get(*i).map(|h| h.srtt))
    }

    /// How long to wait for upstream `i`: four of its round trips, within bounds.
    pub fn wait(&self, i: usize) -> Duration {
        self.health
            .get(i)
            .map_or(MAX_WAIT, |h| (h.srtt * 4).clamp(MIN_WAIT, MAX_WAIT))
    }

    /// Whether upstream `i` is asked in a random letter case.
    pub fn uses_0x20(&self, i: usize) -> bool {
        self.health.get(i).is_some_and(|h| !h.no_0x20)
    }

    /// Upstream `i` answered after `rtt`.
    pub fn answered(&mut self, i: usize, rtt: Duration) {
        if let Some(h) = self.health.get_mut(i) {
            h.srtt = (h.srtt * 7 + rtt) / 8;
            h.fails = 0;
            h.resting_until = None;
        }
    }

    /// Upstream `i` did not answer in time, or failed.
    pub fn failed(&mut self, i: usize, now: Instant) {
        if let Some(h) = self.health.get_mut(i) {
            h.fails = h.fails.saturating_add(1);
            h.srtt = (h.srtt * 2).min(MAX_WAIT);
            if h.fails >= FAILS_TO_REST {
                let rest = Duration::from_secs(1 << (h.fails - FAILS_TO_REST).min(6)).min(MAX_REST);
                h.resting_until = Some(now + rest);
            }
        }
    }

    /// Upstream `i` does not keep the question's letter case.
    pub fn drops_case(&mut self, i: usize) {
        if let Some(h) = self.health.get_mut(i) {
            h.no_0x20 = true;
        }
    }

    /// Whether every upstream is resting at `now`.
    pub fn all_resting(&self, now: Instant) -> bool {
        self.health
            .iter()
            .all(|h| h.resting_until.is_some_and(|t| t > now))
    }
}

/// A query as sent: its ID, and the wire bytes, whose question an answer must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub wire: Vec<u8>,
    /// Where the question ends in `wire` (it starts after the 12-byte header).
    question_end: usize,
}

/// The DNS header's length.
const HEADER: usize = 12;

impl Query {
    /// `name`/`rtype` with recursion desired and an EDNS OPT record, its letters' case
    /// flipped where `case_bits` has a one (bit `i` for the name's `i`-th letter, reused
    /// every 64; none when zero).
    pub fn new(name: &Name, rtype: RecordType, id: u16, case_bits: u64) -> Self {
        let mut wire = Vec::with_capacity(HEADER + 64 + 11);
        wire.extend_from_slice(&id.to_be_bytes());
        // RD; one question; one additional (OPT).
        wire.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        let mut letter = 0u32;
        for label in name.iter() {
            let len = u8::try_from(label.len()).unwrap_or(63).min(63);
            wire.push(len);
            for &b in label.iter().take(usize::from(len)) {
                let b = if b.is_ascii_alphabetic() {
                    let flip = case_bits >> (letter % 64) & 1 == 1;
                    letter += 1;
                    if flip { b ^ 0x20 } else { b }
                } else {
                    b
                };
                wire.push(b);
            }
        }
        wire.push(0);
        wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
        wire.extend_from_slice(&1u16.to_be_bytes());
        let question_end = wire.len();
        // OPT: root owner, type 41, the UDP size as class, no extended flags, no options.
        wire.push(0);
        wire.extend_from_slice(&41u16.to_be_bytes());
        wire.extend_from_slice(&EDNS_UDP.to_be_bytes());
        wire.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        Self {
            id,
            wire,
            question_end,
        }
    }

    /// The question's bytes, as an answer must repeat them.
    fn question(&self) -> &[u8] {
        self.wire.get(HEADER..self.question_end).unwrap_or_default()
    }

    /// What `datagram`, from the address this query went to, is to it.
    pub fn judge(&self, datagram: &[u8]) -> Reply {
        let (Some(id), Some(&flags), Some(counts)) =
            (datagram.get(..2), datagram.get(2), datagram.get(4..6))
        else {
            return Reply::NotOurs;
        };
        let question = self.question();
        if id != self.id.to_be_bytes() || flags & 0x80 == 0 || counts != [0, 1] {
            return Reply::NotOurs;
        }
        let Some(theirs) = datagram.get(HEADER..HEADER + question.len()) else {
            return Reply::NotOurs;
        };
        if theirs != question {
            return if theirs.eq_ignore_ascii_case(question) {
                Reply::CaseChanged
            } else {
                Reply::NotOurs
            };
        }
        if flags & 0x02 != 0 {
            return Reply::Truncated;
        }
        Reply::Answer
    }
}

/// What a datagram is to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Another ID, not a response, or another question: a late answer or a forgery.
    NotOurs,
    /// Its question in another letter case: the upstream does not keep case, or a forger
    /// who guessed the ID and port but not the case.
    CaseChanged,
    /// Cut short (TC): ask again over TCP.
    Truncated,
    Answer,
}

/// Why an upstream's answer could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    #[error("the upstream's answer does not parse: {0}")]
    Parse(#[from] hickory_proto::serialize::binary::DecodeError),
    #[error("the upstream answered {0}")]
    Failed(ResponseCode),
}

/// The records of an answer (CNAMEs and all), and for an empty one the SOA that says how
/// long the absence may be remembered. NXDOMAIN and NOERROR are answers; SERVFAIL, REFUSED
/// and the rest are the upstream failing.
pub fn resolved(answer: &[u8]) -> Result<Resolved, AnswerError> {
    let message = Message::from_vec(answer)?;
    let code = message.metadata.response_code;
    if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Err(AnswerError::Failed(code));
    }
    let Message {
        mut answers,
        authorities,
        ..
    } = message;
    // Owner names come back in the case 0x20 chose; they are cached and served to every
    // client, so they are kept in lower case.
    for r in &mut answers {
        r.name = r.name.to_lowercase();
    }
    let authorities = if answers.is_empty() {
        authorities
            .into_iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Resolved {
        code,
        answers,
        authorities,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::str::FromStr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{RData, Record};

    use super::*;

    fn servers(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([192, 0, 2, 1], 53 + i)))
            .collect()
    }

    #[test]
    fn the_fastest_awake_upstream_is_asked() {
        let t0 = Instant::now();
        let mut u = Upstreams::new(&servers(3));
        assert_eq!(u.choose(t0, 0, 1), Some(0));
        u.answered(0, Duration::from_millis(200));
        u.answered(1, Duration::from_millis(5));
        u.answered(2, Duration::from_millis(20));
        assert_eq!(u.choose(t0, 0, 1), Some(1));
        // Not one already tried for this question.
        assert_eq!(u.choose(t0, 0b010, 1), Some(2));
        assert_eq!(u.choose(t0, 0b111, 1), None);
        // Now and then another, so its time stays known.
        let explored = u.choose(t0, 0, EXPLORE_ONE_IN * 2).unwrap();
        assert_ne!(explored, 1);
    }

    #[test]
    fn failing_upstreams_rest_and_come_back() {
        let t0 = Instant::now();
        let mut u = Upstreams::new(&servers(2));
        u.answered(0, Duration::from_millis(5));
        u.answered(1, Duration::from_millis(30));
        for _ in 0..FAILS_TO_REST {
            u.failed(0, t0);
        }
        assert_eq!(u.choose(t0, 0, 1), Some(1));
        assert!(u.wait(0) > u.wait(1) || u.wait(0) == MAX_WAIT);
        // Both resting: the one whose rest ends first is tried.
        for _ in 0..FAILS_TO_REST + 2 {
            u.failed(1, t0);
        }
        assert!(u.all_resting(t0));
        assert_eq!(u.choose(t0, 0, 1), Some(0));
        // After its rest, and an answer, it is the fastest again.
        let later = t0 + Duration::from_secs(2);
        assert!(!u.all_resting(later));
        u.answered(0, Duration::from_millis(5));
        assert_eq!(u.choose(later, 0, 1), Some(0));
    }

    #[test]
    fn waits_are_bounded() {
        let mut u = Upstreams::new(&servers(1));
        u.answered(0, Duration::from_micros(10));
        for _ in 0..40 {
            u.answered(0, Duration::from_micros(10));
        }
        assert_eq!(u.wait(0), MIN_WAIT);
        for _ in 0..20 {
            u.failed(0, Instant::now());
        }
        assert_eq!(u.wait(0), MAX_WAIT);
    }

    /// The answer an upstream would send to `q`, repeating its question as given.
    fn answer_to(q: &Query, question: &[u8], tc: bool) -> Vec<u8> {
        let mut a = q.wire[..2].to_vec();
        a.extend_from_slice(&[if tc { 0x83 } else { 0x81 }, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        a.extend_from_slice(question);
        // One A record, by a pointer to the question's name.
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        a
    }

    #[test]
    fn queries_carry_a_random_case_and_answers_must_repeat_it() {
        let name = Name::from_str("www.example.com.").unwrap();
        let q = Query::new(&name, RecordType::A, 0xbeef, 0b1010_0101);
        let question = q.question().to_vec();
        assert_eq!(&question[..4], b"\x03WwW");
        // With no bits set, the name as it was given.
        let plain = Query::new(&name, RecordType::A, 1, 0);
        assert_eq!(&plain.question()[..12], b"\x03www\x07example");
        // EDNS: an OPT record offering 1232 bytes.
        assert_eq!(
            &q.wire[q.wire.len() - 11..q.wire.len() - 6],
            &[0, 0, 41, 0x04, 0xd0]
        );

        assert_eq!(q.judge(&answer_to(&q, &question, false)), Reply::Answer);
        assert_eq!(q.judge(&answer_to(&q, &question, true)), Reply::Truncated);
        let lower = question.to_ascii_lowercase();
        assert_eq!(q.judge(&answer_to(&q, &lower, false)), Reply::CaseChanged);
        let mut other_id = answer_to(&q, &question, false);
        other_id[1] ^= 1;
        assert_eq!(q.judge(&other_id), Reply::NotOurs);
        let mut other_name = answer_to(&q, &question, false);
        other_name[13] = b'x';
        assert_eq!(q.judge(&other_name), Reply::NotOurs);
        // A query, not a response; and scraps.
        assert_eq!(q.judge(&q.wire), Reply::NotOurs);
        assert_eq!(q.judge(&[0xbe]), Reply::NotOurs);
        assert_eq!(
            q.judge(&answer_to(&q, &question, false)[..20]),
            Reply::NotOurs
        );
    }

    #[test]
    fn answers_become_records_and_failures_errors() {
        let name = Name::from_str("www.example.com.").unwrap();
        let q = Query::new(&name, RecordType::A, 7, 0);
        let r = resolved(&answer_to(&q, q.question(), false)).unwrap();
        assert_eq!(r.code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A::new(192, 0, 2, 7)));
        // Asked in 0x20's mixed case, kept in lower case.
        let mixed = Query::new(&name, RecordType::A, 7, u64::MAX);
        let r = resolved(&answer_to(&mixed, mixed.question(), false)).unwrap();
        assert_eq!(r.answers[0].name.to_ascii(), "www.example.com.");

        let mut empty = Message::new(7, MessageType::Response, OpCode::Query);
        empty.metadata.response_code = ResponseCode::NXDomain;
        let soa = SOA::new(
            Name::from_str("example.com.").unwrap(),
            Name::from_str("hostmaster.example.com.").unwrap(),
            1,
            3600,
            600,
            86400,
            300,
        );
        empty.add_authority(Record::from_rdata(
            Name::from_str("example.com.").unwrap(),
            300,
            RData::SOA(soa),
        ));
        let r = resolved(&empty.to_vec().unwrap()).unwrap();
        assert_eq!(r.code, ResponseCode::NXDomain);
        assert_eq!(r.authorities.len(), 1);

        let mut failed = Message::new(7, MessageType::Response, OpCode::Query);
        failed.metadata.response_code = ResponseCode::ServFail;
        assert!(matches!(
            resolved(&failed.to_vec().unwrap()),
            Err(AnswerError::Failed(ResponseCode::ServFail))
        ));
        assert!(resolved(b"\x00\x07").is_err());
    }
}

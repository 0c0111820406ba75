//! The caches in front of the upstream resolvers: answers for allowed names, kept as long as
//! their TTLs say, so repeated names are answered without a trip upstream.
//!
//! Time is passed in (`Instant`), so the cache can be tested without waiting.
//! Memory is bounded: a fixed number of shards, each with a fixed capacity; a full shard first
//! forgets its expired entries, then an arbitrary one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

const SHARDS: usize = 16;
/// Answers are never kept longer than this, whatever their TTL.
pub const MAX_TTL: u32 = 86_400;
/// How long a "no such name/no records" answer without an SOA is kept.
pub const NEGATIVE_TTL: u32 = 30;
/// How long past its TTL an answer may still be served when no upstream answers (RFC 8767
/// suggests one to three days).
pub const STALE_WINDOW: u32 = 86_400;
/// The TTL a stale answer goes out with (RFC 8767 §4: 30 seconds).
pub const STALE_TTL: u32 = 30;
/// Negative answers are kept at most this long (RFC 2308 suggests hours; shorter means a name
/// added upstream appears sooner).
pub const MAX_NEGATIVE_TTL: u32 = 300;

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    stored: Instant,
    ttl: u32,
    /// When it was last read: a full shard pushes out, of a few, one never read since it was
    /// kept, or else the least recently read.
    used: Instant,
}

/// One shard: its values, and when its expired ones were last cleared out.
#[derive(Debug)]
struct Shard<K, V> {
    map: HashMap<K, Entry<V>>,
    swept: Option<Instant>,
}

/// A full shard clears out its expired values at most this often: clearing walks the whole
/// shard, and a stream of new names (a class's first minutes) fills it on every insert.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How many values a full shard compares to choose the one to push out.
const EVICTION_SAMPLE: usize = 8;

/// Values kept for a number of seconds each, by key. Used twice by the resolver: upstream
/// answers by (name, type), and encoded answers ([`Template`](super::wire::Template)s) by
/// request shape.
#[derive(Debug)]
pub struct Cache<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    per_shard: usize,
    hasher: foldhash::fast::FixedState,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache of about `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        swept: None,
                    })
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<Shard<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `i < SHARDS == self.shards.len()`.
        #[allow(clippy::indexing_slicing)]
        &self.shards[i]
    }

    /// The value for `key` if it is alive at `now`, and its age in whole seconds. `key` may be
    /// a borrowed form of `K`, so a lookup need not allocate.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<(V, u32)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_aged(key, now).map(|(v, age, _)| (v, age))
    }

    /// As [`get`](Self::get), with the TTL the value was kept for.
    pub fn get_aged<Q>(&self, key: &Q, now: Instant) -> Option<(V, u32, u32)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.map.get_mut(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            return None;
        }
        entry.used = now;
        Some((entry.value.clone(), age, entry.ttl))
    }

    /// The value for `key` if it expired no more than `window` seconds before `now`: an
    /// answer to serve when no upstream answers (RFC 8767). Expired values stay until a full
    /// shard pushes them out, so this is a best effort, bounded like the rest.
    pub fn get_stale<Q>(&self, key: &Q, now: Instant, window: u32) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.map.get(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        (age < u64::from(entry.ttl) + u64::from(window)).then(|| entry.value.clone())
    }

    /// Keeps `value` for `ttl` seconds from `now` (not at all for 0).
    pub fn put(&self, key: K, value: V, ttl: u32, now: Instant) {
        if ttl == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(&key) {
            if shard
                .swept
                .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
            {
                shard.swept = Some(now);
                shard.map.retain(|_, e| {
                    now.saturating_duration_since(e.stored) < Duration::from_secs(u64::from(e.ttl))
                });
            }
            if shard.map.len() >= self.per_shard
                && let Some(k) = shard
                    .map
                    .iter()
                    .take(EVICTION_SAMPLE)
                    // Never read since it came first (a flood's names), then the least
                    // recently read.
                    .min_by_key(|(_, e)| (e.used > e.stored, e.used))
                    .map(|(k, _)| k.clone())
            {
                shard.map.remove(&k);
            }
        }
        shard.map.insert(
            key,
            Entry {
                value,
                stored: now,
                ttl,
                used: now,
            },
        );
    }

    /// How many values are kept (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the upstream said: a response code, the answer records, and for an empty answer the
/// authority records (the SOA that tells clients how long to remember the absence).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

/// Upstream answers by (lower-cased name, type).
pub type AnswerCache = Cache<(Name, RecordType), Resolved>;

impl AnswerCache {
    /// The answer for `name`/`rtype` if cached and alive, its TTLs lowered by its age.
    pub fn answer(&self, name: &Name, rtype: RecordType, now: Instant) -> Option<Resolved> {
        let (mut r, age) = self.get(&(name.to_lowercase(), rtype), now)?;
        for rec in r.answers.iter_mut().chain(r.authorities.iter_mut()) {
            rec.ttl = rec.ttl.saturating_sub(age).max(1);
        }
        Some(r)
    }

    /// The answer for `name`/`rtype` if it expired less than [`STALE_WINDOW`] ago, every
    /// TTL set to [`STALE_TTL`] (RFC 8767 §4), for when no upstream answers.
    pub fn stale_answer(&self, name: &Name, rtype: RecordType, now: Instant) -> Option<Resolved> {
        let mut r = self.get_stale(&(name.to_lowercase(), rtype), now, STALE_WINDOW)?;
        for rec in r.answers.iter_mut().chain(r.authorities.iter_mut()) {
            rec.ttl = STALE_TTL;
        }
        Some(r)
    }

    /// Keeps `resolved` for as long as its records say (see [`ttl_of`]).
    pub fn keep(&self, name: &Name, rtype: RecordType, resolved: &Resolved, now: Instant) {
        self.put(
            (name.to_lowercase(), rtype),
            resolved.clone(),
            ttl_of(resolved),
            now,
        );
    }
}

/// How long an answer may be kept: its smallest record TTL; for an empty answer the SOA's TTL
/// bounded by [`MAX_NEGATIVE_TTL`] (RFC 2308), or [`NEGATIVE_TTL`] without one. SERVFAIL and
/// other failures are not kept.
pub fn ttl_of(r: &Resolved) -> u32 {
    match r.code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => return 0,
    }
    if r.answers.is_empty() {
        return r
            .authorities
            .iter()
            .map(|r| r.ttl)
            .min()
            .unwrap_or(NEGATIVE_TTL)
            .min(MAX_NEGATIVE_TTL);
    }
    r.answers
        .iter()
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0)
        .min(MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    fn a(name: &str, ttl: u32) -> Resolved {
        let name = Name::from_ascii(name).unwrap();
        Resolved {
            code: ResponseCode::NoError,
            answers: vec![Record::from_rdata(name, ttl, RData::A(A::new(10, 0, 0, 1)))],
            authorities: Vec::new(),
        }
    }

    #[test]
    fn honours_ttls_and_counts_down() {
        let c = AnswerCache::new(64);
        let t0 = Instant::now();
        let name = Name::from_ascii("www.bbc.co.uk.").unwrap();
        c.keep(&name, RecordType::A, &a("www.bbc.co.uk.", 300), t0);
        let upper = Name::from_ascii("WWW.BBC.co.uk.").unwrap();
        let later = t0 + Duration::from_secs(100);
        let hit = c.answer(&upper, RecordType::A, later).unwrap();
        assert_eq!(hit.answers[0].ttl, 200);
        assert!(c.answer(&name, RecordType::AAAA, t0).is_none());
        let expired = t0 + Duration::from_secs(300);
        assert!(c.answer(&name, RecordType::A, expired).is_none());
        // TTL 0 is never kept.
        c.keep(&name, RecordType::TXT, &a("www.bbc.co.uk.", 0), t0);
        assert!(c.answer(&name, RecordType::TXT, t0).is_none());
    }

    #[test]
    fn expired_answers_are_served_stale_for_a_bounded_time() {
        let c = AnswerCache::new(64);
        let t0 = Instant::now();
        let name = Name::from_ascii("www.bbc.co.uk.").unwrap();
        c.keep(&name, RecordType::A, &a("www.bbc.co.uk.", 300), t0);
        // Alive: the TTL and age come back with it.
        let (_, age, ttl) = c
            .get_aged(
                &(name.clone(), RecordType::A),
                t0 + Duration::from_secs(280),
            )
            .unwrap();
        assert_eq!((age, ttl), (280, 300));
        let expired = t0 + Duration::from_secs(400);
        assert!(c.answer(&name, RecordType::A, expired).is_none());
        let stale = c.stale_answer(&name, RecordType::A, expired).unwrap();
        assert_eq!(stale.answers[0].ttl, STALE_TTL);
        let too_old = t0 + Duration::from_secs(300 + u64::from(STALE_WINDOW));
        assert!(c.stale_answer(&name, RecordType::A, too_old).is_none());
        assert!(c.stale_answer(&name, RecordType::AAAA, expired).is_none());
    }

    #[test]
    fn negative_answers_and_failures() {
        let mut none = a("x.", 1);
        none.answers.clear();
        none.code = ResponseCode::NXDomain;
        assert_eq!(ttl_of(&none), NEGATIVE_TTL);
        none.authorities = a("x.", 3600).answers;
        assert_eq!(ttl_of(&none), MAX_NEGATIVE_TTL);
        none.code = ResponseCode::ServFail;
        assert_eq!(ttl_of(&none), 0);
    }

    #[test]
    fn bounded() {
        let c = AnswerCache::new(SHARDS * 2);
        let t0 = Instant::now();
        for i in 0..1000 {
            let n = format!("n{i}.example.");
            c.keep(
                &Name::from_ascii(&n).unwrap(),
                RecordType::A,
                &a(&n, 60),
                t0,
            );
        }
        assert!(c.len() <= SHARDS * 2, "{}", c.len());
    }

    #[test]
    fn a_flood_of_new_names_does_not_push_out_the_ones_in_use() {
        let c = AnswerCache::new(SHARDS * 64);
        let t0 = Instant::now();
        let hot: Vec<Name> = (0..20)
            .map(|i| Name::from_ascii(format!("hot{i}.example.")).unwrap())
            .collect();
        for n in &hot {
            c.keep(n, RecordType::A, &a(&n.to_ascii(), 300), t0);
        }
        // Ten thousand new names, the hot ones read between every hundred.
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_millis(i);
            let n = Name::from_ascii(format!("cold{i}.example.")).unwrap();
            c.keep(&n, RecordType::A, &a(&n.to_ascii(), 300), at);
            if i % 100 == 0 {
                for h in &hot {
                    assert!(
                        c.answer(h, RecordType::A, at).is_some(),
                        "{h} pushed out at {i}"
                    );
                }
            }
        }
    }
}

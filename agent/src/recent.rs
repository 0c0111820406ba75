//! A bounded memory of keys seen lately, for "at most once per window" checks on paths a
//! device can drive (every DNS query): a key counts as new again once its window has passed,
//! and the memory never holds more than its bound.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys and when each was last let through.
#[derive(Debug)]
pub struct Recent<K> {
    seen: foldhash::HashMap<K, Instant>,
    window: Duration,
    max: usize,
}

impl<K: Hash + Eq> Recent<K> {
    /// A memory of at most `max` keys, each for `window`.
    pub fn new(window: Duration, max: usize) -> Self {
        Self {
            seen: foldhash::HashMap::default(),
            window,
            max,
        }
    }

    /// Whether `key` was not let through within the window before `now`; if so, it is now.
    /// When the memory is full, keys whose window has passed are dropped, and if that is not
    /// enough, all of them (so a flood of new keys costs at most one early repeat each).
    pub fn first<Q>(&mut self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let window = self.window;
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < window;
        if self.seen.get(key).is_some_and(fresh) {
            return false;
        }
        if self.seen.len() >= self.max {
            self.seen.retain(|_, at| fresh(at));
            if self.seen.len() >= self.max {
                self.seen.clear();
            }
        }
        self.seen.insert(key.to_owned().into(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn a_key_is_new_once_per_window_and_the_memory_stays_bounded() {
        let mut r: Recent<Box<str>> = Recent::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        assert!(r.first("a.example", t));
        assert!(!r.first("a.example", t + Duration::from_secs(59)));
        assert!(r.first("a.example", t + Duration::from_secs(61)));
        assert!(r.first("b.example", t + Duration::from_secs(61)));
        // Full, and both still in their window: all forgotten to make room.
        assert!(r.first("c.example", t + Duration::from_secs(62)));
        assert!(r.seen.len() <= 2);
        assert!(r.first("a.example", t + Duration::from_secs(62)));

        let mut ips: Recent<IpAddr> = Recent::new(Duration::from_secs(1), 8);
        let ip: IpAddr = "10.77.0.5".parse().unwrap();
        assert!(ips.first(&ip, t));
        assert!(!ips.first(&ip, t));
    }
}

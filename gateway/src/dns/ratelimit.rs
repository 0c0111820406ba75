//! Per-client query rate limiting, so one device cannot starve the rest.
//!
//! A token bucket per client (its address at school, its device id away from it): `rate` tokens a second, up to a burst of two seconds'
//! worth. The clock is passed in, so the limiter itself reads no time. Memory is bounded:
//! buckets idle long enough to have refilled are dropped when the table grows.

use std::hash::Hash;
use std::net::IpAddr;
use std::time::Instant;

/// Buckets kept before idle ones are swept.
const SWEEP_AT: usize = 8192;

#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    rate: f64,
    burst: f64,
    buckets: foldhash::HashMap<K, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `rate` queries a second per client (at least 1).
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            burst: rate * 2.0,
            buckets: foldhash::HashMap::default(),
        }
    }

    /// Whether `client` may send another query at `now`; takes a token if so.
    pub fn allow(&mut self, client: K, now: Instant) -> bool {
        if self.buckets.len() >= SWEEP_AT {
            self.sweep(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that would be full again by now: forgetting them changes nothing.
    fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }

    /// How many clients are being tracked.
    pub fn n_clients(&self) -> usize {
        self.buckets.len()
    }
}

/// Rate limiters for many threads: clients spread over independently locked shards by
/// address, so requests from different devices seldom wait on one another.
#[derive(Debug)]
pub struct SharedLimiter<K = IpAddr> {
    shards: Vec<std::sync::Mutex<RateLimiter<K>>>,
    hasher: foldhash::fast::FixedState,
}

const SHARDS: usize = 16;

impl<K: Hash + Eq> SharedLimiter<K> {
    pub fn new(rate: u32) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| std::sync::Mutex::new(RateLimiter::new(rate)))
                .collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// [`RateLimiter::allow`] on `client`'s shard.
    pub fn allow(&self, client: K, now: Instant) -> bool {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(&client) as usize) % SHARDS;
        match self.shards.get(i) {
            Some(shard) => shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(client, now),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_client_is_limited_and_others_are_not() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "10.10.0.1".parse().unwrap();
        let b: IpAddr = "10.10.0.2".parse().unwrap();
        // A burst of two seconds' worth, then refused.
        let allowed = (0..100).filter(|_| rl.allow(a, t0)).count();
        assert_eq!(allowed, 20);
        // Another client is unaffected.
        assert!(rl.allow(b, t0));
        // Tokens come back at the rate.
        assert!(!rl.allow(a, t0 + Duration::from_millis(50)));
        assert!(rl.allow(a, t0 + Duration::from_millis(150)));
        let after_a_second = (0..100)
            .filter(|_| rl.allow(a, t0 + Duration::from_millis(1150)))
            .count();
        assert_eq!(after_a_second, 10);
    }

    #[test]
    fn shared_limiter_limits_each_client_alone() {
        let rl = SharedLimiter::new(5);
        let t0 = Instant::now();
        let clients: Vec<IpAddr> = (1..=40u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        for c in &clients {
            assert_eq!((0..50).filter(|_| rl.allow(*c, t0)).count(), 10, "{c}");
        }
    }

    #[test]
    fn idle_clients_are_forgotten_when_the_table_grows() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            rl.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(rl.n_clients(), SWEEP_AT);
        rl.allow("10.0.0.1".parse().unwrap(), t0 + Duration::from_secs(5));
        assert_eq!(rl.n_clients(), 1);
    }
}

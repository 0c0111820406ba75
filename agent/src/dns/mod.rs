//! The filtering DNS resolver.
//!
//! - [`plan`]: what to do with one request (pure: bytes, client, policy, `now` in).
//! - [`upstream`]: asking the upstream resolvers (hickory-resolver, with its TTL cache).
//! - [`ratelimit`]: per-client token buckets.
//! - [`server`]: UDP and TCP listeners around the above.

pub mod plan;
pub mod ratelimit;
pub mod server;
pub mod upstream;

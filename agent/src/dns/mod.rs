//! The filtering DNS resolver.
//!
//! - [`plan`]: what to do with one request (pure: bytes, client, policy, `now` in).
//! - [`cache`]: answers kept for their TTLs, in front of the upstream resolvers.
//! - [`upstream`]: asking the upstream resolvers (hickory-resolver).
//! - [`wire`]: cached answers in wire form, re-sent with the request's ID and question.
//! - [`ratelimit`]: per-client token buckets.
//! - [`tcp`]: DNS over TCP's length-prefixed framing (pure).
//! - [`server`]: UDP and TCP listeners around the above.

pub mod cache;
pub mod plan;
pub mod question;
pub mod ratelimit;
pub mod server;
pub mod tcp;
pub mod upstream;
pub mod wire;

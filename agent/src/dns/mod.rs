//! The filtering DNS resolver.
//!
//! - [`upstream`]: asking the upstream resolvers (hickory-resolver).
//! - [`server`]: UDP and TCP listeners around the pure parts, which are the gateway core's
//!   (`schoolgate_gateway::dns`) and re-exported here: [`plan`] (what to do with one
//!   request), [`question`], [`cache`] and [`wire`] (answers kept for their TTLs),
//!   [`ratelimit`] (per-client token buckets), [`tcp`] (DNS over TCP's framing).

pub mod server;
pub mod upstream;

pub use schoolgate_gateway::dns::{cache, plan, question, ratelimit, tcp, wire};

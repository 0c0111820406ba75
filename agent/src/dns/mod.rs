//! The filtering DNS resolver.
//!
//! - [`server`]: UDP and TCP listeners around the pure parts, which are the gateway core's
//!   (`schoolgate_gateway::dns`): what to do with one request, the question read in place,
//!   answers kept for their TTLs, per-client token buckets, DNS over TCP's framing.

//! - [`off_site`]: DNS over TLS and over HTTPS for school devices away from school, each
//!   request decided for the device its id names.

pub mod off_site;
pub mod server;

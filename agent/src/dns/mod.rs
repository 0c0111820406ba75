//! The filtering DNS resolver.
//!
//! - [`plan`]: what to do with one request (pure: bytes, client, policy, `now` in).

pub mod plan;

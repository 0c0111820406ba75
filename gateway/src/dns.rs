//! The resolver's pure parts: what to do with a request, and the answers it keeps.

pub mod cache;
pub mod forward;
pub mod plan;
pub mod profile;
pub mod question;
pub mod ratelimit;
pub mod tcp;
pub mod wire;

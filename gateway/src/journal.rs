//! The journal's on-disk framing.

pub mod record;

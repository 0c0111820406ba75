//! The gateway agent: the daemon shell around the policy engine.
//!
//! This crate is the only place that touches files, sockets, the firewall and the clock.
//! Decisions themselves come from `schoolgate-engine`.
//!
//! - [`daemon`]: `run`: settings from policy and flags, and the services started from them.
//! - [`dns`]: the filtering resolver.
//! - [`policy_file`]: reads `policy.yaml` and its list files from disk.
//! - [`reload`]: keeps the live policy, watches its files and swaps in good edits.

pub mod daemon;
pub mod dns;
#[doc(hidden)]
pub mod fuzz;
pub mod policy_file;
pub mod reload;

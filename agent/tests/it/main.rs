//! The agent's integration tests, in one binary: the command line, the resolver's request
//! planner, hot reload, the daemon, and the directory read from a real slapd.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod directory;
mod dns_plan;
mod firewall;
mod off_site;
mod reload;
mod run;
mod signed_in;
mod slapd;
mod stale;

use std::path::{Path, PathBuf};

/// The repository's root, where policy.yaml and lists/ live.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

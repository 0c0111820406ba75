//! The agent's integration tests, in one binary: the command line, and hot reload.

mod cli;
mod reload;

use std::path::{Path, PathBuf};

/// The repository's root, where policy.yaml and lists/ live.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

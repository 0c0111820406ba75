//! The console's command line, as clap sees it.

use clap::Parser;

/// schoolgate's web console, where the designated safeguarding lead reviews alerts with their
/// evidence and records what was done, and IT staff watch the agents.
///
/// This release has no subcommands yet: serving the console, user and agent management
/// arrive with the reporting work (see README).
#[derive(Debug, Parser)]
#[command(name = "schoolgate-console", version, about)]
pub(crate) struct Cli {}

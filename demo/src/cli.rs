//! The demonstration's command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Builds a school network from network namespaces, runs schoolgate's agent on its gateway
/// with the repository's policy and the console beside it, plays a scripted school day and
/// leaves the console open with the alerts until Ctrl-C. Needs root.
#[derive(Debug, Parser)]
#[command(name = "schoolgate-demo", version)]
pub(crate) struct Cli {
    /// Where the console is offered on this machine (the printed URL).
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR:PORT")]
    pub(crate) listen: SocketAddr,

    /// The policy to demonstrate; its `gateway.state_dir` and `gateway.console` are pointed
    /// at the demonstration's own directory, the rest is used as it is.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy.yaml"))]
    pub(crate) policy: PathBuf,

    /// Check that every step went as the policy says and that the alerts reached the console,
    /// then tear down and exit (1 if anything did not), instead of waiting for Ctrl-C.
    #[arg(long)]
    pub(crate) check: bool,

    /// Use the agent, console and lab programs already built beside this one; do not run
    /// `cargo build` for them first (it only runs when started by `cargo run`).
    #[arg(long)]
    pub(crate) no_build: bool,
}

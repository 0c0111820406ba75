//! The console's command line, as clap sees it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// schoolgate's web console, where the designated safeguarding lead reviews alerts with their
/// evidence and records what was done, and IT staff watch the agents.
#[derive(Debug, Parser)]
#[command(name = "schoolgate-console", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Store {
    /// The data directory: `console.yaml`, and the SQLite database unless
    /// --database-url names another.
    #[arg(long, default_value = "/var/lib/schoolgate-console")]
    pub(crate) data: PathBuf,
    /// A PostgreSQL database instead of SQLite (`postgres://user@host/db`).
    #[arg(long)]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the console (and the agents' API). Migrations run first.
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        #[command(flatten)]
        store: Store,
        /// TLS certificate chain (PEM); replaces `tls.cert` in console.yaml.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM); replaces `tls.key` in console.yaml.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Agents allowed to send events.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user, or set an existing user's role and password.
    Add {
        name: String,
        /// `dsl` (the safeguarding lead: everything, case notes included) or `it`.
        #[arg(long)]
        role: String,
        /// Read the password from this file's first line instead of asking.
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        store: Store,
    },
    /// Require a code from an authenticator app at sign-in (recommended for every DSL
    /// account): prints the new secret and its otpauth:// URL once.
    Totp {
        name: String,
        /// Stop requiring a code instead.
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        store: Store,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Add an agent and print its token once, alone on the last line (only a hash is kept).
    Add {
        name: String,
        #[command(flatten)]
        store: Store,
    },
}

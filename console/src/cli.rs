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
    /// Add a user, or set an existing user's role and password (which ends their sessions).
    Add {
        name: String,
        /// `dsl` (the safeguarding lead: everything, case notes included), `it`, `teacher`
        /// (asks for exceptions; sees only their own requests), `approver` (decides them) or
        /// `admin` (what IT sees, and the accounts page).
        #[arg(long)]
        role: String,
        /// Read the password from this file's first line instead of asking.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// In a trust: the school (an id from console.yaml's `schools`), or schools
        /// separated by commas, whose records the user sees; without it, a new user sees the
        /// whole trust's.
        #[arg(long)]
        school: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// In a trust: put a user in a school (an id from console.yaml's `schools`) or several
    /// (separated by commas), so they see those records only, or without one let them see
    /// the whole trust's; ends their sessions.
    School {
        name: String,
        school: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Set a user's password (asked for twice, not shown); ends their sessions.
    Passwd {
        name: String,
        /// Read the password from this file's first line instead of asking.
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        store: Store,
    },
    /// Set a user's role (`dsl`, `it`, `teacher`, `approver` or `admin`); ends their sessions.
    Role {
        name: String,
        role: String,
        #[command(flatten)]
        store: Store,
    },
    /// Stop a user signing in (kept, with what they did, for the audit trail); ends their
    /// sessions. `--enable` lets them in again.
    Disable {
        name: String,
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        store: Store,
    },
    /// Remove a user (someone who has left); ends their sessions. What they did stays in
    /// the audit log under their name.
    Remove {
        name: String,
        #[command(flatten)]
        store: Store,
    },
    /// End a user's sessions, or with `--all` everyone's (a lost laptop, a suspected leak).
    Logout {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        store: Store,
    },
    /// The users: role, code required, disabled, sessions open.
    List {
        #[command(flatten)]
        store: Store,
    },
    /// Require a code from an authenticator app at sign-in (recommended for every DSL
    /// account): prints the new secret and its otpauth:// URL once. Ends their sessions.
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
        /// In a trust: the school the gateway serves (an id from console.yaml's `schools`).
        #[arg(long)]
        school: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// In a trust: put an agent in the school it serves (an id from console.yaml's
    /// `schools`), or without one in none; its records, old and new, are that school's.
    School {
        name: String,
        school: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Stop accepting an agent's token (a stolen or retired gateway); its events stay.
    Revoke {
        name: String,
        #[command(flatten)]
        store: Store,
    },
    /// Give an agent a new token, printed once alone on the last line; the old one stops
    /// working at once (and a revoked agent is accepted again with the new one).
    Rotate {
        name: String,
        #[command(flatten)]
        store: Store,
    },
}

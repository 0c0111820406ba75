//! The command line, as clap sees it. Values are checked for shape here; `main` turns them
//! into work.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use schoolgate_contract::status::SUPERVISED_MAX_MINUTES;
use schoolgate_engine::MacAddr;

/// Where a packaged install keeps the policy.
pub(crate) const DEFAULT_POLICY: &str = "/etc/schoolgate/policy.yaml";

/// schoolgate's gateway agent: filters DNS, owns the gateway's firewall table, watches for
/// filter bypass attempts and reports to the console.
#[derive(Debug, Parser)]
#[command(name = "schoolgate-agent", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a policy file: exit 0 and a summary if it is valid, exit 2 and every error with
    /// its line and column if not.
    Check {
        /// The policy file.
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
    },
    /// Explain what the policy decides for one device and one site at one time.
    Explain(ExplainArgs),
    /// Run packet inspection over a capture file (pcap or pcapng) and print one line per
    /// observation: each classified flow, and each DNS question.
    Replay {
        /// The capture file: Ethernet, raw IP, Linux cooked or BSD loopback frames.
        file: PathBuf,
        /// The policy file.
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Judge every observation as if at this time (RFC 3339, or local
        /// `YYYY-MM-DDTHH:MM[:SS]`). Default: the time the capture recorded.
        #[arg(long)]
        at: Option<String>,
        /// Pass each frame through the capture socket's kernel filter first, as the live
        /// capture does (frames it drops are counted, not inspected).
        #[arg(long)]
        filter: bool,
    },
    /// Run packet inspection on a live interface, as the daemon does, and print one line per
    /// observation, as `replay` does; nothing is reset, reported or quarantined. On stop, the
    /// number of frames, flows and observations goes to standard error.
    Watch {
        /// The interface to capture on.
        #[arg(long)]
        interface: String,
        /// The policy file.
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
        /// Leave the kernel filter off: every frame comes up to be inspected.
        #[arg(long)]
        unfiltered: bool,
    },
    /// Take a device out of quarantine, or lift a person's ban (with every device held for
    /// them). The running agent applies it at once (firewall, resolver, the state file) and
    /// records who released it and why.
    Release {
        /// The device: its IP address, MAC address or name.
        #[arg(required_unless_present = "person", conflicts_with = "person")]
        device: Option<String>,
        /// The person whose ban from school ICT is lifted: their username.
        #[arg(long)]
        person: Option<String>,
        /// Not lifted: the person may use school ICT under close supervision for this many
        /// minutes, every name they reach recorded; a bypass attempt ends it.
        #[arg(long, requires = "person", value_parser = clap::value_parser!(u32).range(1..=i64::from(SUPERVISED_MAX_MINUTES)))]
        supervised: Option<u32>,
        /// After supervised use: `resume` (the ban is in force again) or `end` (lifted).
        #[arg(long, requires = "supervised", value_enum, default_value_t = After::Resume)]
        then: After,
        /// Why it is released (kept in the `released` event).
        #[arg(long)]
        reason: String,
        /// The policy file (for the state directory).
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// The agent's state directory (replaces gateway.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Seconds to wait for the agent to apply the release.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Make a token for a source of sign-ins (a domain's logon script, a sign-in relay): the
    /// token goes to the source, once; the line printed after it goes in
    /// `gateway.sign_in.tokens_file`, which keeps only the token's hash.
    SignInToken {
        /// The source's name, as sessions and metrics name it (`logon-script`).
        name: String,
        /// The source may sign people in at addresses other than the one it connects from
        /// (a server reporting for many devices).
        #[arg(long)]
        relay: bool,
    },
    /// Print the events kept in the journal, oldest first, one JSON object per line (those
    /// the console has acknowledged are deleted as it does).
    Events {
        /// The policy file (for the state directory).
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// The agent's state directory (replaces gateway.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Print what to deploy on a school device so it asks the school's filtered DNS over
    /// HTTPS or TLS wherever it is, by its `off_site_id` (`gateway.off_site`): an Apple
    /// configuration profile, Windows 11 PowerShell, ChromeOS policy values, or Android's
    /// Private DNS host name.
    DeviceProfile {
        /// The device's name in the policy (any case).
        device: String,
        /// The platform.
        #[arg(long, value_enum)]
        format: ProfileFormat,
        /// The server's public address, for Windows when the DoH listen address is 0.0.0.0.
        #[arg(long)]
        address: Option<IpAddr>,
        /// The policy file.
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
    },
    /// Run the gateway daemon: load and watch the policy, serve filtered DNS. SIGHUP reloads
    /// the policy; SIGTERM or SIGINT stops it.
    Run(RunArgs),
    /// Print the nftables table the agent would load for a policy (`nft -f` input), with
    /// the listed addresses refused at that time and nothing learned yet. Loads nothing.
    PrintRuleset {
        /// The policy file.
        #[arg(long, default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// When: RFC 3339 with an offset, or local `YYYY-MM-DDTHH:MM[:SS]` in the school's
        /// time zone. Default: now.
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The policy file; its `gateway:` section holds the settings below.
    #[arg(long, default_value = DEFAULT_POLICY)]
    pub(crate) policy: PathBuf,
    /// Answer DNS on ADDR:PORT (repeatable; replaces gateway.dns.listen).
    #[arg(long = "dns-listen", value_name = "ADDR:PORT")]
    pub(crate) dns_listen: Vec<SocketAddr>,
    /// Forward allowed queries to ADDR[:PORT] (repeatable; replaces gateway.dns.upstreams).
    #[arg(long = "upstream", value_name = "ADDR[:PORT]", value_parser = upstream)]
    pub(crate) upstreams: Vec<SocketAddr>,
    /// Serve Prometheus metrics on ADDR:PORT (replaces gateway.metrics.listen).
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Keep state here (replaces gateway.state_dir).
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// Do not install the firewall table (for trials and tests).
    #[arg(long)]
    pub(crate) no_firewall: bool,
    /// Do not read the LAN interfaces' traffic (replaces gateway.inspection.enabled).
    #[arg(long)]
    pub(crate) no_inspection: bool,
    /// Log JSON lines instead of text.
    #[arg(long)]
    pub(crate) log_json: bool,
    /// Start the agent's clock at INSTANT (e.g. 2026-11-24T15:29:40Z) and run on from there:
    /// for trials and demonstrations of a schedule, never on a live gateway. Decisions,
    /// firewall timeouts and events all follow the shifted clock.
    #[arg(long, value_name = "INSTANT")]
    pub(crate) clock_from: Option<jiff::Timestamp>,
    /// Start a new journal segment after BYTES (default 8 MiB): smaller segments are sent
    /// and deleted sooner, at the cost of more files. At least 4096.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(4096..))]
    pub(crate) journal_segment_bytes: Option<u64>,
}

fn upstream(text: &str) -> Result<SocketAddr, String> {
    schoolgate_engine::policy::gateway::parse_upstream(text)
        .ok_or_else(|| format!("`{text}` is not an IP address with an optional :PORT"))
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY)]
    pub(crate) policy: PathBuf,
    /// The device's IP address.
    #[arg(long)]
    pub(crate) client: IpAddr,
    /// The device's MAC address, if known (school computers are recognised by MAC).
    #[arg(long)]
    pub(crate) mac: Option<MacAddr>,
    /// The site's domain name.
    #[arg(long)]
    pub(crate) domain: String,
    /// When: RFC 3339 with an offset, or local `YYYY-MM-DDTHH:MM[:SS]` in the school's time
    /// zone. Default: now.
    #[arg(long)]
    pub(crate) at: Option<String>,
    /// Decide as if the device were quarantined after a bypass attempt.
    #[arg(long)]
    pub(crate) quarantined: bool,
    /// Decide as if this person were signed in on the device (their username, as the roster
    /// has it or as a sign-in sends it: `SCHOOL\alice` and `alice@school.example` are
    /// `alice`).
    #[arg(long, requires = "roster")]
    pub(crate) user: Option<String>,
    /// The school's roster export (CSV) that `--user` is looked up in.
    #[arg(long)]
    pub(crate) roster: Option<PathBuf>,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What follows supervised use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum After {
    /// The ban is in force again.
    Resume,
    /// The ban is lifted.
    End,
}

/// The platforms `device-profile` prints for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProfileFormat {
    Apple,
    Windows,
    Chromeos,
    Android,
}

//! The `schoolgate-agent` binary: command-line glue over the library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use jiff::ToSpan;
use schoolgate_agent::policy_file::{self, LoadError};
use schoolgate_engine::instant::parse_instant;
use schoolgate_engine::{Client, PersonView, Policy, decide, explain};

use std::sync::Arc;

use schoolgate_agent::act::quarantine::Then;
use schoolgate_agent::daemon::{Config, Control, Overrides, Ready};
use schoolgate_agent::reload::LivePolicy;
use tokio::signal::unix::{SignalKind, signal};

use cli::{Cli, Command, ExplainArgs, RunArgs};

/// Exit status for bad input: an invalid policy, a bad argument.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { policy } => check(&policy),
        Command::Explain(args) => explain_cmd(&args),
        Command::Run(args) => run(&args),
        Command::PrintRuleset { policy, at } => print_ruleset(&policy, at.as_deref()),
        Command::Release {
            device,
            person,
            supervised,
            then,
            reason,
            policy,
            state_dir,
            wait,
        } => {
            let then = match then {
                cli::After::Resume => Then::Resume,
                cli::After::End => Then::End,
            };
            let what = match (device, person) {
                (_, Some(p)) => Released::Person(p, supervised.map(|m| (m, then))),
                (Some(d), None) => Released::Device(d),
                (None, None) => return ExitCode::from(EXIT_BAD_INPUT),
            };
            release(&what, &reason, &policy, state_dir, wait)
        }
        Command::Events { policy, state_dir } => events(&policy, state_dir),
        Command::SignInToken { name, relay } => sign_in_token(&name, relay),
        Command::DeviceProfile {
            device,
            format,
            address,
            policy,
        } => device_profile(&policy, &device, format, address),
        Command::Replay {
            file,
            policy,
            json,
            at,
            filter,
        } => replay(&file, &policy, json, filter, at.as_deref()),
        Command::Watch {
            interface,
            policy,
            json,
            seconds,
            unfiltered,
        } => watch(&interface, &policy, json, seconds, unfiltered),
    }
}

/// Exit status when the release could not be made (not quarantined, or no agent applied it).
const EXIT_NOT_RELEASED: u8 = 1;

/// The state directory: the flag, else the policy's `gateway.state_dir`, else the default.
/// `None` (reported) if the policy is needed and cannot be read.
fn state_dir_of(policy: &Path, flag: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    if let Some(d) = flag {
        return Some(d);
    }
    let p = load_or_report(policy)?;
    Some(p.gateway().map_or_else(
        || std::path::PathBuf::from(schoolgate_engine::policy::gateway::DEFAULT_STATE_DIR),
        |g| g.state_dir.clone(),
    ))
}

fn events(policy: &Path, state_dir: Option<std::path::PathBuf>) -> ExitCode {
    let Some(dir) = state_dir_of(policy, state_dir) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    match schoolgate_agent::report::journal::read_dir(&dir) {
        Ok(records) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in records {
                if out
                    .write_all(&r)
                    .and_then(|()| out.write_all(b"\n"))
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
            }
            if out.flush().is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a release names: a device, or a person (and supervised use: minutes, then what).
enum Released {
    Device(String),
    Person(String, Option<(u32, Then)>),
}

fn release(
    what: &Released,
    reason: &str,
    policy: &Path,
    state_dir: Option<std::path::PathBuf>,
    wait: u64,
) -> ExitCode {
    use schoolgate_agent::act::quarantine::{Request, read_banned, read_state, request_release};
    if reason.trim().is_empty() {
        eprintln!("error: --reason must say why the device is released");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let Some(dir) = state_dir_of(policy, state_dir) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let (device, person, supervised, shown) = match what {
        Released::Device(d) => (d.clone(), None, None, d.clone()),
        Released::Person(p, s) => (String::new(), Some(p.clone()), *s, p.clone()),
    };
    // Done when the device or ban is gone, or (supervised use) the ban is supervised.
    let named = |dir: &Path| match what {
        Released::Device(d) => read_state(dir).map(|records| records.iter().any(|r| r.named_by(d))),
        Released::Person(p, s) => read_banned(dir).map(|people| {
            people.iter().any(|b| {
                b.username.eq_ignore_ascii_case(p) && (s.is_none() || b.supervised.is_none())
            })
        }),
    };
    match named(&dir) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!(
                "error: {shown} is not quarantined (see {})",
                dir.join(schoolgate_agent::act::quarantine::STATE_FILE)
                    .display()
            );
            return ExitCode::from(EXIT_NOT_RELEASED);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_NOT_RELEASED);
        }
    }
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let request = Request {
        device,
        person,
        supervised_minutes: supervised.map(|(m, _)| m),
        then: supervised.map(|(_, t)| t),
        reason: reason.to_owned(),
        by,
        time: schoolgate_agent::clock::now(),
    };
    if let Err(e) = request_release(&dir, &request) {
        eprintln!(
            "error: cannot write the release request in {}: {e}",
            dir.display()
        );
        return ExitCode::from(EXIT_NOT_RELEASED);
    }
    let deadline = schoolgate_agent::clock::instant() + std::time::Duration::from_secs(wait);
    while schoolgate_agent::clock::instant() < deadline {
        if matches!(named(&dir), Ok(false)) {
            println!("released {shown}");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!(
        "error: the agent did not apply the release within {wait} s; it stays queued in {} and is applied when the agent runs",
        dir.join(schoolgate_agent::act::quarantine::REQUESTS_FILE)
            .display()
    );
    ExitCode::from(EXIT_NOT_RELEASED)
}

fn replay(file: &Path, path: &Path, json: bool, filter: bool, at: Option<&str>) -> ExitCode {
    let Some(policy) = load_or_report(path) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let at = match at {
        Some(_) => match instant_arg(at, &policy) {
            Some(t) => Some(t),
            None => return ExitCode::from(EXIT_BAD_INPUT),
        },
        None => None,
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let format = if json {
        schoolgate_agent::replay::Format::Json
    } else {
        schoolgate_agent::replay::Format::Text
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let options = schoolgate_agent::replay::Options { at, format, filter };
    match schoolgate_agent::replay::replay(&policy, &bytes, options, &mut out) {
        Ok(summary) => {
            let dropped = if filter {
                format!(" ({} dropped by the kernel filter)", summary.filtered)
            } else {
                String::new()
            };
            eprintln!(
                "{}: {} packets{dropped}, {} flows, {} observations",
                file.display(),
                summary.packets,
                summary.flows,
                summary.observations
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn watch(
    interface: &str,
    path: &Path,
    json: bool,
    seconds: Option<u64>,
    unfiltered: bool,
) -> ExitCode {
    use schoolgate_agent::replay::{Format, Options, observe};
    let Some(policy) = load_or_report(path) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let mut frames = match schoolgate_agent::capture::live::open(interface, unfiltered) {
        Ok((frames, _)) => frames,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let options = Options {
        at: None,
        format: if json { Format::Json } else { Format::Text },
        // The kernel filtered already (unless asked not to).
        filter: false,
    };
    let until =
        seconds.map(|s| schoolgate_agent::clock::instant() + std::time::Duration::from_secs(s));
    let filter = if unfiltered { "off" } else { "on" };
    eprintln!("watching {interface} (kernel filter {filter}); nothing is acted on");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match observe(&policy, &mut frames, options, until, &mut out) {
        Ok(summary) => {
            eprintln!(
                "{interface}: {} frames, {} flows, {} observations",
                summary.packets, summary.flows, summary.observations
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {interface}: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn device_profile(
    path: &Path,
    device: &str,
    format: cli::ProfileFormat,
    address: Option<std::net::IpAddr>,
) -> ExitCode {
    use schoolgate_gateway::dns::profile::{Endpoint, Platform};
    let Some(policy) = load_or_report(path) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(off_site) = policy.gateway().and_then(|g| g.off_site.as_ref()) else {
        eprintln!(
            "error: {} has no `gateway.off_site`: nothing serves devices away from school",
            path.display()
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(entry) = policy
        .devices()
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(device))
    else {
        eprintln!("error: no device named {device:?} in {}", path.display());
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(id) = entry.off_site_id.as_deref() else {
        // A suggestion with a random part: an id is in the device's settings, not a secret,
        // but one nobody can guess keeps strangers from using the school's resolver as it.
        let mut random = [0u8; 5];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let base: String = entry
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        eprintln!(
            "error: {} has no `off_site_id` in {}: give it one, e.g. `off_site_id: {}-{suffix}`",
            entry.name,
            path.display(),
            base.trim_matches('-'),
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let endpoint = Endpoint {
        device: &entry.name,
        id,
        server_name: &off_site.server_name,
        doh: off_site.doh.first().copied(),
        dot: off_site.dot.first().copied(),
        public_address: address,
        school: policy.school_name(),
    };
    let platform = match format {
        cli::ProfileFormat::Apple => Platform::Apple,
        cli::ProfileFormat::Windows => Platform::Windows,
        cli::ProfileFormat::Chromeos => Platform::ChromeOs,
        cli::ProfileFormat::Android => Platform::Android,
    };
    match endpoint.profile(platform) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn print_ruleset(path: &Path, at: Option<&str>) -> ExitCode {
    use schoolgate_gateway::firewall::listed;
    use schoolgate_gateway::firewall::ruleset::{self, Settings, State};
    let Some(policy) = load_or_report(path) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(now) = instant_arg(at, &policy) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(gateway) = policy.gateway() else {
        eprintln!("error: {} has no `gateway:` section", path.display());
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    if gateway.lan_interfaces.is_empty() {
        eprintln!("error: the firewall needs `gateway.lan_interfaces`");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let settings = Settings::new(gateway.lan_interfaces.clone(), &gateway.dns.listen);
    let state = State {
        listed: listed::enforce(&policy, &Default::default(), now),
        ..State::default()
    };
    print!("{}", ruleset::build(&policy, &settings, &state));
    ExitCode::SUCCESS
}

fn run(args: &RunArgs) -> ExitCode {
    init_logging(args.log_json);
    if let Some(start) = args.clock_from {
        schoolgate_agent::clock::start_at(start);
        tracing::warn!(%start, "the clock is shifted for a trial: decisions follow it, not the real time");
    }
    let live = match LivePolicy::load(&args.policy) {
        Ok(live) => live,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let overrides = Overrides {
        dns_listen: args.dns_listen.clone(),
        upstreams: args.upstreams.clone(),
        state_dir: args.state_dir.clone(),
        metrics_listen: args.metrics_listen,
        no_firewall: args.no_firewall,
        no_inspection: args.no_inspection,
        journal_segment_bytes: args.journal_segment_bytes,
    };
    let config = match Config::new(&live.current(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let c = tokio::select! {
                    _ = hup.recv() => Control::Reload,
                    _ = term.recv() => Control::Stop,
                    _ = int.recv() => Control::Stop,
                };
                if tx.send(c).is_err() || c == Control::Stop {
                    break;
                }
            }
        });
        let on_ready = |ready: &Ready| {
            tracing::info!(dns = ?ready.dns, block_page = ?ready.block_page, metrics = ?ready.metrics, "ready");
        };
        schoolgate_agent::daemon::run(Arc::clone(&live), config, on_ready, rx).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a new sign-in token and its tokens-file line.
fn sign_in_token(name: &str, relay: bool) -> ExitCode {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        eprintln!("error: a source's name is one word: `{name}` is not");
        return ExitCode::from(2);
    }
    let (token, line) = schoolgate_agent::people::sign_in::new_token(name, relay);
    println!("{token}");
    println!("# add to gateway.sign_in.tokens_file:");
    println!("{line}");
    ExitCode::SUCCESS
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_or_report(path: &Path) -> Option<Policy> {
    match policy_file::load(path, None) {
        Ok(loaded) => Some(loaded.policy),
        Err(e @ LoadError::Read { .. }) => {
            eprintln!("error: {e}");
            None
        }
        Err(LoadError::Invalid(errors)) => {
            for e in errors.iter() {
                eprintln!("error: {e}");
            }
            let n = errors.len();
            eprintln!(
                "{}: {n} error{}; policy not loaded",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            None
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let Some(policy) = load_or_report(path) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let n_categories = policy.categories().count();
    let cal = policy.calendar();
    println!(
        "{}: valid: {} ({}), {}, {}, {}, {}, {} ({}, {}), {}, {}",
        path.display(),
        policy.school_name(),
        policy.timezone_name(),
        count(policy.groups().len(), "group"),
        count(policy.devices().len(), "device"),
        count(policy.rules().len(), "rule"),
        count(policy.exceptions().len(), "exception"),
        count(n_categories, "category"),
        count(policy.n_domains(), "domain"),
        count(policy.listed_addresses().len(), "address"),
        count(cal.terms().len(), "term"),
        count(cal.closures().len(), "closure"),
    );
    // Term-time rules stop applying after the last term: say so before it bites.
    let today = schoolgate_agent::clock::now()
        .to_zoned(policy.timezone().clone())
        .date();
    if let Some((_, last)) = cal.span() {
        if last < today {
            eprintln!(
                "warning: the last term ended on {last}; term-time schedules no longer apply. Add the new terms to `calendar`."
            );
        } else if last < today.saturating_add(42.days()) {
            eprintln!(
                "warning: the last term ends on {last}; add the next terms to `calendar` before then."
            );
        }
    }
    ExitCode::SUCCESS
}

/// `--at`, read in the school's time zone (now if not given); `None` after saying why not.
fn instant_arg(at: Option<&str>, policy: &schoolgate_engine::Policy) -> Option<jiff::Timestamp> {
    let Some(text) = at else {
        return Some(schoolgate_agent::clock::now());
    };
    let parsed = parse_instant(text, policy.timezone());
    if parsed.is_none() {
        eprintln!(
            "error: --at `{text}` is not a time (expected RFC 3339 such as 2026-11-24T10:00:00+00:00, or local 2026-11-24T10:00)"
        );
    }
    parsed
}

fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ if noun.ends_with('s') => format!("{n} {noun}es"),
        _ => format!("{n} {noun}s"),
    }
}

fn explain_cmd(args: &ExplainArgs) -> ExitCode {
    let Some(policy) = load_or_report(&args.policy) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(now) = instant_arg(args.at.as_deref(), &policy) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let client = Client::new(args.client, args.mac);
    let directory = match &args.roster {
        Some(path) => match read_roster(path) {
            Some(d) => Some(d),
            None => return ExitCode::from(EXIT_BAD_INPUT),
        },
        None => None,
    };
    let person = match (&args.user, &directory) {
        (Some(user), Some(directory)) => match directory.find(user) {
            Some(p) => Some(p),
            None => {
                eprintln!(
                    "error: --user `{user}` is not in the roster ({} people)",
                    directory.len()
                );
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
        _ => None,
    };
    let view = person.map(|p| PersonView {
        username: p.username.as_str(),
        class: p.class.as_deref(),
        groups: &p.groups,
    });
    let view = view.as_ref();
    let decision = decide(&policy, &client, view, &args.domain, now, args.quarantined);
    if args.json {
        println!(
            "{}",
            explain::to_json(&policy, &decision, &client, view, &args.domain, now)
        );
    } else {
        println!(
            "{}",
            explain::sentence(&policy, &decision, &client, view, &args.domain, now)
        );
    }
    ExitCode::SUCCESS
}

/// The roster at `path`, or `None` with every error printed as `path:line:column: …`.
fn read_roster(path: &Path) -> Option<schoolgate_people::Directory> {
    use schoolgate_agent::people::{self, RosterFileError};
    match people::load(path) {
        Ok(d) => Some(d),
        Err(e @ RosterFileError::Read { .. }) => {
            eprintln!("error: {e}");
            None
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

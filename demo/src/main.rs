//! `schoolgate-demo`: one command that shows schoolgate at work. It builds a school network
//! from network namespaces (`schoolgate-lab`), runs the real agent on its gateway with the
//! repository's `policy.yaml` and the real console (SQLite) beside it, plays a scripted
//! school day, and leaves the console open with the day's alerts until Ctrl-C; then it
//! tears everything down. `--check` makes it a test: see [`cli::Cli`].
//!
//! The console runs on the gateway's loopback; this process offers it on the machine's
//! own address (127.0.0.1:8443 by default) through a Unix socket and `lab-peer relay`, so
//! nothing in the lab is reachable from outside it but the console.

// The demonstration talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod binaries;
mod cli;
mod day;
mod dsl;
mod internet;
mod school;

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use schoolgate_lab::{Lab, console, eventually, workspace_bin};

use crate::cli::Cli;

/// Set by Ctrl-C or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

/// What the demonstration's tools are, for the message when one is missing.
const TOOLS: [&str; 10] = [
    "ip",
    "nft",
    "dig",
    "kdig",
    "curl",
    "openvpn",
    "openssl",
    "tinyproxy",
    "sqlite3",
    "radclient",
];

/// The bypass attempts the day makes, which must reach the console: (technique, device).
const EXPECTED_ALERTS: [(&str, &str); 3] = [
    ("dns_over_https", school::LAPTOP.host.ip),
    ("openvpn", school::LAPTOP.host.ip),
    ("http_proxy", school::PHONE.host.ip),
];

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("schoolgate-demo: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn preflight() -> anyhow::Result<()> {
    if !schoolgate_lab::is_root() {
        bail!(
            "this needs root: it builds a network from namespaces and loads nftables tables \
             into them (nothing outside them is changed). Run it as root, for example \
             `sudo -E env PATH=\"$PATH\" cargo run --release -p schoolgate-demo`."
        );
    }
    if let Some(tool) = schoolgate_lab::missing_tool(&TOOLS) {
        bail!("`{tool}` is not installed: run scripts/demo, which installs it (scripts/setup)");
    }
    Ok(())
}

/// A password for the demonstration's DSL account, fresh each run.
fn password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    preflight()?;
    binaries::ensure(cli.no_build)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            STOP.store(true, Ordering::Relaxed);
        }
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(cli.listen))
        .with_context(|| {
            format!(
                "cannot offer the console on {} (choose another address with --listen)",
                cli.listen
            )
        })?;
    let offered = listener.local_addr()?;
    let host = if offered.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        offered.ip().to_string()
    };
    let url = format!("https://{host}:{}", offered.port());

    println!("schoolgate demonstration");
    println!("Building the lab: a gateway, five devices on the school LAN and an internet…");
    let mut lab = Lab::with(school::TOPOLOGY);
    let policy = school::write_policy(&cli.policy, lab.dir.path())?;
    let checked = Command::new(workspace_bin("schoolgate-agent"))
        .args(["check", "--policy"])
        .arg(&policy)
        .output()?;
    if !checked.status.success() {
        bail!(
            "the demonstration's policy does not pass `check`:\n{}",
            String::from_utf8_lossy(&checked.stdout)
        );
    }
    internet::start(&mut lab)?;

    let dsl_password = password()?;
    console::prepare(&lab, &["127.0.0.1", "localhost"]);
    console::add_user(&lab, "dsl", "dsl", &dsl_password);
    console::start(&mut lab, "console", school::CONSOLE_ON_GATEWAY);
    let socket = lab.path("console.sock");
    let peer = workspace_bin("lab-peer").display().to_string();
    lab.spawn(
        "gw",
        "console-relay",
        &[
            &peer,
            "relay",
            &socket.display().to_string(),
            school::CONSOLE_ON_GATEWAY,
        ],
    );
    if !eventually(10, || socket.exists()) {
        bail!(
            "the console relay did not start: {}",
            lab.log("console-relay")
        );
    }
    runtime.spawn(schoolgate_lab::forward(listener, socket));

    println!();
    println!(
        "Policy   {} as it is, but for gateway.state_dir and gateway.console, which point into\n         {}",
        cli.policy.display(),
        lab.dir.path().display()
    );
    println!(
        "Clock    the agent's clock is set to each scene's time on Tuesday {} (a term day; the\n         policy's YouTube exception runs 13:00–14:00), then runs on: `run --clock-from`",
        day::DATE
    );
    println!("Console  {url}  (self-signed certificate)");
    println!("         sign in as dsl, password {dsl_password}");

    let ca = lab.path("console.crt");
    let dsl = dsl::Session::sign_in(&url, &ca, "dsl", &lab.path("dsl.password"), lab.dir.path())?;
    let outcome = match day::play(&mut lab, &policy, &dsl, &STOP) {
        Ok(outcome) => outcome,
        Err(day::Interrupted) => {
            println!("\nInterrupted: tearing the lab down…");
            drop(lab);
            println!("Done.");
            return Ok(ExitCode::from(130));
        }
    };

    println!();
    let alerts = dsl.alerts()?;
    println!(
        "The console lists {} incidents, as the DSL sees them:",
        alerts.len()
    );
    for a in &alerts {
        println!("  {}  {}  [{}]", a.time, a.title, a.technique);
    }
    let mut failures = outcome.failures;
    for (technique, ip) in EXPECTED_ALERTS {
        if !alerts
            .iter()
            .any(|a| a.technique.split(',').any(|t| t == technique) && a.device_ip == ip)
        {
            failures.push(format!("no {technique} alert from {ip} at the console"));
        }
    }
    // The pupil signed in on the laptop is named on its alerts.
    let laptop = school::LAPTOP.host.ip;
    if !alerts
        .iter()
        .any(|a| a.device_ip == laptop && a.person == "Amira Khan")
    {
        failures.push(format!(
            "no alert from {laptop} names Amira Khan, who signed in there"
        ));
    }

    if cli.check {
        println!();
        let code = if failures.is_empty() {
            println!(
                "Check passed: every step went as the policy says, and the alerts are at the console."
            );
            ExitCode::SUCCESS
        } else {
            println!("Check failed:");
            for f in &failures {
                println!("  {f}");
            }
            ExitCode::FAILURE
        };
        drop(lab);
        return Ok(code);
    }
    if !failures.is_empty() {
        println!("\nNot everything went as the policy says:");
        for f in &failures {
            println!("  {f}");
        }
    }
    println!();
    println!("The console is at {url} (sign in as dsl, password {dsl_password}).");
    println!("The lab keeps running, the agent at its last scene's time. Ctrl-C stops it all.");
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nTearing the lab down…");
    drop(lab);
    println!("Done.");
    Ok(ExitCode::SUCCESS)
}

//! The console as the end-to-end tests run it: its command line, a TLS certificate for the
//! addresses it listens on, an agent's token, the server started in a lab namespace, and
//! its SQLite database read with `sqlite3`.

use std::path::Path;
use std::process::Command;

use crate::{Lab, eventually, workspace_bin};

/// Runs `schoolgate-console ARGS --data DATA`, asserts it succeeded, and gives its stdout.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(workspace_bin("schoolgate-console"))
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Prepares the console's data directory (`console/`), a self-signed certificate for
/// `addresses` (`console.crt`, `console.key`), and an agent `gw1` whose token is in
/// `agent.token`: everything a policy's `gateway.console` section names.
pub fn prepare(lab: &Lab, addresses: &[&str]) {
    std::fs::create_dir_all(lab.path("console")).unwrap();
    let names: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    std::fs::write(lab.path("console.crt"), made.cert.pem()).unwrap();
    std::fs::write(lab.path("console.key"), made.signing_key.serialize_pem()).unwrap();
    let out = cli(&lab.path("console"), &["agent", "add", "gw1"]);
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("sga_") && token.len() == 68, "{out}");
    std::fs::write(lab.path("agent.token"), format!("{token}\n")).unwrap();
}

/// Adds a console account with `role` and `password`.
pub fn add_user(lab: &Lab, name: &str, role: &str, password: &str) {
    let file = lab.path(&format!("{name}.password"));
    std::fs::write(&file, password).unwrap();
    cli(
        &lab.path("console"),
        &[
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-file",
            file.to_str().unwrap(),
        ],
    );
}

/// Starts the console on the gateway over HTTPS at `listen`, as `label`, and waits until it
/// listens.
pub fn start(lab: &mut Lab, label: &str, listen: &str) {
    let bin = workspace_bin("schoolgate-console");
    let (data, crt, key) = (
        lab.path("console"),
        lab.path("console.crt"),
        lab.path("console.key"),
    );
    lab.spawn(
        "gw",
        label,
        &[
            bin.to_str().unwrap(),
            "serve",
            "--listen",
            listen,
            "--data",
            data.to_str().unwrap(),
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        eventually(10, || lab.log(label).contains("listening on https://")),
        "{}",
        lab.log(label)
    );
}

/// The rows `query` finds in the console's database, one line each.
pub fn query(lab: &Lab, query: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(lab.path("console/console.db"))
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A policy for an agent on the lab's gateway that blocks `instagram.com` for the pupils
/// (answered NXDOMAIN), with the firewall and inspection off, keeps its state in `state`, and
/// sends its events as `gw1` to the console at `console` (as [`prepare`] set it up).
pub fn agent_policy(lab: &Lab, console: &str, state: &Path) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
calendar:
  terms: []
schedules: {{}}
categories:
  social_networking: {{ label: social networking, domains: [instagram.com] }}
groups:
  pupils:
    networks: [10.77.0.0/28]
rules:
  - {{ name: No social networking, groups: [pupils], block: [social_networking], when: always }}
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{gateway}:53"]
    upstreams: ["198.51.100.53:53"]
    block_response: nxdomain
    rate_limit: 100000
  state_dir: {state}
  firewall: {{ enabled: false }}
  inspection: {{ enabled: false }}
  console: {{ url: "https://{console}", token_file: {token}, ca_file: {ca}, name: gw1 }}
"#,
        gateway = crate::GATEWAY,
        state = state.display(),
        token = lab.path("agent.token").display(),
        ca = lab.path("console.crt").display(),
    )
}

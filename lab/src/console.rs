//! The console as the end-to-end tests run it: its command line, a TLS certificate for the
//! addresses it listens on, an agent's token, the server started in a lab namespace, and
//! its SQLite database read with `sqlite3`, or PostgreSQL reached from the lab's namespaces.

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
    prepare_on(lab, addresses, None);
}

/// As [`prepare`], the console's records in the PostgreSQL database at `database` (a URL
/// the test process reaches) instead of SQLite in the data directory.
pub fn prepare_on(lab: &Lab, addresses: &[&str], database: Option<&str>) {
    std::fs::create_dir_all(lab.path("console")).unwrap();
    let names: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    std::fs::write(lab.path("console.crt"), made.cert.pem()).unwrap();
    std::fs::write(lab.path("console.key"), made.signing_key.serialize_pem()).unwrap();
    let mut args = vec!["agent", "add", "gw1"];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    let out = cli(&lab.path("console"), &args);
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("sga_") && token.len() == 68, "{out}");
    std::fs::write(lab.path("agent.token"), format!("{token}\n")).unwrap();
}

/// Adds a console account with `role` and `password`.
pub fn add_user(lab: &Lab, name: &str, role: &str, password: &str) {
    add_user_on(lab, name, role, password, None);
}

/// As [`add_user`], in the PostgreSQL database at `database` when given.
pub fn add_user_on(lab: &Lab, name: &str, role: &str, password: &str, database: Option<&str>) {
    let file = lab.path(&format!("{name}.password"));
    std::fs::write(&file, password).unwrap();
    let file = file.to_str().unwrap();
    let mut args = vec!["user", "add", name, "--role", role, "--password-file", file];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    cli(&lab.path("console"), &args);
}

/// Starts the console on the gateway over HTTPS at `listen`, as `label`, and waits until it
/// listens.
pub fn start(lab: &mut Lab, label: &str, listen: &str) {
    start_on(lab, label, listen, None);
}

/// As [`start`], on the PostgreSQL database at `database` (a URL the gateway's namespace
/// reaches: see [`postgres_for_the_lab`]) when given.
pub fn start_on(lab: &mut Lab, label: &str, listen: &str, database: Option<&str>) {
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
        ]
        .into_iter()
        .chain(
            database
                .map(|d| ["--database-url", d])
                .into_iter()
                .flatten(),
        )
        .collect::<Vec<_>>(),
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

/// A person signed in to the console, as a browser would be: `curl` in the lab namespace
/// `ns` with a cookie jar, trusting the console's certificate, sending each form's CSRF token.
#[derive(Debug)]
pub struct Session {
    ns: &'static str,
    base: String,
    jar: std::path::PathBuf,
    ca: std::path::PathBuf,
}

/// What the console answered a request: status, `Location`, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Session {
    /// Signs `user` in with `password` at `base` (`https://10.77.0.1:8443`) from `ns`.
    pub fn sign_in(lab: &Lab, ns: &'static str, base: &str, user: &str, password: &str) -> Self {
        let s = Self {
            ns,
            base: base.trim_end_matches('/').to_owned(),
            jar: lab.path(&format!("{user}.cookies")),
            ca: lab.path("console.crt"),
        };
        let login = s.get(lab, "/login");
        let csrf = csrf_of(&login.body);
        let done = s.send(
            lab,
            "/login",
            &[("csrf", &csrf), ("username", user), ("password", password)],
        );
        assert_eq!(done.status, 303, "signing in as {user}: {done:?}");
        s
    }

    fn curl(&self, lab: &Lab, args: &[&str]) -> Answer {
        let mut cmd: Vec<&str> = vec![
            "curl",
            "-s",
            "--max-time",
            "10",
            "--cacert",
            self.ca.to_str().unwrap_or_default(),
            "-b",
            self.jar.to_str().unwrap_or_default(),
            "-c",
            self.jar.to_str().unwrap_or_default(),
            "-w",
            "\n%{http_code} %{redirect_url}",
        ];
        cmd.extend_from_slice(args);
        let out = lab.exec(self.ns, &cmd);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
        let (status, location) = tail.split_once(' ').unwrap_or((tail, ""));
        Answer {
            status: status.trim().parse().unwrap_or(0),
            location: location
                .trim()
                .strip_prefix(&self.base)
                .unwrap_or(location.trim())
                .to_owned(),
            body: body.to_owned(),
        }
    }

    /// `GET path`.
    pub fn get(&self, lab: &Lab, path: &str) -> Answer {
        self.curl(lab, &[&format!("{}{path}", self.base)])
    }

    fn send(&self, lab: &Lab, path: &str, fields: &[(&str, &str)]) -> Answer {
        let encoded: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = Vec::new();
        for f in &encoded {
            args.push("--data-urlencode");
            args.push(f);
        }
        let url = format!("{}{path}", self.base);
        args.push(&url);
        self.curl(lab, &args)
    }

    /// `POST path` with `fields` and the CSRF token of the first form on `page`.
    pub fn post(&self, lab: &Lab, page: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = csrf_of(&self.get(lab, page).body);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(lab, path, &all)
    }
}

/// The CSRF token of the first form in `page`.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// The PostgreSQL server at `host:port` (the test's namespace, where it listens on loopback)
/// made reachable from every lab namespace through a Unix socket, a file, in the lab's
/// directory: gives the socket's directory, which a `postgres://` URL names as its `host`
/// parameter. PostgreSQL sees each connection as a TCP one from loopback (so a password is
/// asked, as for the test itself). The relay runs until the test process ends.
pub fn postgres_for_the_lab(lab: &Lab, host: &str, port: u16) -> std::path::PathBuf {
    use std::os::unix::net::UnixListener;
    let dir = lab.path("postgres");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let target = format!("{host}:{port}");
    std::thread::spawn(move || {
        for unix in listener.incoming().flatten() {
            let Ok(tcp) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            // Each direction is copied until its end, which is then passed on.
            let (mut unix_in, mut tcp_out) = (unix.try_clone().unwrap(), tcp.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_in, &mut tcp_out);
                let _ = tcp_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut tcp_in, mut unix_out) = (tcp, unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_in, &mut unix_out);
                let _ = unix_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    dir
}

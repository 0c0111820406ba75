//! A school network built from network namespaces, for end-to-end tests. [`console`] runs
//! schoolgate's console for a lab and [`vpn`] OpenVPN at both ends; the `lab-peer` and
//! `lab-flood` programs (`bin/`) play the internet side and a traffic source.
//!
//! ```text
//!  pupil 10.77.0.10 ─┐                                    ┌ inet lo: 198.51.100.53 (resolver)
//!  school 10.77.0.12 ┤                                    │          198.51.100.10/.11 (web)
//!  staff 10.77.0.20 ─┼─ br0 (ns sw) ─ lan0 [gw] wan0 ─ wan0 [inet]
//!  phone 10.77.0.40 ─┤      10.77.0.1 / 2001:db8:77::1   203.0.113.2 ↔ .1
//!  outsider 10.77.0.99
//! ```
//!
//! Every namespace name starts with a per-lab prefix (process id and a counter), so labs in
//! parallel tests never meet. [`Lab`]'s `Drop` kills what it started, and anything else
//! still running in its namespaces, and deletes every namespace and its `/etc/netns`
//! directory, whether the test passed or not. Nothing is
//! created in the root namespace, and no traffic leaves the lab.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod capture;
pub mod console;
pub mod vpn;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A host on the lab's LAN.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub name: &'static str,
    pub ip: &'static str,
    pub ip6: &'static str,
    pub mac: &'static str,
}

pub const PUPIL: Host = Host {
    name: "pupil",
    ip: "10.77.0.10",
    ip6: "2001:db8:77::110",
    mac: "52:54:00:aa:00:10",
};
/// A school computer, on the pupils' network, known to the policy by its MAC.
pub const SCHOOL: Host = Host {
    name: "school",
    ip: "10.77.0.12",
    ip6: "2001:db8:77::112",
    mac: "52:54:00:12:34:56",
};
pub const STAFF: Host = Host {
    name: "staff",
    ip: "10.77.0.20",
    ip6: "2001:db8:77::220",
    mac: "52:54:00:aa:00:20",
};
pub const PHONE: Host = Host {
    name: "phone",
    ip: "10.77.0.40",
    ip6: "2001:db8:77::340",
    mac: "52:54:00:aa:00:40",
};
/// On the LAN but in none of the policy's networks.
pub const OUTSIDER: Host = Host {
    name: "outsider",
    ip: "10.77.0.99",
    ip6: "2001:db8:77::999",
    mac: "52:54:00:aa:00:99",
};
pub const HOSTS: [Host; 5] = [PUPIL, SCHOOL, STAFF, PHONE, OUTSIDER];

/// A lab's LAN: its hosts, the gateway's addresses on it and the networks it holds (which
/// the "internet" routes back through the gateway). Every host's address takes the LAN's
/// prefix length, so one flat segment can carry several of a policy's networks.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    pub hosts: &'static [Host],
    pub gateway: &'static str,
    pub gateway6: &'static str,
    /// e.g. `10.77.0.0/24`.
    pub lan: &'static str,
    pub lan6: &'static str,
}

/// The tests' lab: [`HOSTS`] on 10.77.0.0/24.
pub const TEST: Topology = Topology {
    hosts: &HOSTS,
    gateway: GATEWAY,
    gateway6: GATEWAY6,
    lan: "10.77.0.0/24",
    lan6: "2001:db8:77::/64",
};

impl Topology {
    fn prefix(network: &str) -> &str {
        network.rsplit_once('/').map_or("32", |(_, p)| p)
    }
}

pub const GATEWAY: &str = "10.77.0.1";
pub const GATEWAY6: &str = "2001:db8:77::1";
pub const RESOLVER: &str = "198.51.100.53";
pub const WEB: &str = "198.51.100.10";
pub const SAFE_WEB: &str = "198.51.100.11";
/// Sites with addresses of their own (the fake resolver answers `…A-B-C-D.ip.lab` with them).
pub const SITES: [&str; 5] = [
    "198.51.100.20",
    "198.51.100.21",
    "198.51.100.22",
    "198.51.100.23",
    "198.51.100.24",
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The first of `tools` that is not on the `PATH`, if any.
pub fn missing_tool<'a>(tools: &[&'a str]) -> Option<&'a str> {
    tools.iter().copied().find(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Why a lab cannot be built here.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("not root: network namespaces need CAP_NET_ADMIN".into());
    }
    missing_tool(&["ip", "dig", "curl", "kdig", "nft"])
        .map(|tool| format!("`{tool}` is not installed (see scripts/setup)"))
}

/// Skips the calling test with a message when no lab can be built, except under CI, where
/// that is a failure.
#[macro_export]
macro_rules! require_lab {
    () => {
        if let Some(why) = $crate::unavailable() {
            if std::env::var_os("CI").is_some() {
                panic!("end-to-end lab unavailable under CI: {why}");
            }
            eprintln!("skipping: end-to-end lab unavailable: {why}");
            return;
        }
    };
}

/// Returns from the calling test when `$missing` (an `Option` of something printable) names
/// a tool that is not installed: a failure under CI, which installs every tool (`.ci/run`),
/// and a skip that says why elsewhere.
#[macro_export]
macro_rules! require_tools {
    ($missing:expr) => {
        if let Some(tool) = $missing {
            if std::env::var_os("CI").is_some() {
                panic!("`{tool}` is not installed (see .ci/run)");
            }
            eprintln!("skipping: `{tool}` is not installed (see .ci/run)");
            return;
        }
    };
}

/// A running lab. Dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    topology: Topology,
    pub dir: tempfile::TempDir,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    /// Builds the tests' lab ([`TEST`]): namespaces, links, addresses and routes.
    pub fn up() -> Self {
        Self::with(TEST)
    }

    /// Builds a lab of `topology`.
    pub fn with(topology: Topology) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("sg{}x{n}", std::process::id());
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            topology,
            dir: tempfile::tempdir().unwrap(),
        };
        lab.wire();
        lab
    }

    /// The namespace name of `host` (`gw`, `inet`, `sw` or a LAN host's name).
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn add_ns(&mut self, host: &str, resolver: &str) {
        let ns = self.ns(host);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        // `ip netns exec` bind-mounts this over /etc/resolv.conf: the host's resolver is
        // never used inside the lab.
        let etc = PathBuf::from("/etc/netns").join(&ns);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {resolver}\n")).unwrap();
        self.ip(host, &["link", "set", "lo", "up"]);
        self.sysctl(host, "net.ipv6.conf.all.accept_dad=0");
        self.sysctl(host, "net.ipv6.conf.default.accept_dad=0");
    }

    fn ip(&self, host: &str, args: &[&str]) {
        let ns = self.ns(host);
        let mut all = vec!["ip", "-n", &ns];
        all.extend_from_slice(args);
        run(&all);
    }

    fn sysctl(&self, host: &str, setting: &str) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns(host),
            "sysctl",
            "-qw",
            setting,
        ]);
    }

    fn wire(&mut self) {
        let t = self.topology;
        let (bits, bits6) = (Topology::prefix(t.lan), Topology::prefix(t.lan6));
        self.add_ns("sw", "127.0.0.1");
        self.add_ns("gw", "127.0.0.1");
        self.add_ns("inet", "127.0.0.1");
        let (sw, inet) = (self.ns("sw"), self.ns("inet"));
        self.ip("sw", &["link", "add", "br0", "type", "bridge"]);
        self.ip("sw", &["link", "set", "br0", "up"]);
        for h in t.hosts {
            self.add_ns(h.name, t.gateway);
            self.ip(
                h.name,
                &[
                    "link", "add", "eth0", "type", "veth", "peer", "name", h.name, "netns", &sw,
                ],
            );
            self.ip(h.name, &["link", "set", "eth0", "address", h.mac]);
            self.ip(h.name, &["link", "set", "eth0", "up"]);
            self.ip(
                h.name,
                &["addr", "add", &format!("{}/{bits}", h.ip), "dev", "eth0"],
            );
            self.ip(
                h.name,
                &[
                    "addr",
                    "add",
                    &format!("{}/{bits6}", h.ip6),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            );
            self.ip(h.name, &["route", "add", "default", "via", t.gateway]);
            self.ip(
                h.name,
                &["-6", "route", "add", "default", "via", t.gateway6],
            );
            self.ip("sw", &["link", "set", h.name, "master", "br0", "up"]);
        }
        self.ip(
            "gw",
            &[
                "link", "add", "lan0", "type", "veth", "peer", "name", "gw", "netns", &sw,
            ],
        );
        self.ip("sw", &["link", "set", "gw", "master", "br0", "up"]);
        self.ip("gw", &["link", "set", "lan0", "up"]);
        self.ip(
            "gw",
            &[
                "addr",
                "add",
                &format!("{}/{bits}", t.gateway),
                "dev",
                "lan0",
            ],
        );
        self.ip(
            "gw",
            &[
                "addr",
                "add",
                &format!("{}/{bits6}", t.gateway6),
                "dev",
                "lan0",
                "nodad",
            ],
        );
        self.ip(
            "gw",
            &[
                "link", "add", "wan0", "type", "veth", "peer", "name", "wan0", "netns", &inet,
            ],
        );
        self.ip("gw", &["link", "set", "wan0", "up"]);
        self.ip("gw", &["addr", "add", "203.0.113.2/24", "dev", "wan0"]);
        self.ip(
            "gw",
            &["addr", "add", "2001:db8:ff::2/64", "dev", "wan0", "nodad"],
        );
        self.ip("gw", &["route", "add", "default", "via", "203.0.113.1"]);
        self.ip(
            "gw",
            &["-6", "route", "add", "default", "via", "2001:db8:ff::1"],
        );
        self.sysctl("gw", "net.ipv4.ip_forward=1");
        self.sysctl("gw", "net.ipv6.conf.all.forwarding=1");
        self.ip("inet", &["link", "set", "wan0", "up"]);
        self.ip("inet", &["addr", "add", "203.0.113.1/24", "dev", "wan0"]);
        self.ip(
            "inet",
            &["addr", "add", "2001:db8:ff::1/64", "dev", "wan0", "nodad"],
        );
        for a in [RESOLVER, WEB, SAFE_WEB].into_iter().chain(SITES) {
            self.ip("inet", &["addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }
        for a in ["2001:db8:100::53", "2001:db8:100::10"] {
            self.ip(
                "inet",
                &["addr", "add", &format!("{a}/128"), "dev", "lo", "nodad"],
            );
        }
        self.ip("inet", &["route", "add", t.lan, "via", "203.0.113.2"]);
        self.ip(
            "inet",
            &["-6", "route", "add", t.lan6, "via", "2001:db8:ff::2"],
        );
    }

    /// Runs a command in `host`'s namespace and waits for it.
    pub fn exec(&self, host: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{host}: {args:?}: {e}"))
    }

    /// Starts a long-running command in `host`'s namespace, its output going to
    /// `<dir>/<label>.log`. It is killed when the lab is dropped (or by [`Lab::signal`]).
    pub fn spawn(&mut self, host: &str, label: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{label}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        self.children.push((label.to_owned(), child));
    }

    /// Starts `sh -c SCRIPT` in `host`'s namespace and in a mount namespace of its own, as
    /// `label`: what it mounts (a tmpfs over a directory, say) nobody else sees, and it goes
    /// when the last process in it does.
    pub fn spawn_with_own_mounts(&mut self, host: &str, label: &str, script: &str) {
        self.spawn(
            host,
            label,
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
        );
    }

    /// Starts `schoolgate-agent run --policy POLICY EXTRA...` on the gateway, as `label`.
    pub fn spawn_agent(&mut self, label: &str, policy: &Path, extra: &[&str]) {
        let agent = workspace_bin("schoolgate-agent");
        let mut args = vec![
            agent.to_str().unwrap(),
            "run",
            "--policy",
            policy.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.spawn("gw", label, &args);
    }

    /// The events the agent's journal in `state/` holds, oldest first (through
    /// `schoolgate-agent events`, as an admin reads them).
    pub fn events(&self) -> Vec<serde_json::Value> {
        json_lines(
            Command::new(workspace_bin("schoolgate-agent"))
                .args(["events", "--state-dir"])
                .arg(self.path("state")),
        )
    }

    /// A self-signed certificate for `names`, written as `{stem}.crt` and `{stem}.key` in
    /// the lab's directory; the certificate's path (it is its own CA).
    pub fn certificate(&self, stem: &str, names: &[&str]) -> PathBuf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let crt = self.path(&format!("{stem}.crt"));
        std::fs::write(&crt, made.cert.pem()).unwrap();
        std::fs::write(
            self.path(&format!("{stem}.key")),
            made.signing_key.serialize_pem(),
        )
        .unwrap();
        crt
    }

    /// The process id of what was started as `label` (`ip netns exec` execs the command, so
    /// it is the program's own).
    pub fn pid(&self, label: &str) -> u32 {
        let (_, child) = self.children.iter().find(|(l, _)| l == label).unwrap();
        child.id()
    }

    /// Sends `signal` (e.g. "HUP", "TERM") to the process started as `label`.
    pub fn signal(&self, label: &str, signal: &str) {
        let (_, child) = self.children.iter().find(|(l, _)| l == label).unwrap();
        // `ip netns exec` execs the command, so the child's pid is the program's own.
        run(&["kill", &format!("-{signal}"), &child.id().to_string()]);
    }

    /// Waits up to `timeout` for the process started as `label` to exit; its exit code.
    pub fn wait(&mut self, label: &str, timeout: Duration) -> Option<i32> {
        let (_, child) = self.children.iter_mut().find(|(l, _)| l == label).unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the process started as `label` with SIGTERM and asserts it exits 0 within 10 s
    /// (its log in the message if not).
    pub fn stop_cleanly(&mut self, label: &str) {
        self.signal(label, "TERM");
        let code = self.wait(label, Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "{label} did not stop cleanly: {}",
            self.log(label)
        );
    }

    /// Whether the agent (its state in `state/`) holds `ip` in quarantine now.
    pub fn quarantined(&self, ip: &str) -> bool {
        std::fs::read_to_string(self.path("state").join("quarantine.json"))
            .is_ok_and(|t| t.contains(&format!("\"{ip}\"")))
    }

    /// The log of the process started as `label`.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{label}.log"))).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            // Whatever the programs started left behind (a browser under its driver, say)
            // would otherwise outlive the namespace.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }
}

/// What `dig` printed, read.
#[derive(Debug, Clone)]
pub struct Dig {
    /// NOERROR, NXDOMAIN, REFUSED, … or empty if no answer came.
    pub status: String,
    /// The answer section: (type, data) per record.
    pub answers: Vec<(String, String)>,
    /// The Extended DNS Error line, e.g. `15 (Blocked): (blocked by school rule: …)`.
    pub ede: Option<String>,
    pub raw: String,
}

impl Dig {
    pub fn parse(text: &str) -> Self {
        let status = text
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let ede = text
            .lines()
            .find_map(|l| l.strip_prefix("; EDE: "))
            .map(str::to_owned);
        let mut answers = Vec::new();
        let mut in_answer = false;
        for line in text.lines() {
            if line.starts_with(";; ANSWER SECTION") {
                in_answer = true;
                continue;
            }
            if in_answer {
                if line.trim().is_empty() {
                    break;
                }
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 5 {
                    answers.push((f[3].to_owned(), f[4..].join(" ")));
                }
            }
        }
        Self {
            status,
            answers,
            ede,
            raw: text.to_owned(),
        }
    }

    /// The data of the first record of `rtype`.
    pub fn first(&self, rtype: &str) -> Option<&str> {
        self.answers
            .iter()
            .find(|(t, _)| t == rtype)
            .map(|(_, d)| d.as_str())
    }
}

impl Lab {
    /// The agent's `/metrics`, asked from the gateway (the tests listen on 127.0.0.1:9153).
    /// `curl`'s exit code for `url` from `host`, waiting at most 3 s: 0 connected and got a
    /// reply, 7 refused, 28 timed out.
    pub fn curl(&self, host: &str, url: &str) -> Option<i32> {
        self.exec(
            host,
            &["curl", "-s", "-o", "/dev/null", "--max-time", "3", url],
        )
        .status
        .code()
    }

    pub fn metrics(&self) -> String {
        let out = self.exec(
            "gw",
            &[
                "curl",
                "-s",
                "--max-time",
                "3",
                "http://127.0.0.1:9153/metrics",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dig` from `host` to `server` (and `extra` options), read.
    pub fn dig(&self, host: &str, server: &str, name: &str, rtype: &str, extra: &[&str]) -> Dig {
        let at = format!("@{server}");
        let mut args = vec!["dig", "+tries=1", "+time=3", &at, name, rtype];
        args.extend_from_slice(extra);
        let out = self.exec(host, &args);
        Dig::parse(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Polls `f` every 100 ms until it is true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs `command`, which must succeed, and reads what it prints as one JSON value a line.
pub fn json_lines(command: &mut Command) -> Vec<serde_json::Value> {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON value a line"))
        .collect()
}

/// A program built by this workspace: beside the running program (`target/<profile>/`), or
/// one level up when that is a test in `target/<profile>/deps/`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let here = exe.parent().unwrap();
    let candidates = [Some(here), here.parent()];
    let found = candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.exists());
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not built beside {}: run the tests with `cargo test --workspace`",
            exe.display()
        )
    })
}

/// Accepts connections on `listener` (in the calling process's namespace) and joins each to
/// the Unix socket at `path`, where `lab-peer relay` passes it on to a server in a lab
/// namespace. Runs until the listener fails.
pub async fn forward(listener: tokio::net::TcpListener, path: PathBuf) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        let path = path.clone();
        tokio::spawn(async move {
            if let Ok(mut unix) = tokio::net::UnixStream::connect(&path).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            }
        });
    }
}

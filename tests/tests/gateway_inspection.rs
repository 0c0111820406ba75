//! Packet inspection on a gateway built from network namespaces, against real tools: a
//! pupil reaching a blocked site by its address over TLS is reset at once; DNS over HTTPS
//! (kdig), DNS over TLS (kdig), `ssh -D` (OpenSSH), an HTTP CONNECT proxy (tinyproxy), a
//! SOCKS5 proxy (microsocks), WireGuard (wireguard-go), OpenVPN, DNS over HTTP/3 and DNS
//! over QUIC (aioquic, on DoQ's port and on 443), a ping tunnel (ptunnel-ng) and fully
//! encrypted proxies (Shadowsocks, obfs4) and a TLS-wrapped one (Trojan) each become an event, and the pupil is quarantined (reaches the VLE,
//! nothing else) until `schoolgate-agent release` lets it go. A member of staff doing the
//! same only raises an alert; staff's HTTP/3 (aioquic) works, and to a name blocked for them
//! is refused in the firewall.
//!
//! Skipped, saying so, when the tools are not installed (`.ci/run` installs them; aioquic
//! goes into a virtual environment at `target/lab-venv`, or wherever `SCHOOLGATE_LAB_PYTHON`
//! points).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use schoolgate_tests::lab::{
    self, GATEWAY, GATEWAY6, Lab, PUPIL, RESOLVER, SAFE_WEB, SITES, STAFF, WEB, eventually,
};
use schoolgate_tests::{require_lab, require_tools, vpn};

const SSH_SERVER: &str = SITES[3];
const PROXIES: &str = SITES[4];
const WIREGUARD: &str = SITES[1];
const OPENVPN: &str = SITES[0];
const VLE: &str = "vle.198-51-100-22.ip.lab";
/// The ping tunnel's server: the "internet"'s address on its link to the gateway, since
/// the server's replies leave from the route's source address whatever the request was
/// sent to (as from a single-homed server on the real internet).
const PING_TUNNEL: &str = "203.0.113.1";
const SS_KEY: &str = "lab-secret";
const SS_CIPHER: &str = "chacha20-ietf-poly1305";

fn policy(lab: &Lab) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  social_networking: {{ domains: [instagram.com] }}
  vle: {{ domains: [{VLE}] }}
  encrypted_dns: {{ domains: [dns.google], technique: dns_over_https }}
  gambling: {{ domains: [bet.example] }}
groups:
  pupils: {{ networks: [10.77.0.0/28, "2001:db8:77::100/120"] }}
  staff: {{ networks: [10.77.0.16/28, "2001:db8:77::200/120"], quic: allow }}
rules:
  - {{ name: VLE always, groups: [all], allow: [vle] }}
  - {{ name: Pupils off social, groups: [pupils], block: [social_networking] }}
  - {{ name: No bypass tools, groups: [pupils], block: [encrypted_dns] }}
  - {{ name: Staff off gambling, groups: [staff], block: [gambling] }}
bypass:
  response: {{ pupils: quarantine, staff: alert }}
  quarantine_allow: [vle]
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53", "[{GATEWAY6}]:53"]
    upstreams: ["{RESOLVER}"]
    block_response: nxdomain
  state_dir: {state}
"#,
        state = lab.path("state").display(),
    )
}

/// The Python with aioquic that runs `tests/scripts/h3.py`.
fn lab_python() -> String {
    std::env::var("SCHOOLGATE_LAB_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/../target/lab-venv/bin/python3",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// `h3.py ARGS` run by the lab's Python, as one shell command.
fn h3(args: &str) -> String {
    format!(
        "{} {}/scripts/h3.py {args}",
        lab_python(),
        env!("CARGO_MANIFEST_DIR")
    )
}

fn missing_tools() -> Option<String> {
    let aioquic = Command::new(lab_python())
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !aioquic {
        return Some(format!("aioquic (for {})", lab_python()));
    }
    lab::missing_tool(&[
        "sshd",
        "ssh",
        "ssh-keygen",
        "tinyproxy",
        "microsocks",
        "wireguard-go",
        "wg",
        "openvpn",
        "openssl",
        "ptunnel-ng",
        "ss-server",
        "ss-local",
        "ping",
        "obfs4proxy",
        "trojan",
    ])
    .map(str::to_owned)
}

/// wireguard-go's control sockets live in the root namespace's `/var/run/wireguard`, named
/// after the interface; the lab's interfaces' sockets are removed when the test ends, passed
/// or not.
struct WireGuardSockets;

impl Drop for WireGuardSockets {
    fn drop(&mut self) {
        for side in ["wgs", "wgp"] {
            let _ = std::fs::remove_file(format!(
                "/var/run/wireguard/{side}{}.sock",
                std::process::id() % 100_000
            ));
        }
    }
}

/// Runs `script` with `sh -c` in `host`'s namespace; panics with its output on failure.
fn sh(lab: &Lab, host: &str, script: &str) -> String {
    let out = lab.exec(host, &["sh", "-c", script]);
    assert!(
        out.status.success(),
        "{host}: {script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether an HTTP/3 GET (aioquic) from `host` to the lab's HTTP/3 server, named `name`,
/// gets its answer.
fn http3(lab: &Lab, host: &str, name: &str) -> bool {
    lab.exec(
        host,
        &["sh", "-c", &h3(&format!("get {SAFE_WEB} 443 {name}"))],
    )
    .status
    .success()
}

fn events(lab: &Lab) -> Vec<serde_json::Value> {
    lab.events()
}

/// Whether the agent has quarantined `ip` for `technique`.
fn quarantined_for(lab: &Lab, ip: &str, technique: &str) -> bool {
    lab.quarantined(ip)
        && events(lab).iter().any(|e| {
            e["kind"] == "quarantined"
                && e["technique"] == technique
                && e["device"]["ip"].as_str() == Some(ip)
        })
}

fn release(lab: &Lab, ip: &str, reason: &str) {
    let agent = lab::workspace_bin("schoolgate-agent");
    let state = lab.path("state");
    let out = Command::new(agent)
        .args(["release", ip, "--reason", reason, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "release {ip}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the servers the bypass tools talk to, on the lab's "internet".
fn start_servers(lab: &mut Lab) {
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    let dir = lab.dir.path().to_owned();
    let d = dir.display();
    lab.spawn("inet", "resolver", &[peer, "dns", "198.51.100.53:53"]);
    lab.spawn(
        "inet",
        "web",
        &[peer, "http", "198.51.100.10:80", "198.51.100.22:80"],
    );
    // An HTTP/3 server (aioquic).
    sh(
        lab,
        "inet",
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=quic.lab \
             -days 1 -keyout {d}/h3.key -out {d}/h3.pem 2>/dev/null"
        ),
    );
    lab.spawn(
        "inet",
        "h3",
        &[
            "sh",
            "-c",
            &format!(
                "exec {}",
                h3(&format!("serve {SAFE_WEB} 443 {d}/h3.pem {d}/h3.key"))
            ),
        ],
    );
    // TLS servers: a "DoH resolver" and a web site on 443, a DoT resolver on 853.
    lab.spawn(
        "inet",
        "tls",
        &[
            peer,
            "dot",
            "198.51.100.53:443",
            "198.51.100.10:443",
            "198.51.100.53:853",
        ],
    );

    // OpenSSH, with a private /run for its privilege-separation directory.
    sh(
        lab,
        "inet",
        &format!(
            "ssh-keygen -q -t ed25519 -N '' -f {d}/host_key && ssh-keygen -q -t ed25519 -N '' -f {d}/client_key"
        ),
    );
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "ListenAddress {SSH_SERVER}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/client_key.pub\n\
             UsePAM no\nStrictModes no\nPermitRootLogin yes\nPidFile none\n"
        ),
    )
    .unwrap();
    lab.spawn_with_own_mounts(
        "inet",
        "sshd",
        &format!(
            "mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -D -e -f {d}/sshd_config"
        ),
    );

    std::fs::write(
        dir.join("tinyproxy.conf"),
        format!("User nobody\nGroup nogroup\nPort 8888\nListen {PROXIES}\nConnectPort 443\nMaxClients 10\n"),
    )
    .unwrap();
    lab.spawn(
        "inet",
        "tinyproxy",
        &[
            "tinyproxy",
            "-d",
            "-c",
            dir.join("tinyproxy.conf").to_str().unwrap(),
        ],
    );
    lab.spawn(
        "inet",
        "microsocks",
        &["microsocks", "-i", PROXIES, "-p", "1080"],
    );

    vpn::start_server(lab, OPENVPN);

    // A ping tunnel's server (it reads every echo the "internet" gets), a Shadowsocks
    // server, and an obfs4 bridge (Tor's pluggable transport, run as Tor runs it, in front
    // of the lab's web server).
    lab.spawn("inet", "ptunnel-server", &["ptunnel-ng", "-v", "-1"]);
    lab.spawn(
        "inet",
        "ss-server",
        &[
            "ss-server",
            "-s",
            PROXIES,
            "-p",
            "8388",
            "-k",
            SS_KEY,
            "-m",
            SS_CIPHER,
        ],
    );
    std::fs::create_dir_all(dir.join("obfs4-server")).unwrap();
    lab.spawn(
        "inet",
        "obfs4-server",
        &[
            "env",
            "TOR_PT_MANAGED_TRANSPORT_VER=1",
            &format!("TOR_PT_STATE_LOCATION={d}/obfs4-server"),
            "TOR_PT_SERVER_TRANSPORTS=obfs4",
            &format!("TOR_PT_SERVER_BINDADDR=obfs4-{PROXIES}:9443"),
            &format!("TOR_PT_ORPORT={WEB}:80"),
            "obfs4proxy",
        ],
    );

    // A Trojan server on HTTPS's port: TLS with a certificate of its own, the pupil's own
    // TLS connections carried inside it.
    sh(
        lab,
        "inet",
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=cdn.lab \
             -days 1 -keyout {d}/trojan.key -out {d}/trojan.pem 2>/dev/null"
        ),
    );
    std::fs::write(
        dir.join("trojan-server.json"),
        format!(
            r#"{{"run_type": "server", "local_addr": "{PROXIES}", "local_port": 443,
                "remote_addr": "{WEB}", "remote_port": 80, "password": ["{SS_KEY}"],
                "ssl": {{"cert": "{d}/trojan.pem", "key": "{d}/trojan.key"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("trojan-client.json"),
        format!(
            r#"{{"run_type": "client", "local_addr": "127.0.0.1", "local_port": 1082,
                "remote_addr": "{PROXIES}", "remote_port": 443, "password": ["{SS_KEY}"],
                "ssl": {{"verify": false, "verify_hostname": false, "sni": "cdn.lab"}}}}"#
        ),
    )
    .unwrap();
    lab.spawn(
        "inet",
        "trojan-server",
        &[
            "trojan",
            "-c",
            dir.join("trojan-server.json").to_str().unwrap(),
        ],
    );

    // WireGuard (userspace): the server end.
    let wg = format!("wgs{}", std::process::id() % 100_000);
    sh(
        lab,
        "inet",
        &format!(
            "wg genkey > {d}/wgs.key && wg pubkey < {d}/wgs.key > {d}/wgs.pub && wg genkey > {d}/wgp.key && wg pubkey < {d}/wgp.key > {d}/wgp.pub"
        ),
    );
    lab.spawn(
        "inet",
        "wireguard-server",
        &[
            "env",
            "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
            "wireguard-go",
            "-f",
            &wg,
        ],
    );
    assert!(
        eventually(5, || lab
            .exec("inet", &["ip", "link", "show", &wg])
            .status
            .success()),
        "wireguard-go did not start: {}",
        lab.log("wireguard-server")
    );
    sh(
        lab,
        "inet",
        &format!(
            "wg set {wg} listen-port 51820 private-key {d}/wgs.key peer $(cat {d}/wgp.pub) allowed-ips 10.99.0.2/32 \
             && ip addr add 10.99.0.1/24 dev {wg} && ip link set {wg} up"
        ),
    );
}

/// The bypass attempts, each as (technique, what the pupil runs). Long-running clients are
/// spawned and stopped after the check.
enum Attempt {
    Once(&'static str, String),
    Spawned(&'static str, Vec<String>),
    WireGuard,
}

fn attempts(lab: &Lab) -> Vec<Attempt> {
    let d = lab.dir.path().display().to_string();
    let vpn_client = vpn::client(lab, OPENVPN);
    vec![
        Attempt::Once(
            "dns_over_https",
            "kdig +https +tls-sni=dns.google +time=2 +retry=0 @198.51.100.53 www.instagram.com A"
                .into(),
        ),
        Attempt::Once(
            "dns_over_tls",
            "kdig +tls +time=2 +retry=0 @198.51.100.53 www.instagram.com A".into(),
        ),
        Attempt::Spawned(
            "ssh",
            [
                "ssh",
                "-i",
                &format!("{d}/client_key"),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-N",
                "-D",
                "127.0.0.1:1080",
                &format!("root@{SSH_SERVER}"),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        Attempt::Once(
            "http_proxy",
            format!(
                "curl -s -o /dev/null --max-time 3 -x http://{PROXIES}:8888 https://www.bbc.co.uk/"
            ),
        ),
        Attempt::Once(
            "socks_proxy",
            format!("curl -s -o /dev/null --max-time 3 --socks5 {PROXIES}:1080 http://{WEB}/"),
        ),
        Attempt::WireGuard,
        Attempt::Spawned("openvpn", vpn_client),
        // DNS over HTTP/3 to a listed resolver's name: the QUIC Initial's SNI gives it away
        // (pupils' QUIC is refused by the firewall; the Initial is seen all the same).
        Attempt::Once(
            "dns_over_https",
            h3(&format!("get {SAFE_WEB} 443 dns.google")),
        ),
        // DNS over QUIC to an unlisted name: its ALPN, `doq`, gives it away, on DoQ's port
        // and on HTTPS's.
        Attempt::Once(
            "dns_over_quic",
            h3(&format!("get {RESOLVER} 853 doq.lab doq")),
        ),
        Attempt::Once(
            "dns_over_quic",
            h3(&format!("get {RESOLVER} 443 doq.lab doq")),
        ),
        // A TCP connection carried in pings: the tunnel's replies are not echoes.
        Attempt::Once(
            "icmp_tunnel",
            format!(
                "ptunnel-ng -p{PING_TUNNEL} -l8000 -r{WEB} -R80 -v-1 & sleep 1; \
                 curl -s -o /dev/null --max-time 3 http://127.0.0.1:8000/; kill $!"
            ),
        ),
        // obfs4: a client as Tor runs it, its SOCKS port read from what it tells Tor, the
        // bridge's certificate passed as SOCKS arguments.
        Attempt::Once(
            "encrypted_proxy",
            format!(
                "mkdir -p {d}/obfs4-client && TOR_PT_MANAGED_TRANSPORT_VER=1 \
                 TOR_PT_STATE_LOCATION={d}/obfs4-client TOR_PT_CLIENT_TRANSPORTS=obfs4 \
                 obfs4proxy > {d}/obfs4-client/methods & sleep 1; \
                 port=$(awk '/^CMETHOD obfs4/ {{ split($4, a, \":\"); print a[2] }}' {d}/obfs4-client/methods); \
                 cert=$(grep -o 'cert=[^ ]*' {d}/obfs4-server/obfs4_bridgeline.txt | tail -1 | cut -d= -f2-); \
                 curl -s -o /dev/null --max-time 3 --socks5 127.0.0.1:$port \
                 --proxy-user \"cert=$cert:;iat-mode=0\" http://{PROXIES}:9443/; kill $!"
            ),
        ),
        // Trojan: the pupil's HTTPS inside TLS to the proxy's port 443.
        Attempt::Once(
            "tls_proxy",
            format!(
                "trojan -c {d}/trojan-client.json & sleep 1; \
                 curl -sk -o /dev/null --max-time 3 --socks5-hostname 127.0.0.1:1082 https://{WEB}/; kill $!"
            ),
        ),
        // Shadowsocks: random bytes both ways from the first.
        Attempt::Once(
            "encrypted_proxy",
            format!(
                "ss-local -s {PROXIES} -p 8388 -l 1081 -b 127.0.0.1 -k {SS_KEY} -m {SS_CIPHER} & sleep 1; \
                 curl -s -o /dev/null --max-time 3 --socks5 127.0.0.1:1081 http://{WEB}/; kill $!"
            ),
        ),
    ]
}

#[test]
fn inspection_end_to_end() {
    require_lab!();
    require_tools!(missing_tools());
    let _sockets = WireGuardSockets;
    let mut lab = Lab::up();
    start_servers(&mut lab);
    let site = "https://www.instagram.com/";
    let by_address = format!("www.instagram.com:443:{WEB}");
    let tls_to_site = |lab: &Lab| {
        lab.exec(
            PUPIL.name,
            &[
                "curl",
                "-sk",
                "-o",
                "/dev/null",
                "--max-time",
                "3",
                "--resolve",
                &by_address,
                site,
            ],
        )
        .status
        .code()
    };
    // Without the agent the TLS handshake completes (the server then speaks no HTTP, and
    // curl gives up waiting).
    assert!(
        eventually(5, || tls_to_site(&lab) == Some(28)),
        "the TLS server does not answer: {}",
        lab.log("tls")
    );

    std::fs::write(lab.path("policy.yaml"), policy(&lab)).unwrap();
    let policy = lab.path("policy.yaml");
    lab.spawn_agent("agent", &policy, &[]);
    assert!(
        eventually(15, || lab.log("agent").contains("inspecting")
            && lab
                .dig(PUPIL.name, GATEWAY, "www.bbc.co.uk", "A", &[])
                .first("A")
                == Some(WEB)),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // A blocked site reached by its address: the ClientHello names it, the connection is reset.
    // curl: 35 reset in the handshake, 55 reset while it was still sending, 56 reset just
    // after it.
    let started = std::time::Instant::now();
    let code = tls_to_site(&lab);
    assert!(
        matches!(code, Some(35 | 55 | 56)),
        "curl exit {code:?}: {}",
        lab.log("agent")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        !lab.quarantined(PUPIL.ip),
        "a blocked site is not a bypass attempt"
    );
    // The connection is refused in the firewall too, so a device whose stack took the
    // server's answer before the forged reset still meets a reset on its next packet.
    let refused = |lab: &Lab| {
        let set = lab.exec(
            "gw",
            &["nft", "list", "set", "inet", "schoolgate", "tcp_block_v4"],
        );
        let set = String::from_utf8_lossy(&set.stdout).into_owned();
        // device . server . device's port . server's port
        set.contains(&format!("{} . {WEB} . ", PUPIL.ip)) && set.contains(" . 443 timeout")
    };
    assert!(
        eventually(5, || refused(&lab)),
        "the blocked connection is not refused: {}",
        lab.log("agent")
    );

    // Pings, small and large, are not a tunnel.
    sh(
        &lab,
        PUPIL.name,
        &format!("ping -q -c 5 -i 0.2 {WEB} && ping -q -c 3 -i 0.2 -s 1400 {WEB}"),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !lab.quarantined(PUPIL.ip),
        "pings quarantined the pupil: {:#?}",
        events(&lab)
    );
    assert!(
        events(&lab).iter().all(|e| e["kind"] != "bypass_attempt"),
        "{:#?}",
        events(&lab)
    );

    for attempt in attempts(&lab) {
        let technique = match &attempt {
            Attempt::Once(t, script) => {
                // The tool may fail (the connection is cut); what matters is what it sent.
                let _ = lab.exec(PUPIL.name, &["sh", "-c", script]);
                *t
            }
            Attempt::Spawned(t, args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                lab.spawn(PUPIL.name, t, &args);
                *t
            }
            Attempt::WireGuard => {
                let d = lab.dir.path().display().to_string();
                let wg = format!("wgp{}", std::process::id() % 100_000);
                lab.spawn(
                    PUPIL.name,
                    "wireguard",
                    &[
                        "env",
                        "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                        "wireguard-go",
                        "-f",
                        &wg,
                    ],
                );
                assert!(eventually(5, || lab
                    .exec(PUPIL.name, &["ip", "link", "show", &wg])
                    .status
                    .success()));
                sh(
                    &lab,
                    PUPIL.name,
                    &format!(
                        "wg set {wg} private-key {d}/wgp.key peer $(cat {d}/wgs.pub) endpoint {WIREGUARD}:51820 \
                         allowed-ips 10.99.0.1/32 persistent-keepalive 1 && ip addr add 10.99.0.2/24 dev {wg} && ip link set {wg} up"
                    ),
                );
                "wireguard"
            }
        };
        assert!(
            eventually(10, || quarantined_for(&lab, PUPIL.ip, technique)),
            "{technique}: the pupil was not quarantined: {:#?}\n{}",
            events(&lab),
            lab.log("agent")
        );
        if technique == "dns_over_https" {
            // In quarantine: the VLE, and nothing else.
            assert!(
                eventually(5, || lab.curl(PUPIL.name, &format!("http://{WEB}/"))
                    != Some(0)),
                "a quarantined pupil still reaches the web"
            );
            assert!(
                eventually(5, || lab.curl(PUPIL.name, &format!("http://{VLE}/"))
                    == Some(0)),
                "a quarantined pupil cannot reach the VLE"
            );
        }
        if matches!(attempt, Attempt::Spawned(..) | Attempt::WireGuard) {
            let label = if technique == "wireguard" {
                "wireguard"
            } else {
                technique
            };
            lab.signal(label, "KILL");
        }
        release(
            &lab,
            PUPIL.ip,
            &format!("{technique} checked with the pupil"),
        );
        assert!(!lab.quarantined(PUPIL.ip));
        assert!(
            eventually(5, || lab.curl(PUPIL.name, &format!("http://{WEB}/"))
                == Some(0)),
            "{technique}: released but still cut off"
        );
    }

    // Staff: an alert, no quarantine.
    let _ = lab.exec(
        STAFF.name,
        &[
            "sh",
            "-c",
            "kdig +https +tls-sni=dns.google +time=2 +retry=0 @198.51.100.53 example.org A",
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!lab.quarantined(STAFF.ip));
    assert_eq!(lab.curl(STAFF.name, &format!("http://{WEB}/")), Some(0));

    // HTTP/3 for staff (whose group may use QUIC) works through the gateway; to a name
    // blocked for them the flow is refused in the firewall for a while. The first exchange
    // may finish before the refusal lands.
    assert!(http3(&lab, STAFF.name, "quic.lab"), "{}", lab.log("h3"));
    assert!(
        eventually(5, || !http3(&lab, STAFF.name, "bet.example")),
        "HTTP/3 to a blocked name still works: {}",
        lab.log("agent")
    );
    let set = lab.exec(
        "gw",
        &["nft", "list", "set", "inet", "schoolgate", "quic_block_v4"],
    );
    let set = String::from_utf8_lossy(&set.stdout);
    assert!(
        set.contains(&format!("{} . {SAFE_WEB} . 443", STAFF.ip)),
        "{set}"
    );

    lab.stop_cleanly("agent");
    let all = events(&lab);
    let attempts: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["kind"] == "bypass_attempt")
        .collect();
    for t in [
        "dns_over_https",
        "dns_over_tls",
        "ssh",
        "http_proxy",
        "socks_proxy",
        "wireguard",
        "openvpn",
        "dns_over_quic",
        "icmp_tunnel",
        "encrypted_proxy",
        "tls_proxy",
    ] {
        let e = attempts
            .iter()
            .find(|e| e["technique"] == t && e["device"]["ip"] == PUPIL.ip)
            .unwrap_or_else(|| panic!("no bypass_attempt event for {t}: {all:#?}"));
        assert_eq!(e["severity"], "high");
        assert!(!e["evidence"].as_str().unwrap_or("").is_empty());
    }
    assert!(
        attempts
            .iter()
            .any(|e| e["technique"] == "dns_over_https" && e["device"]["ip"] == STAFF.ip),
        "no alert for staff: {all:#?}"
    );
    let blocked = all
        .iter()
        .find(|e| e["kind"] == "blocked" && e["name"] == "www.instagram.com")
        .unwrap_or_else(|| panic!("no blocked event: {all:#?}"));
    assert!(
        blocked["evidence"]
            .as_str()
            .unwrap()
            .contains("connection reset"),
        "{blocked}"
    );
    let quic_blocked = all
        .iter()
        .find(|e| e["kind"] == "blocked" && e["name"] == "bet.example")
        .unwrap_or_else(|| panic!("no blocked event for QUIC: {all:#?}"));
    assert!(
        quic_blocked["evidence"]
            .as_str()
            .unwrap()
            .contains("QUIC Initial SNI bet.example"),
        "{quic_blocked}"
    );
    let released = all.iter().filter(|e| e["kind"] == "released").count();
    assert_eq!(released, 14, "{all:#?}");
    let doq_on_443 = format!("to {RESOLVER}:443");
    assert!(
        attempts.iter().any(|e| e["technique"] == "dns_over_quic"
            && e["evidence"].as_str().unwrap_or("").contains(&doq_on_443)),
        "no DoQ on port 443: {all:#?}"
    );
}

//! Decisions that know the person, on loopback: the daemon with a roster and a RADIUS
//! listener, sign-ins sent by FreeRADIUS's own radclient as a Wi-Fi controller sends them, and
//! DNS asked from the signed-in address. One shared school computer (127.0.0.1): a pupil of
//! 6A, then a pupil of 6B (whose class an exception opens video for), then a member of staff;
//! the school computers' rule holds for all of them. Forged and malformed accounting is
//! refused and counted, and attaches no one.

use std::io::Write as _;
use std::process::{Command, Stdio};

use hickory_proto::op::ResponseCode;

use crate::run::{Daemon, FakeUpstream, ask_udp as ask, eventually, free_port, journaled};

const SECRET: &str = "wlc-secret-1";

/// Sends one accounting request with radclient; whether it was answered.
fn radclient(port: u16, secret: &str, attributes: &str) -> bool {
    let mut child = Command::new("radclient")
        .args(["-D", "/usr/share/freeradius", "-r", "1", "-t", "1", "-x"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["acct", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run radclient ({e}): run scripts/setup, which installs freeradius-utils")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attributes.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Accounting-Response")
}

fn accounting(status: &str, user: &str) -> String {
    format!(
        "Acct-Status-Type = {status}\nUser-Name = \"{user}\"\nFramed-IP-Address = 127.0.0.1\n\
         Calling-Station-Id = \"02-00-00-00-00-21\"\nAcct-Session-Id = \"{user}-1\"\n\
         NAS-Identifier = \"wlc1\"\n"
    )
}

fn metrics(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    text
}

fn counted(metrics: &str, line: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_shared_pc_is_decided_for_whoever_is_signed_in_and_forgeries_attach_no_one() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let state = dir.path().join("state");
    std::fs::write(
        dir.path().join("roster.csv"),
        "Username,Role,Class\namira.k,Pupil,6B\nben.t,Pupil,6A\ngrace.o,Teacher,\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("wlc.secret"), format!("{SECRET}\n")).unwrap();
    let radius_port = free_port();
    // Rules first-match in file order; a rule matches the device's group or the person's.
    std::fs::write(
        &policy,
        format!(
            "version: 1
school: {{ name: Loopback School, timezone: Europe/London }}
categories:
  social: {{ domains: [facebook.com] }}
  video: {{ domains: [youtube.com] }}
groups:
  school_computers: {{ networks: [127.0.0.0/8] }}
  pupils: {{ directory: [Pupils] }}
  staff: {{ directory: [Staff] }}
rules:
  - {{ name: School computers never reach social networking, groups: [school_computers], block: [social] }}
  - {{ name: Pupils no video, groups: [pupils], block: [video] }}
exceptions:
  - {{ name: 6B film club, classes: [6B], allow: [video], from: 2000-01-01T00:00, to: 2099-01-01T00:00, approved_by: Head }}
gateway:
  dns: {{ block_response: nxdomain }}
  roster: roster.csv
  radius:
    listen: [\"127.0.0.1:{radius_port}\"]
    clients: [{{ address: 127.0.0.0/8, secret_file: wlc.secret }}]
"
        ),
    )
    .unwrap();
    let dns: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics_at = format!("127.0.0.1:{}", free_port());
    let _daemon = Daemon::loopback(
        &policy,
        &dns.to_string(),
        upstream.addr,
        &state,
        &["--metrics-listen", &metrics_at],
    );
    let blocked =
        |name: &str| ask(dns, name).map(|m| m.metadata.response_code == ResponseCode::NXDomain);
    assert!(
        eventually(20, || blocked("youtube.com").is_some()),
        "the daemon never answered"
    );
    // No one signed in: the device's rules only.
    assert_eq!(blocked("facebook.com"), Some(true));
    assert_eq!(blocked("youtube.com"), Some(false));

    // Ben (6A) signs in: pupils' rules too.
    assert!(radclient(
        radius_port,
        SECRET,
        &accounting("Start", "SCHOOL\\ben.t")
    ));
    assert_eq!(blocked("youtube.com"), Some(true));
    assert_eq!(blocked("facebook.com"), Some(true));

    // The blocked event names Ben beside the device; the policy's group is the person's.
    let named = |name: &str, user: &str| {
        journaled(&policy, &state, "blocked")
            .into_iter()
            .find(|e| e["name"] == name && e["person"]["username"] == user)
    };
    assert!(eventually(10, || named("youtube.com", "ben.t").is_some()));
    let e = named("youtube.com", "ben.t").unwrap();
    assert_eq!(e["person"]["display_name"], "ben.t");
    assert_eq!(e["person"]["class"], "6A");
    assert_eq!(e["person"]["group"], "pupils");
    assert_eq!(e["device"]["ip"], "127.0.0.1");
    assert_eq!(e["rule"], "Pupils no video");

    // A forged Stop (wrong secret) is not answered and changes nothing.
    assert!(!radclient(
        radius_port,
        "guessed",
        &accounting("Stop", "ben.t")
    ));
    assert_eq!(blocked("youtube.com"), Some(true));
    // Nor does a forged Start for someone else.
    assert!(!radclient(
        radius_port,
        "guessed",
        &accounting("Start", "grace.o")
    ));
    assert_eq!(blocked("youtube.com"), Some(true));

    // Ben signs out and Amira (6B) signs in: her class's exception opens video; the school
    // computers' rule still holds.
    assert!(radclient(radius_port, SECRET, &accounting("Stop", "ben.t")));
    assert_eq!(blocked("youtube.com"), Some(false));
    assert!(radclient(
        radius_port,
        SECRET,
        &accounting("Start", "amira.k@school.example")
    ));
    assert_eq!(blocked("youtube.com"), Some(false));
    assert_eq!(blocked("facebook.com"), Some(true));

    // Grace (staff) signs in at the same address before Amira's Stop: she is at the keyboard.
    assert!(radclient(
        radius_port,
        SECRET,
        &accounting("Start", "grace.o")
    ));
    assert_eq!(blocked("youtube.com"), Some(false));
    assert_eq!(
        blocked("facebook.com"),
        Some(true),
        "the school computers' rule holds for staff too"
    );
    assert!(eventually(10, || named("facebook.com", "grace.o").is_some()));
    let e = named("facebook.com", "grace.o").unwrap();
    assert_eq!(e["person"]["group"], "staff");
    assert_eq!(e["rule"], "School computers never reach social networking");
    // Amira's late Stop does not sign Grace out.
    assert!(radclient(
        radius_port,
        SECRET,
        &accounting("Stop", "amira.k")
    ));
    assert!(radclient(
        radius_port,
        SECRET,
        &accounting("Start", "ben.t")
    ));
    assert_eq!(blocked("youtube.com"), Some(true), "ben took the address");

    // A controller that did not hear our answer sends the same request again: answered again
    // with the same answer, applied once.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let interim = schoolgate_people::radius::request(
        77,
        &[
            (40, &3u32.to_be_bytes()),
            (1, b"ben.t"),
            (8, &[127, 0, 0, 1]),
        ],
        SECRET.as_bytes(),
    );
    let mut answers = Vec::new();
    for _ in 0..2 {
        socket
            .send_to(&interim, ("127.0.0.1", radius_port))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        answers.push(buf[..n].to_vec());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][0], 5, "an Accounting-Response");
    // Garbage to the RADIUS port: refused and counted, never answered.
    for junk in [&b"\x04"[..], &[4u8; 20][..], &[0xff; 300][..]] {
        socket.send_to(junk, ("127.0.0.1", radius_port)).unwrap();
    }
    let refused = |m: &str| {
        counted(m, "schoolgate_radius_packets_total{result=\"malformed\"}")
            + counted(
                m,
                "schoolgate_radius_packets_total{result=\"not_accounting\"}",
            )
    };
    assert!(
        eventually(5, || refused(&metrics(&metrics_at)) == 3),
        "{}",
        metrics(&metrics_at)
    );
    let m = metrics(&metrics_at);
    // radclient may send a forged request more than once; each is refused.
    assert!(
        counted(
            &m,
            "schoolgate_radius_packets_total{result=\"bad_authenticator\"}"
        ) >= 2,
        "{m}"
    );
    // Four starts and the interim update (its repeat is counted apart).
    assert_eq!(
        counted(&m, "schoolgate_radius_packets_total{result=\"signed_in\"}"),
        5,
        "{m}"
    );
    assert_eq!(
        counted(&m, "schoolgate_sessions_ended_total{why=\"address_taken\"}"),
        2,
        "{m}"
    );
    assert_eq!(counted(&m, "schoolgate_sessions"), 1, "{m}");
    assert_eq!(
        counted(&m, "schoolgate_radius_packets_total{result=\"repeat\"}"),
        1,
        "{m}"
    );
}

/// Posts a report to the sign-in endpoint with curl, from `source`; the HTTP status.
fn report(port: u16, ca: &std::path::Path, token: &str, source: &str, body: &str) -> u16 {
    post_report(
        &format!("https://127.0.0.1:{port}/api/v1/sign-in"),
        ca,
        token,
        Some(source),
        body,
    )
}

/// Posts a sign-in report to `url` with curl (from the address `source` when given); the
/// HTTP status, 0 when no HTTP answer came (curl's error is printed).
#[allow(clippy::print_stderr)] // what a skip or a failed request says, in the test output
pub(crate) fn post_report(
    url: &str,
    ca: &std::path::Path,
    token: &str,
    source: Option<&str>,
    body: &str,
) -> u16 {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["--data-binary", body]);
    if let Some(source) = source {
        curl.args(["--interface", source]);
    }
    let out = curl.arg(url).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if status == 0 {
        eprintln!("curl: {}", String::from_utf8_lossy(&out.stderr));
    }
    status
}

#[test]
fn a_logon_script_signs_people_in_at_its_own_address_only() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let state = dir.path().join("state");
    std::fs::write(
        dir.path().join("roster.csv"),
        "Username,Role,Class\namira.k,Pupil,6B\ngrace.o,Teacher,\n",
    )
    .unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.path().join("sign-in.crt"), made.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("sign-in.key"),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    let token_out = Command::new(env!("CARGO_BIN_EXE_schoolgate-agent"))
        .args(["sign-in-token", "logon-script"])
        .output()
        .unwrap();
    let printed = String::from_utf8(token_out.stdout).unwrap();
    let mut lines = printed.lines();
    let token = lines.next().unwrap().to_owned();
    let line = lines.last().unwrap();
    assert!(!line.contains(&token), "the file keeps the hash only");
    std::fs::write(dir.path().join("sign-in.tokens"), format!("{line}\n")).unwrap();
    let port = free_port();
    std::fs::write(
        &policy,
        format!(
            "version: 1
school: {{ name: Loopback School, timezone: Europe/London }}
categories:
  video: {{ domains: [youtube.com] }}
groups:
  library: {{ networks: [127.0.0.0/8] }}
  pupils: {{ directory: [Pupils] }}
rules:
  - {{ name: Pupils no video, groups: [pupils], block: [video] }}
gateway:
  dns: {{ block_response: nxdomain }}
  roster: roster.csv
  sign_in:
    listen: [\"127.0.0.1:{port}\"]
    cert_file: sign-in.crt
    key_file: sign-in.key
    tokens_file: sign-in.tokens
"
        ),
    )
    .unwrap();
    let dns: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _daemon = Daemon::loopback(&policy, &dns.to_string(), upstream.addr, &state, &[]);
    // DNS is asked from 127.0.0.1; reports come from there or from 127.0.0.2.
    let blocked =
        |name: &str| ask(dns, name).map(|m| m.metadata.response_code == ResponseCode::NXDomain);
    let ca = dir.path().join("sign-in.crt");
    let logon = r#"{"user": "SCHOOL\\amira.k", "event": "logon", "mac": "02:00:00:00:00:21", "host": "ICT-03"}"#;
    assert!(eventually(20, || blocked("youtube.com").is_some()));
    assert_eq!(blocked("youtube.com"), Some(false), "no one signed in");
    assert!(
        eventually(20, || report(port, &ca, &token, "127.0.0.1", logon) == 204),
        "the endpoint never took a logon"
    );
    assert_eq!(blocked("youtube.com"), Some(true), "Amira is signed in");

    // A wrong token: refused before anything is read, nothing attached.
    let logoff = r#"{"user": "amira.k", "event": "logoff"}"#;
    assert_eq!(report(port, &ca, "sgs_guessed", "127.0.0.1", logoff), 401);
    assert_eq!(blocked("youtube.com"), Some(true));
    // Another machine cannot sign someone in, or out, at this address.
    let elsewhere = r#"{"user": "grace.o", "event": "logon", "address": "127.0.0.1"}"#;
    assert_eq!(report(port, &ca, &token, "127.0.0.2", elsewhere), 403);
    assert_eq!(report(port, &ca, &token, "127.0.0.1", "{not json"), 400);
    assert_eq!(
        report(
            port,
            &ca,
            &token,
            "127.0.0.1",
            r#"{"user": "a b", "event": "logon"}"#
        ),
        400
    );
    assert_eq!(blocked("youtube.com"), Some(true));
    // The logoff from the machine itself signs her out.
    assert_eq!(report(port, &ca, &token, "127.0.0.1", logoff), 204);
    assert_eq!(blocked("youtube.com"), Some(false));
    // The shipped script for macOS and Linux signs in as the user running it.
    let script = |event: &str| {
        let out = Command::new(crate::repo().join("docs/sign-in/logon.sh"))
            .arg(event)
            .env("USER", "amira.k")
            .env("SCHOOLGATE_GATEWAY", format!("https://127.0.0.1:{port}"))
            .env("SCHOOLGATE_TOKEN", &token)
            .env("SCHOOLGATE_CA", &ca)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(script("logon"), "204");
    assert_eq!(blocked("youtube.com"), Some(true));
    assert_eq!(script("logoff"), "204");
    assert_eq!(blocked("youtube.com"), Some(false));
    // The session is kept in the state directory, readable by the agent only.
    assert!(eventually(5, || std::fs::read_to_string(
        state.join("sessions.json")
    )
    .is_ok_and(|t| t == "[]")));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(state.join("sessions.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

//! School devices away from school: the daemon's DNS over TLS and over HTTPS on loopback,
//! asked by Knot's kdig and curl as a device would, each request decided for the device its
//! id names (and the person signed in on it), at a Saturday evening's time.

use std::path::Path;
use std::process::Command;

use crate::run::{Daemon, FakeUpstream, eventually, free_port, journaled};

/// Saturday 5 December 2026, 20:00 in London (GMT).
const SATURDAY_EVENING: &str = "2026-12-05T20:00:00Z";

fn policy(doh: u16, dot: u16) -> String {
    format!(
        "version: 1
school: {{ name: Loopback School, timezone: Europe/London }}
calendar:
  terms:
    - {{ name: Autumn, from: 2026-09-02, to: 2026-12-18 }}
schedules:
  school_day: {{ days: [mon, tue, wed, thu, fri], times: [\"08:30-15:30\"], term_time: true }}
categories:
  social: {{ domains: [facebook.com, instagram.com] }}
groups:
  school_computers:
    devices:
      - {{ mac: \"52:54:00:12:34:56\", name: ICT-Suite-01, off_site_id: ict-suite-01-k7q2 }}
      - {{ mac: \"52:54:00:12:34:57\", name: ICT-Suite-02, off_site_id: ict-suite-02-w3m8 }}
  pupils:
    devices:
      - {{ mac: \"52:54:00:aa:bb:cc\", name: Y6-iPad-12, owner: 6B, off_site_id: y6-ipad-12-p9x4 }}
    networks: [10.10.0.0/16]
rules:
  - {{ name: School computers never reach social networking, groups: [school_computers], block: [social] }}
  - {{ name: Pupils off social in the school day, groups: [pupils], block: [social], when: school_day }}
gateway:
  dns: {{ block_response: nxdomain }}
  off_site:
    server_name: dns.test
    doh: [\"127.0.0.1:{doh}\"]
    dot: [\"127.0.0.1:{dot}\"]
    cert_file: dns.crt
    key_file: dns.key
    rate_limit: 5
"
    )
}

/// What kdig says of `name` asked over TLS by `id` (`None`: no answer at all).
fn dot(port: u16, ca: &Path, id: &str, name: &str) -> Option<String> {
    kdig(&[
        &format!("-p{port}"),
        "+tls",
        &format!("+tls-hostname={id}.dns.test"),
        &format!("+tls-ca={}", ca.display()),
        name,
    ])
}

/// What kdig says of `name` asked over HTTPS at `/dns-query/{id}`.
fn doh(port: u16, ca: &Path, id: &str, name: &str) -> Option<String> {
    kdig(&[
        &format!("-p{port}"),
        &format!("+https=/dns-query/{id}"),
        "+tls-hostname=dns.test",
        &format!("+tls-ca={}", ca.display()),
        name,
    ])
}

/// The status kdig printed (`NOERROR`, `NXDOMAIN`…), or `None` when it got no DNS answer.
fn kdig(args: &[&str]) -> Option<String> {
    let out = Command::new("kdig")
        .args(["@127.0.0.1", "+time=3", "+retry=0"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .lines()
        .filter(|l| l.contains("->>HEADER<<-"))
        .find_map(|l| l.split("status: ").nth(1))?
        .split(';')
        .next()?
        .trim()
        .to_owned();
    Some(status)
}

/// The HTTP status each of `requests` (path and query, with curl's extra arguments) got,
/// in order, over one connection where curl can keep one.
fn http(port: u16, ca: &Path, extra: &[&str], paths: &[String]) -> Vec<u16> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "%{http_code}\\n", "--max-time", "5"])
        .args([
            "--resolve",
            &format!("dns.test:{port}:127.0.0.1"),
            "--cacert",
        ])
        .arg(ca)
        .args(extra);
    for p in paths {
        cmd.args(["-o", "/dev/null"])
            .arg(format!("https://dns.test:{port}{p}"));
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap_or(0))
        .collect()
}

#[test]
fn a_school_laptop_at_home_is_filtered_by_its_id_over_tls_and_https() {
    if no_kdig() {
        return;
    }
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = certificate(dir.path());
    let (doh_port, dot_port) = (free_port(), free_port());
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy(doh_port, dot_port)).unwrap();
    // ICT-Suite-02 was quarantined at school after a bypass attempt.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("quarantine.json"),
        r#"{"devices": [{"mac": "52:54:00:12:34:57", "device": "ICT-Suite-02",
            "since": "2026-12-05T10:00:00Z", "technique": "vpn_app"}], "people": []}"#,
    )
    .unwrap();
    let dns = format!("127.0.0.1:{}", free_port());
    let _daemon = Daemon::loopback(
        &policy_file,
        &dns,
        upstream.addr,
        &state,
        &["--clock-from", SATURDAY_EVENING],
    );
    let laptop = "ict-suite-01-k7q2";
    assert!(
        eventually(20, || dot(dot_port, &ca, laptop, "example.org").is_some()),
        "DNS over TLS never answered"
    );

    // Saturday 20:00: the school computer never reaches social networking, over either.
    assert_eq!(
        dot(dot_port, &ca, laptop, "facebook.com").as_deref(),
        Some("NXDOMAIN")
    );
    assert_eq!(
        doh(doh_port, &ca, laptop, "www.instagram.com").as_deref(),
        Some("NXDOMAIN")
    );
    // Allowed names resolve, by the same id, any case.
    assert_eq!(
        dot(dot_port, &ca, laptop, "example.org").as_deref(),
        Some("NOERROR")
    );
    assert_eq!(
        doh(doh_port, &ca, "ICT-Suite-01-K7Q2", "example.org").as_deref(),
        Some("NOERROR")
    );
    // The pupil's iPad is under its own group's schedule: outside the school day, social is
    // not blocked for it.
    assert_eq!(
        doh(doh_port, &ca, "y6-ipad-12-p9x4", "facebook.com").as_deref(),
        Some("NOERROR")
    );

    // The quarantine follows the device home (by its MAC): nothing resolves for it.
    assert_eq!(
        doh(doh_port, &ca, "ict-suite-02-w3m8", "example.org").as_deref(),
        Some("NXDOMAIN")
    );

    // An unknown (or revoked) id: the TLS handshake is refused, and HTTPS answers 403.
    assert_eq!(dot(dot_port, &ca, "ict-suite-02-zzzz", "example.org"), None);
    assert_eq!(
        dot(dot_port, &ca, "dns", "example.org"),
        None,
        "no id at all"
    );
    assert_eq!(doh(doh_port, &ca, "ict-suite-02-zzzz", "example.org"), None);
    // RFC 8484's example query for www.example.com.
    let q = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
    assert_eq!(
        http(doh_port, &ca, &[], &[format!("/dns-query/nobody?dns={q}")]),
        [403]
    );

    // Malformed requests get the status HTTP gives them.
    let bad = [
        (format!("/dns-query/{laptop}?dns=AAAB%2BAAB"), 400), // `+` is not base64url
        (format!("/dns-query/{laptop}"), 400),                // no `dns`
        (format!("/dns-query/{laptop}?dns=AAAB"), 400),       // too short for DNS
        (
            format!("/dns-query/{laptop}?dns={}", "A".repeat(10_000)),
            414,
        ),
        ("/dns-query".to_owned(), 404),
    ];
    for (path, status) in &bad {
        assert_eq!(
            http(doh_port, &ca, &[], std::slice::from_ref(path)),
            [*status],
            "{path:.80}"
        );
    }
    let post = |content_type: &str, body: &Path| {
        http(
            doh_port,
            &ca,
            &[
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                &format!("@{}", body.display()),
            ],
            &[format!("/dns-query/{laptop}")],
        )
    };
    assert_eq!(
        http(
            doh_port,
            &ca,
            &["-X", "PUT"],
            &[format!("/dns-query/{laptop}?dns={q}")]
        ),
        [405]
    );
    let query_file = dir.path().join("query.bin");
    std::fs::write(&query_file, [0u8; 40]).unwrap();
    assert_eq!(post("text/plain", &query_file), [415]);
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    assert_eq!(post("application/dns-message", &big), [413]);

    // Each id has its own rate (5 a second, a burst of 10): a flood from one is refused
    // with 429 and another id is still answered.
    let flood: Vec<String> = (0..40)
        .map(|_| format!("/dns-query/{laptop}?dns={q}"))
        .collect();
    let codes = http(doh_port, &ca, &[], &flood);
    assert_eq!(codes.len(), 40);
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    assert_eq!(
        http(
            doh_port,
            &ca,
            &[],
            &[format!("/dns-query/y6-ipad-12-p9x4?dns={q}")]
        ),
        [200]
    );

    // The blocked lookups are events about the device, marked off site, with no address.
    let policy_path = policy_file.clone();
    let state_path = state.clone();
    let mut events = Vec::new();
    assert!(eventually(10, || {
        events = journaled(&policy_path, &state_path, "blocked");
        events.len() >= 3
    }));
    for e in &events {
        assert_eq!(e["device"]["off_site"], true, "{e}");
        assert!(e["device"].get("ip").is_none(), "{e}");
        assert_eq!(e["group"], "school_computers", "{e}");
        if e["device"]["name"] == "ICT-Suite-02" {
            assert!(e.get("rule").is_none(), "the quarantine's: {e}");
        } else {
            assert_eq!(e["device"]["name"], "ICT-Suite-01", "{e}");
            assert_eq!(
                e["rule"], "School computers never reach social networking",
                "{e}"
            );
        }
    }
    assert!(
        events.iter().any(|e| e["device"]["name"] == "ICT-Suite-02"),
        "{events:?}"
    );
}

/// Signs in or out on the device `id` through the off-site listener with curl; the status.
fn sign_in_from_away(port: u16, ca: &Path, token: &str, id: &str, body: &str) -> u16 {
    let url = format!("https://127.0.0.1:{port}/api/v1/sign-in/{id}");
    crate::signed_in::post_report(&url, ca, token, None, body)
}

/// The address a machine at school (127.0.0.2) is answered for `name`, if any.
fn asked_at_school(name: &str, server: std::net::SocketAddr) -> Option<std::net::IpAddr> {
    let m = crate::run::ask_udp_from([127, 0, 0, 2].into(), server, name)?;
    m.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
        _ => None,
    })
}

/// A self-signed certificate for `dns.test`, its subdomains and 127.0.0.1, written to
/// `dir` as `dns.crt` and `dns.key`; the certificate's path (the clients' CA).
fn certificate(dir: &Path) -> std::path::PathBuf {
    let made = rcgen::generate_simple_self_signed(vec![
        "dns.test".to_owned(),
        "*.dns.test".to_owned(),
        "127.0.0.1".to_owned(),
    ])
    .unwrap();
    let ca = dir.join("dns.crt");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    std::fs::write(dir.join("dns.key"), made.signing_key.serialize_pem()).unwrap();
    ca
}

/// Whether kdig is missing, which CI never allows (tests then skip, saying so).
#[allow(clippy::print_stderr)] // what a skip or a failed request says, in the test output
fn no_kdig() -> bool {
    if Command::new("kdig").arg("-V").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kdig is missing (scripts/setup installs knot-dnsutils)"
    );
    eprintln!("skipped: kdig is not installed (knot-dnsutils)");
    true
}

#[test]
fn a_laptop_at_home_is_decided_for_the_person_signed_in_on_it() {
    if no_kdig() {
        return;
    }
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = certificate(dir.path());
    std::fs::write(
        dir.path().join("roster.csv"),
        "Username,Role,Class\namira.k,Pupil,6B\ngrace.o,Teacher,\n",
    )
    .unwrap();
    let token_out = Command::new(env!("CARGO_BIN_EXE_schoolgate-agent"))
        .args(["sign-in-token", "laptops"])
        .output()
        .unwrap();
    let printed = String::from_utf8(token_out.stdout).unwrap();
    let token = printed.lines().next().unwrap().to_owned();
    let line = printed.lines().last().unwrap();
    std::fs::write(dir.path().join("sign-in.tokens"), format!("{line}\n")).unwrap();
    let (doh_port, sign_in_port, block_port) = (free_port(), free_port(), free_port());
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_file,
        format!(
            "version: 1
school: {{ name: Loopback School, timezone: Europe/London }}
categories:
  social: {{ domains: [facebook.com] }}
  video: {{ domains: [youtube.com] }}
groups:
  laptops:
    devices:
      - {{ mac: \"52:54:00:12:34:60\", name: Loan-Laptop-07, off_site_id: loan-07-h4t9 }}
  pupils: {{ directory: [Pupils], networks: [127.0.0.2/32] }}
rules:
  - {{ name: School laptops never reach social networking, groups: [laptops], block: [social] }}
  - {{ name: Pupils no video, groups: [pupils], block: [video] }}
gateway:
  dns: {{ block_response: sinkhole }}
  block_page: {{ listen: \"127.0.0.77:{block_port}\" }}
  roster: roster.csv
  sign_in:
    listen: [\"127.0.0.1:{sign_in_port}\"]
    cert_file: dns.crt
    key_file: dns.key
    tokens_file: sign-in.tokens
  off_site:
    server_name: dns.test
    doh: [\"127.0.0.1:{doh_port}\"]
    cert_file: dns.crt
    key_file: dns.key
"
        ),
    )
    .unwrap();
    let dns = format!("127.0.0.1:{}", free_port());
    let _daemon = Daemon::loopback(
        &policy_file,
        &dns,
        upstream.addr,
        &state,
        &["--clock-from", SATURDAY_EVENING],
    );
    let laptop = "loan-07-h4t9";
    let status = |name: &str| doh(doh_port, &ca, laptop, name);
    assert!(
        eventually(20, || status("example.org").is_some()),
        "DNS over HTTPS never answered"
    );
    // No one signed in: the laptop's own rules.
    assert_eq!(status("facebook.com").as_deref(), Some("NXDOMAIN"));
    assert_eq!(status("youtube.com").as_deref(), Some("NOERROR"));

    // Amira signs in at home, through the public listener, by the laptop's id (any case):
    // her rules join the laptop's.
    let logon = r#"{"user": "SCHOOL\\amira.k", "event": "logon", "host": "LOAN-07"}"#;
    assert_eq!(
        sign_in_from_away(doh_port, &ca, &token, "LOAN-07-H4T9", logon),
        204
    );
    // A pupils' machine at school asks first: its answer points at the block page. Away
    // from school the same rule's answer is NXDOMAIN: the block page's address there would
    // be someone else's (and the answer kept from school is not reused for it).
    assert_eq!(
        asked_at_school("youtube.com.", dns.parse().unwrap()),
        Some("127.0.0.77".parse().unwrap())
    );
    assert_eq!(status("youtube.com").as_deref(), Some("NXDOMAIN"));
    assert_eq!(status("facebook.com").as_deref(), Some("NXDOMAIN"));

    // Refused: a wrong token, an id no device has, an address named from away; none
    // attaches anyone.
    let grace = r#"{"user": "grace.o", "event": "logon"}"#;
    assert_eq!(
        sign_in_from_away(doh_port, &ca, "sgs_guessed", laptop, grace),
        401
    );
    assert_eq!(
        sign_in_from_away(doh_port, &ca, &token, "loan-99-zzzz", grace),
        403
    );
    let with_address = r#"{"user": "grace.o", "event": "logon", "address": "10.0.0.9"}"#;
    assert_eq!(
        sign_in_from_away(doh_port, &ca, &token, laptop, with_address),
        400
    );
    assert_eq!(status("youtube.com").as_deref(), Some("NXDOMAIN"));

    // The blocked lookup is an event about the laptop off site, naming Amira.
    let mut events = Vec::new();
    assert!(eventually(10, || {
        events = journaled(&policy_file, &state, "blocked")
            .into_iter()
            .filter(|e| e["name"] == "youtube.com" && e["device"]["off_site"] == true)
            .collect();
        !events.is_empty()
    }));
    let e = &events[0];
    assert_eq!(e["device"]["off_site"], true, "{e}");
    assert_eq!(e["device"]["name"], "Loan-Laptop-07", "{e}");
    assert!(e["device"].get("ip").is_none(), "{e}");
    assert_eq!(e["person"]["username"], "amira.k", "{e}");
    assert_eq!(e["person"]["class"], "6B", "{e}");
    assert_eq!(e["person"]["group"], "pupils", "{e}");
    assert_eq!(e["rule"], "Pupils no video", "{e}");

    // The session is kept by the laptop's id, with no address of the home it was in.
    let mut kept = String::new();
    assert!(
        eventually(10, || {
            kept = std::fs::read_to_string(state.join("sessions.json")).unwrap_or_default();
            kept.contains("\"device\":\"loan-07-h4t9\"")
        }),
        "{kept}"
    );
    assert!(!kept.contains("\"address\""), "{kept}");

    // Someone else's logoff leaves her signed in; her own (by the shipped script) ends it.
    let grace_off = r#"{"user": "grace.o", "event": "logoff"}"#;
    assert_eq!(
        sign_in_from_away(doh_port, &ca, &token, laptop, grace_off),
        204
    );
    assert_eq!(status("youtube.com").as_deref(), Some("NXDOMAIN"));
    let out = Command::new(crate::repo().join("docs/sign-in/logon.sh"))
        .arg("logoff")
        .env("USER", "amira.k")
        .env(
            "SCHOOLGATE_GATEWAY",
            format!("https://127.0.0.1:{doh_port}"),
        )
        .env("SCHOOLGATE_DEVICE", laptop)
        .env("SCHOOLGATE_TOKEN", &token)
        .env("SCHOOLGATE_CA", &ca)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "204");
    assert_eq!(status("youtube.com").as_deref(), Some("NOERROR"));
}

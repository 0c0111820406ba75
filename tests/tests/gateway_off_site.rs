//! A school laptop at home: a host on the lab's internet side asks the gateway's public
//! address over DNS over TLS and over HTTPS (Knot's kdig, and curl browsing with
//! `--doh-url`) by ICT-Suite-01's off-site id, on a Saturday evening. Social networking is
//! refused to the school computer, other names resolve, a pupil's iPad follows its own
//! group's school-day rule, an unknown id is refused, and the blocked lookups reach the
//! console marked off site.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use schoolgate_tests::lab::{GATEWAY, Lab, SCHOOL, WEB, eventually};
use schoolgate_tests::{console, require_lab, require_tools};

const CONSOLE: &str = "127.0.0.1:18443";
/// The gateway's address on the internet side.
const PUBLIC: &str = "203.0.113.2";
const SERVER: &str = "dns.lab-school.test";
const LAPTOP: &str = "ict-suite-01-k7q2";
const IPAD: &str = "y6-ipad-12-p9x4";
/// Saturday 5 December 2026, 20:00 in London (GMT).
const SATURDAY_EVENING: &str = "2026-12-05T20:00:00Z";
const SCHOOL_RULE: &str = "School computers never reach social networking";

fn policy(lab: &Lab) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: Europe/London }}
calendar:
  terms:
    - {{ name: Autumn, from: 2026-09-02, to: 2026-12-18 }}
schedules:
  school_day: {{ days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }}
categories:
  social_networking: {{ label: social networking, domains: [instagram.com, facebook.com] }}
groups:
  school_computers:
    devices:
      - {{ mac: "52:54:00:12:34:56", name: ICT-Suite-01, off_site_id: {LAPTOP} }}
  pupils:
    devices:
      - {{ mac: "52:54:00:aa:bb:cc", name: Y6-iPad-12, owner: 6B, off_site_id: {IPAD} }}
    networks: [10.77.0.0/28]
rules:
  - {{ name: {SCHOOL_RULE}, groups: [school_computers], block: [social_networking] }}
  - {{ name: Pupils keep off social networking in the school day, groups: [pupils], block: [social_networking], when: school_day }}
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53"]
    upstreams: ["198.51.100.53:53"]
    block_response: nxdomain
  state_dir: {state}
  firewall: {{ enabled: false }}
  inspection: {{ enabled: false }}
  console: {{ url: "https://{CONSOLE}", token_file: {token}, ca_file: {ca}, name: gw1 }}
  off_site:
    server_name: {SERVER}
    doh: ["{PUBLIC}:443"]
    dot: ["{PUBLIC}:853"]
    cert_file: dns.crt
    key_file: dns.key
"#,
        state = lab.path("state").display(),
        token = lab.path("agent.token").display(),
        ca = lab.path("console.crt").display(),
    )
}

/// kdig's status line for `name` asked from home by `id`, over TLS (`+tls`) or HTTPS;
/// `None` when no DNS answer came.
fn kdig(lab: &Lab, ca: &Path, id: &str, https: bool, name: &str) -> Option<(String, String)> {
    let ca = format!("+tls-ca={}", ca.display());
    let at = format!("@{PUBLIC}");
    let (how, host) = if https {
        (
            format!("+https=/dns-query/{id}"),
            format!("+tls-hostname={SERVER}"),
        )
    } else {
        ("+tls".to_owned(), format!("+tls-hostname={id}.{SERVER}"))
    };
    let out = lab.exec(
        "inet",
        &[
            "kdig", &at, "+time=3", "+retry=0", &how, &host, &ca, name, "A",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .filter(|l| l.contains("->>HEADER<<-"))
        .find_map(|l| l.split("status: ").nth(1))?
        .split(';')
        .next()?
        .trim()
        .to_owned();
    Some((status, text))
}

fn status(answer: Option<(String, String)>) -> Option<String> {
    answer.map(|(s, _)| s)
}

#[test]
fn a_school_laptop_at_home_is_filtered_by_its_id() {
    require_lab!();
    require_tools!(schoolgate_tests::lab::missing_tool(&[
        "kdig", "curl", "sqlite3"
    ]));
    let mut lab = Lab::up();
    console::prepare(&lab, &["127.0.0.1"]);
    let ca = lab.certificate("dns", &[SERVER, &format!("*.{SERVER}")]);
    let policy_file = lab.path("policy.yaml");
    std::fs::write(&policy_file, policy(&lab)).unwrap();
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn("inet", "resolver", &[peer, "dns", "198.51.100.53:53"]);
    lab.spawn("inet", "web", &[peer, "http", "198.51.100.10:80"]);
    console::start(&mut lab, "console", CONSOLE);
    lab.spawn_agent("agent", &policy_file, &["--clock-from", SATURDAY_EVENING]);
    assert!(
        eventually(20, || status(kdig(
            &lab,
            &ca,
            LAPTOP,
            false,
            "homework.lab"
        ))
        .is_some()),
        "DNS over TLS never answered from home: {}",
        lab.log("agent")
    );

    // Saturday 20:00: the school computer is refused social networking over both.
    let (s, text) = kdig(&lab, &ca, LAPTOP, false, "www.instagram.com").unwrap();
    assert_eq!(s, "NXDOMAIN", "{text}");
    assert!(text.contains(SCHOOL_RULE), "{text}");
    assert_eq!(
        status(kdig(&lab, &ca, LAPTOP, true, "facebook.com")).as_deref(),
        Some("NXDOMAIN")
    );
    // Allowed names resolve, to the internet's answer.
    let (s, text) = kdig(&lab, &ca, LAPTOP, true, "homework.lab").unwrap();
    assert_eq!(s, "NOERROR");
    assert!(text.contains(WEB), "{text}");
    // A pupil's iPad away from school follows its own group's rule: the school day is over.
    assert_eq!(
        status(kdig(&lab, &ca, IPAD, true, "facebook.com")).as_deref(),
        Some("NOERROR")
    );

    // A browser at home with the school's DoH template: allowed sites open, social does not
    // resolve (curl's exit 6).
    let browse = |url: &str| {
        lab.exec(
            "inet",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "--doh-url",
                &format!("https://{SERVER}/dns-query/{LAPTOP}"),
                "--resolve",
                &format!("{SERVER}:443:{PUBLIC}"),
                "--cacert",
                ca.to_str().unwrap(),
                url,
            ],
        )
    };
    let page = browse("http://homework.lab/");
    assert_eq!(
        String::from_utf8_lossy(&page.stdout),
        "fake site homework.lab\n",
        "{}",
        String::from_utf8_lossy(&page.stderr)
    );
    assert_eq!(browse("http://www.instagram.com/").status.code(), Some(6));

    // The same laptop back at school, its profile still pointing at the public listener: it
    // is judged and reported as at school, by its address.
    let at_school = lab.exec(
        SCHOOL.name,
        &[
            "kdig",
            &format!("@{PUBLIC}"),
            "+time=3",
            "+retry=0",
            "+tls",
            &format!("+tls-hostname={LAPTOP}.{SERVER}"),
            &format!("+tls-ca={}", ca.display()),
            "m.facebook.com",
        ],
    );
    assert!(
        String::from_utf8_lossy(&at_school.stdout).contains("status: NXDOMAIN"),
        "{}",
        String::from_utf8_lossy(&at_school.stdout)
    );

    // An unknown id is refused: no TLS handshake, and HTTP 403.
    assert_eq!(
        kdig(&lab, &ca, "ict-suite-09-zzzz", false, "homework.lab"),
        None
    );
    assert_eq!(
        kdig(&lab, &ca, "ict-suite-09-zzzz", true, "homework.lab"),
        None
    );
    let refused = lab.exec(
        "inet",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &format!("{SERVER}:443:{PUBLIC}"),
            "--cacert",
            ca.to_str().unwrap(),
            &format!(
                "https://{SERVER}/dns-query/ict-suite-09-zzzz?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB"
            ),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");

    // The blocked lookups reach the console as ICT-Suite-01's, off site, with no address.
    let rows = || {
        console::query(
            &lab,
            "SELECT name || '|' || device_name || '|' || off_site || '|' || \
             COALESCE(device_ip, '-') || '|' || rule FROM events WHERE kind = 'blocked' \
             ORDER BY name",
        )
    };
    let names = |rows: &[String]| {
        let mut n: Vec<String> = rows
            .iter()
            .filter_map(|r| r.split('|').next().map(str::to_owned))
            .collect();
        n.dedup();
        n
    };
    assert!(
        eventually(20, || names(&rows())
            == ["facebook.com", "m.facebook.com", "www.instagram.com"]),
        "{:?}\n{}",
        rows(),
        lab.log("agent")
    );
    for row in rows() {
        let (name, rest) = row.split_once('|').unwrap();
        let want = match name {
            "m.facebook.com" => format!("ICT-Suite-01|0|{}|{SCHOOL_RULE}", SCHOOL.ip),
            _ => format!("ICT-Suite-01|1|-|{SCHOOL_RULE}"),
        };
        assert_eq!(rest, want, "{row}");
    }
}

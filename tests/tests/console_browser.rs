//! The safeguarding lead's console in a real browser, with a real agent behind it: headless
//! Chromium driven through chromedriver (fantoccini) on the staff laptop of the namespace lab.
//!
//! A pupil's laptop starts OpenVPN and is quarantined (the policy lets nothing through
//! quarantine, not even the VLE); another pupil device sends a TLS ClientHello whose server
//! name is `<script>alert(1)</script>.example` and that offers DNS over TLS. The agent
//! ships both alerts to the console on the gateway. The DSL signs in, sees the alerts, finds
//! the hostile name shown as text (no script ran, no dialog opened), acknowledges the VPN
//! alert, writes a note and releases the quarantine; the pupil reaches the VLE again. An IT
//! account opens the same alert and sees no note, reads the policy in force and asks the
//! gateway why a site is blocked (its answer shown); a teacher asks for an exception and an
//! approver approves it. The lead of another school of the trust opens the VPN incident's
//! address and finds nothing. Screenshots go to `target/browser/`.
//!
//! The test process is in the root namespace and chromedriver on the staff laptop's
//! loopback: `lab-peer relay` joins them through a Unix socket, which is a file and so
//! crosses namespaces. Skipped, saying so, without Chromium, chromedriver, OpenVPN, OpenSSL
//! or sqlite3 (`.ci/run` installs them); under CI that is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod browser;

use std::path::Path;
use std::time::Duration;

use browser::{
    click, element, screenshot, screenshot_dir, sign_in_at, sign_out, start_browser, submit,
    text_of, wait_for,
};
use fantoccini::{Client, Locator};
use schoolgate_tests::lab::{GATEWAY, Lab, PUPIL, RESOLVER, SCHOOL, SITES, WEB, eventually};
use schoolgate_tests::{console, require_lab, require_tools, vpn};

const CONSOLE: &str = "10.77.0.1:8443";
const OPENVPN: &str = SITES[0];
const VLE: &str = "vle.198-51-100-22.ip.lab";
const HOSTILE: &str = "<script>alert(1)</script>.example";
const NOTE: &str = "Spoke to the pupil with their class teacher; VPN app removed from the laptop.";
const DSL_PASSWORD: &str = "correct horse battery staple";
const IT_PASSWORD: &str = "a different long passphrase";
const TEACHER_PASSWORD: &str = "a teachers long passphrase";
const APPROVER_PASSWORD: &str = "a directors long passphrase";
const OTHER_DSL_PASSWORD: &str = "another schools lead passphrase";

fn policy(lab: &Lab) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  social_networking: {{ domains: [instagram.com] }}
  vle: {{ domains: [{VLE}] }}
groups:
  pupils:
    networks: [10.77.0.0/28]
    devices:
      - {{ mac: "{pupil_mac}", name: Y6-Laptop-3, owner: 6B }}
      - {{ mac: "{school_mac}", name: Y5-iPad-7, owner: 5A }}
  staff: {{ networks: [10.77.0.16/28] }}
schedules:
  lessons: {{ days: [mon, tue, wed, thu, fri, sat, sun], times: ["00:00-23:59"], label: in lesson time }}
rules:
  - {{ name: VLE always, groups: [all], allow: [vle] }}
  - {{ name: Pupils off social, groups: [pupils], block: [social_networking] }}
requests:
  - {{ name: Media lesson, allow: [social_networking], groups: [pupils], classes: [all], longest_minutes: 60 }}
bypass:
  response: {{ pupils: quarantine, staff: alert }}
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53"]
    upstreams: ["{RESOLVER}"]
    block_response: nxdomain
  state_dir: {state}
  console: {{ url: "https://{CONSOLE}", token_file: {token}, ca_file: {ca}, name: gw1 }}
"#,
        pupil_mac = PUPIL.mac,
        school_mac = SCHOOL.mac,
        state = lab.path("state").display(),
        token = lab.path("agent.token").display(),
        ca = lab.path("console.crt").display(),
    )
}

fn missing_tools() -> Option<&'static str> {
    schoolgate_tests::lab::missing_tool(&[
        "chromium",
        "chromedriver",
        "openvpn",
        "openssl",
        "sqlite3",
    ])
}

/// The id of the console's incident holding an alert of `technique` from `ip`, once it has
/// arrived.
fn alert_id(lab: &Lab, technique: &str, ip: &str) -> Option<String> {
    console::query(
        lab,
        &format!(
            "SELECT incident FROM events WHERE kind = 'bypass_attempt' \
             AND technique = '{technique}' AND device_ip = '{ip}' AND incident IS NOT NULL \
             ORDER BY id LIMIT 1"
        ),
    )
    .into_iter()
    .next()
}

async fn sign_in(c: &Client, name: &str, password: &str) {
    sign_in_at(c, CONSOLE, name, password).await;
}

/// What the DSL and IT do in the browser, checked as they go.
async fn in_the_browser(c: &Client, lab: &Lab, vpn_alert: &str, hostile_alert: &str) {
    // The DSL signs in and sees both incidents in the list, in words: the VPN attempt and
    // the quarantine it caused are one row.
    sign_in(c, "dsl", DSL_PASSWORD).await;
    c.goto(&format!("https://{CONSOLE}/alerts")).await.unwrap();
    let list = text_of(c, "body").await;
    for expected in [
        "Y6-Laptop-3 used a VPN (OpenVPN)",
        "Y5-iPad-7 used DNS over TLS",
        "High",
    ] {
        assert!(
            list.contains(expected),
            "{expected} not in the list:\n{list}"
        );
    }
    let rows = c
        .execute(
            "return [...document.querySelectorAll('table.alerts tbody tr')]\
               .filter(r => r.textContent.includes('Y6-Laptop-3')).length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        serde_json::json!(1),
        "the VPN incident is one row:\n{list}"
    );
    screenshot(c, "1-alerts").await;

    // The hostile server name is text on the page: no script ran, no dialog opened, and the
    // markup holds it escaped.
    c.goto(&format!("https://{CONSOLE}/alerts/{hostile_alert}"))
        .await
        .unwrap();
    let text = text_of(c, "body").await;
    assert!(text.contains(&format!("\"{HOSTILE}\"")), "{text}");
    assert!(
        c.get_alert_text().await.is_err(),
        "a dialog opened: the name ran as script"
    );
    let source = c.source().await.unwrap();
    assert!(
        source.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example"),
        "{source}"
    );
    assert!(!source.contains(HOSTILE), "{source}");
    let inline_scripts = c
        .execute(
            "return document.querySelectorAll('script:not([src])').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inline_scripts, serde_json::json!(0));
    screenshot(c, "2-hostile-name").await;

    // The VPN alert: in plain words, the device, and its quarantine.
    c.goto(&format!("https://{CONSOLE}/alerts/{vpn_alert}"))
        .await
        .unwrap();
    let text = text_of(c, "body").await;
    for expected in ["Y6-Laptop-3", "6B", "OpenVPN", "In quarantine", "new"] {
        assert!(
            text.contains(expected),
            "{expected} not on the page:\n{text}"
        );
    }
    screenshot(c, "3-vpn-alert").await;

    // Triage: acknowledged, a note, the release.
    submit(c, "triage", "status", "acknowledged", "Triage recorded.").await;
    let status = text_of(c, "h1 .status").await;
    assert_eq!(status, "acknowledged");
    submit(c, "notes", "body", NOTE, "Note added.").await;
    let notes = text_of(c, "section.notes").await;
    assert!(notes.contains(NOTE) && notes.contains("dsl"), "{notes}");
    submit(
        c,
        "release",
        "reason",
        "Spoke to the pupil; VPN removed",
        "Release sent to the gateway; it takes effect within seconds.",
    )
    .await;
    screenshot(c, "4-released").await;

    // The agent takes the release from the console, lets the pupil go, and says so; the
    // page then shows no quarantine.
    assert!(
        eventually(30, || !lab.quarantined(PUPIL.ip)),
        "the agent did not release the pupil: {}",
        lab.log("agent")
    );
    let mut still = true;
    for _ in 0..30 {
        c.refresh().await.unwrap();
        if !text_of(c, "body").await.contains("In quarantine") {
            still = false;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!still, "the console still shows the quarantine");
    let history = text_of(c, "section.history").await;
    assert!(history.contains("acknowledged"), "{history}");

    // IT opens the same alert: the technical detail, no case notes.
    sign_out(c).await;
    sign_in(c, "it", IT_PASSWORD).await;
    c.goto(&format!("https://{CONSOLE}/alerts/{vpn_alert}"))
        .await
        .unwrap();
    let text = text_of(c, "body").await;
    assert!(text.contains("OpenVPN"), "{text}");
    let source = c.source().await.unwrap();
    assert!(!source.contains("Spoke to the pupil"), "IT sees the note");
    assert!(!text.contains("Case notes"), "{text}");
    screenshot(c, "5-it-view").await;

    // IT reads the policy in force and asks the gateway why a site is blocked.
    c.goto(&format!("https://{CONSOLE}/policy")).await.unwrap();
    let text = text_of(c, "body").await;
    assert!(text.contains("Pupils off social"), "{text}");
    screenshot(c, "6-policy").await;
    c.goto(&format!("https://{CONSOLE}/explain")).await.unwrap();
    element(c, "input[name=client]")
        .await
        .send_keys(PUPIL.ip)
        .await
        .unwrap();
    element(c, "input[name=name]")
        .await
        .send_keys("www.instagram.com")
        .await
        .unwrap();
    click(c, "form[action='/explain'] button").await;
    let mut answer = String::new();
    for _ in 0..100 {
        if let Ok(p) = c.find(Locator::Css("p.answer")).await {
            answer = p.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answer.starts_with("Blocked:") && answer.contains("Pupils off social"),
        "the gateway's answer: {answer:?}"
    );
    screenshot(c, "7-explain").await;
    sign_out(c).await;

    // A teacher asks for social networking for 6B for this lesson; the approver approves.
    sign_in(c, "mr.osei", TEACHER_PASSWORD).await;
    let text = text_of(c, "body").await;
    assert!(
        text.contains("Ask for an exception") && !text.contains("Incidents"),
        "{text}"
    );
    element(c, "input[name=classes]")
        .await
        .send_keys("6B")
        .await
        .unwrap();
    element(c, "textarea[name=reason]")
        .await
        .send_keys("Media unit: how adverts target children")
        .await
        .unwrap();
    // From now, for the hour the form offers (the next "lesson" here would be all day).
    click(c, "input[name=when][value=now]").await;
    click(c, "form[action='/requests'] button").await;
    if c.find(Locator::Css("p.done")).await.is_err() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let answer = text_of(c, "body").await;
    assert!(answer.contains("Request sent"), "{answer}");
    assert_eq!(
        text_of(c, "p.done").await,
        "Request sent: an approver will decide it."
    );
    screenshot(c, "8-teacher-request").await;
    sign_out(c).await;
    sign_in(c, "head", APPROVER_PASSWORD).await;
    let waiting = text_of(c, "section.waiting").await;
    assert!(
        waiting.contains("Media unit") && waiting.contains("class 6B"),
        "{waiting}"
    );
    screenshot(c, "9-approver").await;
    click(c, "form.decide[action$='/approve'] button").await;
    wait_for(c, "p.done").await;
    assert_eq!(
        text_of(c, "p.done").await,
        "Approved: the gateway applies it within seconds."
    );
    sign_out(c).await;

    // The lead of another school of the trust sees none of this school's incidents, and the
    // VPN incident's own address finds nothing.
    sign_in(c, "dsl-elm", OTHER_DSL_PASSWORD).await;
    c.goto(&format!("https://{CONSOLE}/alerts")).await.unwrap();
    let list = text_of(c, "body").await;
    assert!(list.contains("dsl-elm (dsl, Elm Academy)"), "{list}");
    assert!(
        !list.contains("Y6-Laptop-3") && !list.contains("Y5-iPad-7"),
        "another school's lead sees this school's incidents:\n{list}"
    );
    c.goto(&format!("https://{CONSOLE}/alerts/{vpn_alert}"))
        .await
        .unwrap();
    let page = text_of(c, "body").await;
    assert_eq!(page, "No such incident.");
    assert!(
        !page.contains("Y6-Laptop-3") && !page.contains("OpenVPN"),
        "{page}"
    );
    screenshot(c, "10-other-school").await;
}

#[test]
fn the_dsl_handles_a_vpn_alert_in_a_browser() {
    require_lab!();
    require_tools!(missing_tools());
    let mut lab = Lab::up();
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn(
        "inet",
        "resolver",
        &[peer, "dns", &format!("{RESOLVER}:53")],
    );
    lab.spawn(
        "inet",
        "web",
        &[peer, "http", &format!("{WEB}:80"), "198.51.100.22:80"],
    );
    lab.spawn("inet", "dot", &[peer, "dot", &format!("{RESOLVER}:443")]);
    vpn::start_server(&mut lab, OPENVPN);

    console::prepare(&lab, &[GATEWAY]);
    // A trust of two schools: the gateway is Oak's; Elm's lead has an account too.
    std::fs::write(
        lab.path("console/console.yaml"),
        "schools:\n  - { id: oak, name: Oak Primary }\n  - { id: elm, name: Elm Academy }\n",
    )
    .unwrap();
    console::cli(&lab.path("console"), &["agent", "school", "gw1", "oak"]);
    console::add_user(&lab, "dsl", "dsl", DSL_PASSWORD);
    console::add_user(&lab, "it", "it", IT_PASSWORD);
    console::add_user(&lab, "mr.osei", "teacher", TEACHER_PASSWORD);
    console::add_user(&lab, "head", "approver", APPROVER_PASSWORD);
    console::add_user(&lab, "dsl-elm", "dsl", OTHER_DSL_PASSWORD);
    console::cli(&lab.path("console"), &["user", "school", "dsl-elm", "elm"]);
    console::start(&mut lab, "console", CONSOLE);
    let policy_file = lab.path("policy.yaml");
    std::fs::write(&policy_file, policy(&lab)).unwrap();
    lab.spawn_agent("agent", &policy_file, &[]);
    assert!(
        eventually(15, || lab.log("agent").contains("inspecting")
            && lab.curl(PUPIL.name, &format!("http://{VLE}/")) == Some(0)),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // A pupil device names a hostile server in a ClientHello that offers DNS over TLS (ALPN
    // `dot`) on port 443, where the firewall does not refuse it first as it does on 853.
    let _ = lab.exec(
        SCHOOL.name,
        &[
            "sh",
            "-c",
            &format!(
                "echo | timeout 5 openssl s_client -connect {RESOLVER}:443 -alpn dot -servername '{HOSTILE}'"
            ),
        ],
    );
    // The pupil's laptop starts a VPN: quarantined, not even the VLE answers.
    let client = vpn::client(&lab, OPENVPN);
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    lab.spawn(PUPIL.name, "vpn", &client);
    assert!(
        eventually(15, || lab.quarantined(PUPIL.ip)),
        "the pupil was not quarantined: {}",
        lab.log("agent")
    );
    lab.signal("vpn", "KILL");
    assert!(
        eventually(5, || lab.curl(PUPIL.name, &format!("http://{VLE}/"))
            != Some(0)),
        "a quarantined pupil still reaches the VLE"
    );
    let mut ids = None;
    assert!(
        eventually(30, || {
            ids =
                alert_id(&lab, "openvpn", PUPIL.ip).zip(alert_id(&lab, "dns_over_tls", SCHOOL.ip));
            ids.is_some()
        }),
        "the alerts did not reach the console, which holds {:?}: {}",
        console::query(&lab, "SELECT kind, technique, device_ip FROM events"),
        lab.log("agent"),
    );
    let (vpn_alert, hostile_alert) = ids.unwrap();

    // The DSL's laptop: chromedriver (and the Chromium it starts) on the staff host.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = start_browser(&mut lab, &runtime);
    // A failed check still lets the browser be closed before the test reports it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(in_the_browser(&client, &lab, &vpn_alert, &hostile_alert));
    }));
    let _ = runtime.block_on(client.close());
    if let Err(panic) = outcome {
        eprintln!("console log:\n{}", lab.log("console"));
        std::panic::resume_unwind(panic);
    }

    // Released: the pupil reaches the VLE again.
    assert!(
        eventually(10, || lab.curl(PUPIL.name, &format!("http://{VLE}/"))
            == Some(0)),
        "released, yet the VLE does not answer"
    );
    eprintln!("screenshots in {}", screenshot_dir().display());
}

/// An SMTP sink for the lab: each message it takes in a file of its own in `dir`.
const SINK: &str = r#"
import sys, time, pathlib
from aiosmtpd.controller import Controller
out = pathlib.Path(sys.argv[3])
class Keep:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Keep.n += 1
        (out / f"{Keep.n}.eml").write_bytes(envelope.content)
        return "250 kept"
Controller(Keep(), hostname=sys.argv[1], port=int(sys.argv[2])).start()
print("sink ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// The messages the sink in `dir` has taken.
fn mailed(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Two consoles on the gateway, on one PostgreSQL database (a trust's consoles behind a load
/// balancer): an incident the agents' API stores on one appears live in the DSL's browser
/// open on the other, and it is e-mailed once between them.
#[test]
fn two_consoles_on_one_database_show_and_mail_an_incident_once() {
    require_lab!();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-venv/bin/python3");
    let needs = (
        schoolgate_tests::lab::missing_tool(&["chromium", "chromedriver", "psql", "curl"]),
        std::env::var("SCHOOLGATE_TEST_POSTGRES").ok(),
        python.exists(),
    );
    let (None, Some(base), true) = needs else {
        let why = format!(
            "needs chromium, chromedriver, psql and curl ({:?} missing), SCHOOLGATE_TEST_POSTGRES \
             and aiosmtpd in target/lab-venv (see scripts/test)",
            needs.0
        );
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("skipping: {why}");
        return;
    };
    let mut lab = Lab::up();

    // A database of its own, named as the console's tests name theirs (an old one left by
    // a failed run is dropped by them after an hour).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let name = format!(
        "sg_test_{:012x}{:020x}",
        now.as_millis(),
        u128::from(now.subsec_nanos()) ^ u128::from(std::process::id())
    );
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([base.as_str(), "-q", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("CREATE DATABASE {name}"));
    let (server, _) = base.rsplit_once('/').unwrap();
    let here = format!("{server}/{name}");
    let (host, port) = server.rsplit_once('@').unwrap().1.rsplit_once(':').unwrap();
    let socket = console::postgres_for_the_lab(&lab, host, port.parse().unwrap());
    let in_lab = format!("{here}?host={}", socket.display());

    let one = "10.77.0.1:8443";
    let two = "10.77.0.1:8444";
    console::prepare_on(&lab, &[GATEWAY], Some(&here));
    console::add_user_on(&lab, "dsl", "dsl", DSL_PASSWORD, Some(&here));
    let sink = lab.path("mail");
    std::fs::create_dir_all(&sink).unwrap();
    std::fs::write(
        lab.path("console/console.yaml"),
        format!(
            "public_url: https://{one}\n\
             smtp: {{ host: 127.0.0.1, port: 2525, security: none, from: console@school.example, \
             to: [dsl@school.example] }}\n"
        ),
    )
    .unwrap();
    lab.spawn(
        "gw",
        "sink",
        &[
            python.to_str().unwrap(),
            "-c",
            SINK,
            "127.0.0.1",
            "2525",
            sink.to_str().unwrap(),
        ],
    );
    assert!(
        eventually(10, || lab.log("sink").contains("sink ready")),
        "{}",
        lab.log("sink")
    );
    console::start_on(&mut lab, "console-one", one, Some(&in_lab));
    console::start_on(&mut lab, "console-two", two, Some(&in_lab));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = start_browser(&mut lab, &runtime);
    let id = "0190f2a0-0000-7000-8000-00000000a107";
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            // The DSL has the incident list open on the second console.
            sign_in_at(&client, two, "dsl", DSL_PASSWORD).await;
            client.goto(&format!("https://{two}/alerts")).await.unwrap();
            wait_for(&client, "table.alerts").await;
            let rows = "return [...document.querySelectorAll('table.alerts tbody tr')]\
                        .filter(r => r.textContent.includes('ICT-Suite-07')).length";
            assert_eq!(
                client.execute(rows, vec![]).await.unwrap(),
                serde_json::json!(0)
            );

            // The gateway's batch reaches the first console.
            let time = jiff::Timestamp::now().to_string();
            let batch = serde_json::json!({"agent": "gw1", "events": [{
                "id": id, "time": time, "kind": "bypass_attempt",
                "device": {"ip": "10.10.4.7", "name": "ICT-Suite-07"}, "group": "pupils",
                "technique": "tor", "evidence": "Tor handshake to 203.0.113.9:9001",
                "severity": "high",
            }]});
            let body = lab.path("batch.json");
            std::fs::write(&body, batch.to_string()).unwrap();
            let token = std::fs::read_to_string(lab.path("agent.token")).unwrap();
            let sent = lab.exec(
                "gw",
                &[
                    "curl",
                    "-sk",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    &format!("Authorization: Bearer {}", token.trim()),
                    "-H",
                    "Content-Type: application/json",
                    "--data-binary",
                    &format!("@{}", body.display()),
                    &format!("https://{one}/api/v1/events"),
                ],
            );
            assert_eq!(String::from_utf8_lossy(&sent.stdout), "200", "{sent:?}");

            // It appears on the page open on the other console, without a reload.
            let mut shown = serde_json::json!(0);
            for _ in 0..150 {
                shown = client.execute(rows, vec![]).await.unwrap();
                if shown == serde_json::json!(1) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                shown,
                serde_json::json!(1),
                "{}",
                text_of(&client, "body").await
            );
            let counts = text_of(&client, "p.counts").await;
            assert_eq!(counts, "1 matching: 1 new");
            assert!(
                client.find(Locator::Css("#none")).await.is_err(),
                "the page still says no incident matches"
            );
            screenshot(&client, "11-live-on-the-other-console").await;
        });
    }));
    let _ = runtime.block_on(client.close());
    if let Err(panic) = outcome {
        eprintln!("{}\n{}", lab.log("console-one"), lab.log("console-two"));
        psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
        std::panic::resume_unwind(panic);
    }

    // Mailed within a tick (15 s), and once: both consoles look every 15 s, so after the
    // message a further 20 s gives each a turn.
    let link = format!("/alerts/{id}");
    assert!(
        eventually(30, || mailed(&sink).iter().any(|m| m.contains(&link))),
        "no message: {}\n{}",
        lab.log("console-one"),
        lab.log("console-two")
    );
    std::thread::sleep(Duration::from_secs(20));
    let messages = mailed(&sink);
    assert_eq!(
        messages.iter().filter(|m| m.contains(&link)).count(),
        1,
        "{messages:?}"
    );
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
}

//! The person on a real gateway built from network namespaces: an exception for class 6B
//! opens a video site to 6B's signed-in pupils at the resolver *and* at the firewall (by
//! address, as an app that kept the address would reach it), and not to 6A, and one for a
//! single PC opens it on that PC only; and a pupil's
//! bypass attempt bans the pupil, not the PC: the PC is free once she signs out, the next
//! PC she signs in to is quarantined, supervised use records the names she reaches (asked of
//! the school's DNS or seen on the wire), and lifting her ban frees it. Sign-ins are sent by
//! FreeRADIUS's own `radclient`, as a Wi-Fi controller sends accounting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use schoolgate_tests::lab::{GATEWAY, Lab, PUPIL, RESOLVER, SCHOOL, eventually};
use schoolgate_tests::require_lab;

const SECRET: &str = "wlc-secret-1";
const RADIUS: &str = "127.0.0.1:18130";
/// The video site: the lab's resolver answers the name with its own address.
const VIDEO: &str = "video.198-51-100-21.ip.lab";
const VIDEO_AT: &str = "198.51.100.21";

/// The policy: pupils may not watch video, 6B may for a project. With `pcs`, the pupils' PCs
/// may not either, except ICT-02 (the school host's MAC) for a club. `bypass` is a
/// `bypass:` section.
fn policy_with(lab: &Lab, pcs: bool, bypass: &str) -> String {
    let now = jiff::Timestamp::now();
    let from = now - jiff::SignedDuration::from_hours(1);
    let to = now + jiff::SignedDuration::from_hours(2);
    let minute = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M").to_string();
    let (pc_rule, pc_exception) = if pcs {
        (
            "  - { name: No video on pupil PCs, groups: [pupil_pcs], block: [video] }\n".to_owned(),
            format!(
                "  - {{ name: Media club, devices: [ICT-02], allow: [video], from: {}, to: {}, approved_by: J. Director }}\n",
                minute(from),
                minute(to)
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  video: {{ domains: [{VIDEO}] }}
groups:
  pupil_pcs: {{ networks: [10.77.0.0/28], devices: [{{ mac: "{ict}", name: ICT-02 }}] }}
  pupils: {{ directory: [Pupils] }}
rules:
  - {{ name: No video for pupils, groups: [pupils], block: [video] }}
{pc_rule}exceptions:
  - {{ name: 6B film project, classes: [6B], allow: [video], from: {from}, to: {to}, approved_by: J. Director }}
{pc_exception}gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53"]
    upstreams: ["{RESOLVER}"]
    block_response: sinkhole
  block_page: {{ listen: "{GATEWAY}:80" }}
  state_dir: {state}
  roster: roster.csv
  radius:
    listen: ["{RADIUS}"]
    clients: [{{ address: 127.0.0.1, secret_file: wlc.secret }}]
  metrics: {{ listen: "127.0.0.1:9153" }}
{bypass}"#,
        from = minute(from),
        to = minute(to),
        state = lab.path("state").display(),
        ict = SCHOOL.mac,
    )
}

/// One accounting request from the gateway's own Wi-Fi controller stand-in, for `user` at
/// the pupil's PC; whether it was answered.
fn radclient(lab: &Lab, status: &str, user: &str) -> bool {
    radclient_at(lab, status, user, &PUPIL)
}

fn radclient_at(lab: &Lab, status: &str, user: &str, host: &schoolgate_tests::lab::Host) -> bool {
    let attributes = format!(
        "Acct-Status-Type = {status}\nUser-Name = \"{user}\"\nFramed-IP-Address = {ip}\n\
         Calling-Station-Id = \"{mac}\"\nAcct-Session-Id = \"{user}-1\"\nNAS-Identifier = \"wlc1\"\n",
        ip = host.ip,
        mac = host.mac.replace(':', "-"),
    );
    let script = format!(
        "printf '%s' '{attributes}' | radclient -D /usr/share/freeradius -r 1 -t 2 -x {RADIUS} acct {SECRET}"
    );
    let out = lab.exec("gw", &["sh", "-c", &script]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Accounting-Response")
}

/// Whether radclient is missing (and the test is to be skipped); in CI it must be there.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
fn no_radclient() -> bool {
    if schoolgate_tests::lab::missing_tool(&["radclient"]).is_none() {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!("radclient is not installed (see scripts/setup)");
    }
    eprintln!("skipping: radclient is not installed (see scripts/setup)");
    true
}

/// The lab with the outside resolver and web server, the roster and the RADIUS secret.
fn school(lab: &mut Lab) {
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn("inet", "resolver", &[peer, "dns", "198.51.100.53:53"]);
    lab.spawn("inet", "web", &[peer, "http", "198.51.100.21:80"]);
    // A TLS server on the same address, for names seen on the wire.
    lab.spawn("inet", "tls", &[peer, "dot", "198.51.100.21:443"]);
    std::fs::write(
        lab.path("roster.csv"),
        "Username,Display Name,Role,Class\namira.k,Amira Khan,Pupil,6B\nben.t,Ben Turner,Pupil,6A\n",
    )
    .unwrap();
    std::fs::write(lab.path("wlc.secret"), format!("{SECRET}\n")).unwrap();
}

#[test]
fn a_class_exception_holds_at_the_resolver_and_the_firewall_for_that_class_only() {
    require_lab!();
    if no_radclient() {
        return;
    }
    let mut lab = Lab::up();
    school(&mut lab);
    std::fs::write(lab.path("policy.yaml"), policy_with(&lab, true, "")).unwrap();
    let policy = lab.path("policy.yaml");
    lab.spawn_agent("agent", &policy, &["--no-inspection"]);
    let site = format!("http://{VIDEO_AT}/");
    let resolved = |lab: &Lab| {
        lab.dig(PUPIL.name, GATEWAY, VIDEO, "A", &[])
            .first("A")
            .map(str::to_owned)
    };
    assert!(
        eventually(15, || resolved(&lab).is_some()),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // Nobody signed in: the PCs' rule, at the resolver and, by address, at the firewall
    // (the agent looked the blocked name up itself, and refuses its address).
    assert_eq!(resolved(&lab).as_deref(), Some(GATEWAY));
    assert!(
        eventually(10, || lab.curl(PUPIL.name, &site) == Some(7)),
        "the firewall lets the PC reach the video site by address: {}",
        lab.log("agent")
    );

    // ICT-02, which the media club's exception names: open at both, on that PC only.
    let on_ict = |lab: &Lab| {
        lab.dig(SCHOOL.name, GATEWAY, VIDEO, "A", &[])
            .first("A")
            .map(str::to_owned)
    };
    assert_eq!(on_ict(&lab).as_deref(), Some(VIDEO_AT));
    assert!(
        eventually(15, || lab.curl(SCHOOL.name, &site) == Some(0)),
        "the firewall refuses the PC an exception names: {}",
        lab.log("agent")
    );

    // Amira (6B) signs in at the pupil's PC: the class's exception opens it at both.
    assert!(radclient(&lab, "Start", "amira.k"), "{}", lab.log("agent"));
    assert!(
        eventually(5, || resolved(&lab).as_deref() == Some(VIDEO_AT)),
        "the resolver blocks video for 6B: {}",
        lab.log("agent")
    );
    assert!(
        eventually(10, || lab.curl(PUPIL.name, &site) == Some(0)),
        "the firewall refuses 6B the video site: {}",
        lab.log("agent")
    );
    let metrics = lab.metrics();
    assert!(
        metrics.contains("schoolgate_firewall_placed_addresses 2\n"),
        "Amira's PC and ICT-02: {metrics}"
    );

    // She signs out and Ben (6A) signs in: pupils' rule, and no exception, at both.
    assert!(radclient(&lab, "Stop", "amira.k"));
    assert!(radclient(&lab, "Start", "ben.t"));
    assert!(
        eventually(5, || resolved(&lab).as_deref() == Some(GATEWAY)),
        "the resolver does not block video for 6A: {}",
        lab.log("agent")
    );
    assert!(
        eventually(10, || lab.curl(PUPIL.name, &site) == Some(7)),
        "the firewall lets 6A reach the video site by address: {}",
        lab.log("agent")
    );

    // Ben signs out: the PC is its group's again; ICT-02 keeps its exception.
    assert!(radclient(&lab, "Stop", "ben.t"));
    assert!(
        eventually(10, || lab
            .metrics()
            .contains("schoolgate_firewall_placed_addresses 1\n")),
        "{}",
        lab.metrics()
    );
    assert_eq!(lab.curl(PUPIL.name, &site), Some(7));
    assert_eq!(lab.curl(SCHOOL.name, &site), Some(0));
    lab.stop_cleanly("agent");
}

#[test]
fn a_bypass_attempt_bans_the_pupil_not_the_pc() {
    require_lab!();
    if no_radclient() {
        return;
    }
    let mut lab = Lab::up();
    school(&mut lab);
    // Pupils (the person group) are quarantined on a bypass attempt; the PCs' own group only
    // raises an alert.
    std::fs::write(
        lab.path("policy.yaml"),
        policy_with(
            &lab,
            false,
            "bypass:\n  response: { pupils: quarantine, pupil_pcs: alert }\n",
        ),
    )
    .unwrap();
    let policy = lab.path("policy.yaml");
    lab.spawn_agent("agent", &policy, &[]);
    let site = format!("http://{VIDEO_AT}/");
    assert!(
        eventually(15, || lab.curl(PUPIL.name, &site) == Some(0)),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // Amira signs in at the pupil's PC and asks an outside resolver: a bypass attempt.
    assert!(radclient(&lab, "Start", "amira.k"), "{}", lab.log("agent"));
    lab.dig(PUPIL.name, RESOLVER, "www.example.org", "A", &[]);
    assert!(
        eventually(5, || lab.quarantined(PUPIL.ip)),
        "the PC was not quarantined: {}",
        lab.log("agent")
    );
    assert!(
        eventually(5, || lab.curl(PUPIL.name, &site) == Some(7)),
        "the quarantined PC still reaches the site: {}",
        lab.log("agent")
    );
    let state = std::fs::read_to_string(lab.path("state").join("quarantine.json")).unwrap();
    assert!(
        state.contains("\"amira.k\""),
        "the ban is not Amira's: {state}"
    );

    // She signs out: the PC is free for the next child, and she stays banned.
    assert!(radclient(&lab, "Stop", "amira.k"));
    assert!(
        eventually(5, || !lab.quarantined(PUPIL.ip)),
        "the PC stayed quarantined after she signed out: {}",
        lab.log("agent")
    );
    assert!(
        eventually(5, || lab.curl(PUPIL.name, &site) == Some(0)),
        "the freed PC cannot reach the site"
    );

    // She signs in at another PC: that one is quarantined, held for her.
    assert!(radclient_at(&lab, "Start", "amira.k", &SCHOOL));
    assert!(
        eventually(5, || lab.quarantined(SCHOOL.ip)),
        "the PC she signed in to next was not quarantined: {}",
        lab.log("agent")
    );
    assert!(
        eventually(5, || lab.curl(SCHOOL.name, &site) == Some(7)),
        "the banned pupil's PC still reaches the site"
    );

    // The DSL lets her use ICT under close supervision: the PC is freed, and every name she
    // reaches is recorded.
    let agent = schoolgate_tests::lab::workspace_bin("schoolgate-agent");
    let release = |lab: &Lab, extra: &[&str]| {
        let mut args = vec![
            agent.to_str().unwrap(),
            "release",
            "--person",
            "AMIRA.K",
            "--reason",
            "spoke with Amira and her parents",
            "--policy",
            policy.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = lab.exec("gw", &args);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    release(&lab, &["--supervised", "30", "--then", "resume"]);
    assert!(!lab.quarantined(SCHOOL.ip));
    assert!(
        eventually(5, || lab.curl(SCHOOL.name, &site) == Some(0)),
        "the supervised pupil cannot use the PC"
    );
    lab.dig(SCHOOL.name, GATEWAY, "homework.example.org", "A", &[]);
    // A name reached by address, as an app that kept it would: seen on the wire.
    lab.exec(
        SCHOOL.name,
        &[
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "--max-time",
            "3",
            "--resolve",
            &format!("club.tls.lab:443:{VIDEO_AT}"),
            "https://club.tls.lab/",
        ],
    );
    // A bypass attempt in supervised use ends it: the ban is in force again at once.
    lab.dig(SCHOOL.name, RESOLVER, "www.example.net", "A", &[]);
    assert!(
        eventually(5, || lab.quarantined(SCHOOL.ip)),
        "a bypass attempt in supervised use left the PC free: {}",
        lab.log("agent")
    );

    // The DSL lifts her ban: the PC she is at is freed with it.
    release(&lab, &[]);
    assert!(!lab.quarantined(SCHOOL.ip));
    assert!(
        eventually(5, || lab.curl(SCHOOL.name, &site) == Some(0)),
        "the PC stayed refused after the ban was lifted"
    );
    lab.stop_cleanly("agent");

    // The story, in events, each naming Amira.
    let events = lab.events();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["person"]["username"] == "amira.k")
            .collect()
    };
    let says = |kind: &str, words: &str| {
        of(kind)
            .iter()
            .any(|e| e["evidence"].as_str().unwrap_or_default().contains(words))
    };
    assert_eq!(of("bypass_attempt").len(), 2, "{events:#?}");
    assert_eq!(of("quarantined").len(), 3, "{events:#?}");
    assert!(says(
        "quarantined",
        "is banned from school ICT until released"
    ));
    assert!(says("quarantined", "signed in while banned"));
    assert!(says("quarantined", "in supervised use, which is over"));
    assert!(says(
        "released",
        "signed out: the device is free for the next person"
    ));
    assert!(says("released", "supervised use of school ICT until"));
    assert!(says("released", "ban from school ICT lifted"));
    let supervised = of("supervised");
    assert!(
        supervised
            .iter()
            .any(|e| e["name"] == "homework.example.org" && e["device"]["ip"] == SCHOOL.ip),
        "{events:#?}"
    );
    assert!(
        supervised.iter().any(|e| e["name"] == "club.tls.lab"
            && e["evidence"] == "name seen on the wire in supervised use"),
        "{events:#?}"
    );
}

/// The console in the lab: a teacher asks for the video site for 6B for two minutes, the
/// approver approves, and the real agent (which fetches what was approved, checks it against
/// the policy's `requests:` and reloads) opens it to Amira (6B) and not to Ben (6A), at the
/// resolver and the firewall; IT asks the gateway why; the console goes down and the agent
/// restarts, and the exception holds from the agent's own copy; at its end it lapses.
#[test]
fn a_teachers_approved_request_opens_the_site_for_the_class_until_it_ends() {
    use schoolgate_tests::console;
    require_lab!();
    if no_radclient() {
        return;
    }
    const CONSOLE: &str = "10.77.0.1:8443";
    let mut lab = Lab::up();
    school(&mut lab);
    console::prepare(&lab, &[GATEWAY]);
    console::add_user(&lab, "mr.osei", "teacher", "teacher pass phrase");
    console::add_user(&lab, "head", "approver", "approver pass phrase");
    console::add_user(&lab, "it", "it", "technician pass phrase");
    console::start(&mut lab, "console", CONSOLE);
    let policy = format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  video: {{ label: online video, domains: [{VIDEO}] }}
groups:
  pupil_pcs: {{ networks: [10.77.0.0/28] }}
  pupils: {{ directory: [Pupils] }}
rules:
  - {{ name: No video for pupils, groups: [pupils], block: [video] }}
requests:
  - {{ name: Lesson video, allow: [video], classes: [all], longest_minutes: 60 }}
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53"]
    upstreams: ["{RESOLVER}"]
    block_response: sinkhole
  block_page: {{ listen: "{GATEWAY}:80" }}
  state_dir: {state}
  roster: roster.csv
  radius:
    listen: ["{RADIUS}"]
    clients: [{{ address: 127.0.0.1, secret_file: wlc.secret }}]
  console: {{ url: "https://{CONSOLE}", token_file: {token}, ca_file: {ca}, name: gw1 }}
"#,
        state = lab.path("state").display(),
        token = lab.path("agent.token").display(),
        ca = lab.path("console.crt").display(),
    );
    std::fs::write(lab.path("policy.yaml"), policy).unwrap();
    let policy = lab.path("policy.yaml");
    lab.spawn_agent("agent", &policy, &["--no-inspection"]);
    assert!(
        eventually(20, || console::query(&lab, "SELECT count(*) FROM policies")
            == ["1"]),
        "the agent did not send its policy to the console: {}",
        lab.log("agent")
    );
    assert!(radclient(&lab, "Start", "amira.k"), "{}", lab.log("agent"));
    assert!(radclient_at(&lab, "Start", "ben.t", &SCHOOL));
    let site = format!("http://{VIDEO_AT}/");
    let answer = |lab: &Lab, host: &str| {
        lab.dig(host, GATEWAY, VIDEO, "A", &[])
            .first("A")
            .map(str::to_owned)
    };
    assert!(
        eventually(10, || answer(&lab, PUPIL.name).as_deref() == Some(GATEWAY)),
        "video is open to 6B before any request: {}",
        lab.log("agent")
    );

    // The teacher asks; the approver approves.
    let base = format!("https://{CONSOLE}");
    let teacher = console::Session::sign_in(&lab, "gw", &base, "mr.osei", "teacher pass phrase");
    let asked = teacher.post(
        &lab,
        "/requests",
        "/requests",
        &[
            ("agent", "gw1"),
            ("allow", "video"),
            ("classes", "6B"),
            ("when", "now"),
            ("minutes", "2"),
            ("reason", "Film project: evaluating trailers"),
        ],
    );
    assert_eq!(asked.location, "/requests?done=asked", "{asked:?}");
    let id = console::query(&lab, "SELECT id FROM exception_requests")
        .first()
        .cloned()
        .unwrap();
    // Not yet approved: still shut.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(answer(&lab, PUPIL.name).as_deref(), Some(GATEWAY));
    let head = console::Session::sign_in(&lab, "gw", &base, "head", "approver pass phrase");
    let approved = head.post(
        &lab,
        "/requests",
        &format!("/requests/{id}/approve"),
        &[("note", "Yes")],
    );
    assert_eq!(approved.location, "/requests?done=approved", "{approved:?}");

    // Within seconds: open to Amira (6B) at the resolver and the firewall, not to Ben (6A).
    assert!(
        eventually(20, || answer(&lab, PUPIL.name).as_deref() == Some(VIDEO_AT)),
        "the approved request did not open video to 6B: {}",
        lab.log("agent")
    );
    assert!(
        eventually(10, || lab.curl(PUPIL.name, &site) == Some(0)),
        "the firewall refuses 6B the video site: {}",
        lab.log("agent")
    );
    assert_eq!(answer(&lab, SCHOOL.name).as_deref(), Some(GATEWAY));
    assert!(
        std::fs::read_to_string(lab.path("state/console-exceptions.json"))
            .unwrap()
            .contains("\"classes\": [\n        \"6B\""),
        "the agent keeps its copy"
    );

    // IT asks the gateway why, in the browser: the answer is the gateway's own decision, in
    // the command line's words, for the person the directory knows.
    let it = console::Session::sign_in(&lab, "gw", &base, "it", "technician pass phrase");
    let explain = |person: &str| {
        let asked = it.post(
            &lab,
            "/explain",
            "/explain",
            &[
                ("agent", "gw1"),
                ("client", PUPIL.ip),
                ("person", person),
                ("name", VIDEO),
                ("at", ""),
            ],
        );
        assert!(asked.location.starts_with("/explain/"), "{asked:?}");
        let mut page = String::new();
        assert!(
            eventually(20, || {
                page = it.get(&lab, &asked.location).body;
                page.contains("class=\"words answer\"")
            }),
            "no answer from the gateway: {page}\n{}",
            lab.log("agent")
        );
        page
    };
    let amira = explain("amira.k");
    assert!(
        amira.contains("Allowed:") && amira.contains(&format!("request {id}")),
        "{amira}"
    );
    let ben = explain("ben.t");
    assert!(
        ben.contains("Blocked:") && ben.contains("No video for pupils"),
        "{ben}"
    );

    // The console goes down and the gateway restarts: the lesson's exception holds, from
    // the gateway's own copy.
    lab.signal("console", "KILL");
    lab.stop_cleanly("agent");
    lab.spawn_agent("agent-again", &policy, &["--no-inspection"]);
    assert!(
        radclient(&lab, "Start", "amira.k"),
        "{}",
        lab.log("agent-again")
    );
    assert!(
        eventually(20, || answer(&lab, PUPIL.name).as_deref() == Some(VIDEO_AT)),
        "the exception did not outlive the console's outage: {}",
        lab.log("agent-again")
    );

    // Two minutes after it was asked for, it lapses by itself.
    assert!(
        eventually(140, || answer(&lab, PUPIL.name).as_deref() == Some(GATEWAY)),
        "the exception did not lapse at its end: {}",
        lab.log("agent")
    );
    assert!(
        eventually(15, || lab.curl(PUPIL.name, &site) == Some(7)),
        "the firewall still lets 6B reach the video site: {}",
        lab.log("agent-again")
    );
    lab.stop_cleanly("agent-again");
}

//! The person on a real gateway built from network namespaces: an exception for class 6B
//! opens a video site to 6B's signed-in pupils at the resolver *and* at the firewall (by
//! address, as an app that kept the address would reach it), and not to 6A, and one for a
//! single PC opens it on that PC only; and a pupil's
//! bypass attempt bans the pupil, not the PC: the PC is free once she signs out, the next
//! PC she signs in to is quarantined, supervised use records the names she reaches (asked of
//! the school's DNS or seen on the wire), and lifting her ban frees it. Sign-ins are sent by
//! FreeRADIUS's own `radclient`, as a Wi-Fi controller sends accounting. And the console in
//! Chromium: a teacher's request for the lesson, approved, opening the site to 6B only until
//! the lesson ends; IT's explain; the DSL's incident by the pupil's name, resolved.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod browser;

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
    // Within seconds; the browser test beside it can hold the two cores for a while.
    assert!(
        eventually(15, || lab.quarantined(PUPIL.ip)),
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

/// The console in the lab, in a browser on the staff laptop: a teacher asks for the video
/// site for 6B for the lesson under way, the approver approves, and the real agent (which
/// fetches what was approved, checks it against the policy's `requests:` and reloads) opens
/// it to Amira (6B) and not to Ben (6A), at the resolver and the firewall; IT asks the
/// gateway why, for a person at a time; the console goes down and the agent restarts, and
/// the exception holds from the agent's own copy; at the lesson's end it lapses. Then Amira
/// asks an outside resolver: the DSL sees one incident, by her name, in the school's time,
/// and resolves it.
#[test]
fn a_teachers_request_for_the_lesson_opens_the_site_for_the_class_until_it_ends() {
    use browser::{click, element, screenshot, sign_in_at, sign_out, start_browser, text_of};
    use fantoccini::Locator;
    use schoolgate_tests::console;
    use std::time::Duration;
    require_lab!();
    if no_radclient() {
        return;
    }
    if let Some(tool) = schoolgate_tests::lab::missing_tool(&["chromium", "chromedriver"]) {
        if std::env::var_os("CI").is_some() {
            panic!("`{tool}` is not installed (see scripts/setup)");
        }
        eprintln!("skipping: `{tool}` is not installed (see scripts/setup)");
        return;
    }
    const CONSOLE: &str = "10.77.0.1:8443";
    // The lesson under way: from this minute for three, every day (the policy's time is
    // UTC). One that would run past midnight waits for the new day.
    let mut now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    if now.hour() == 23 && now.minute() >= 55 {
        let wait = (60 - now.minute()) * 60 - now.second() + 2;
        std::thread::sleep(Duration::from_secs(u64::try_from(wait).unwrap()));
        now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    }
    let start = now
        .time()
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap();
    let end = start + jiff::SignedDuration::from_mins(3);
    let lesson = format!("{}-{}", start.strftime("%H:%M"), end.strftime("%H:%M"));

    let mut lab = Lab::up();
    school(&mut lab);
    console::prepare(&lab, &[GATEWAY]);
    console::add_user(&lab, "mr.osei", "teacher", "teacher pass phrase");
    console::add_user(&lab, "head", "approver", "approver pass phrase");
    console::add_user(&lab, "it", "it", "technician pass phrase");
    console::add_user(&lab, "dsl", "dsl", "safeguarding pass phrase");
    console::start(&mut lab, "console", CONSOLE);
    let policy = format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
schedules:
  lessons: {{ days: [mon, tue, wed, thu, fri, sat, sun], times: ["{lesson}"] }}
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

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let c = start_browser(&mut lab, &runtime);
    let base = format!("https://{CONSOLE}");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            // The teacher asks for the lesson under way; the approver approves.
            sign_in_at(&c, CONSOLE, "mr.osei", "teacher pass phrase").await;
            element(&c, "input[name=classes]")
                .await
                .send_keys("6B")
                .await
                .unwrap();
            element(&c, "textarea[name=reason]")
                .await
                .send_keys("Film project: evaluating trailers")
                .await
                .unwrap();
            // "The next period of the lessons timetable" is chosen as the form opens.
            click(&c, "form[action='/requests'] button").await;
            let said = text_of(&c, "p.done").await;
            assert_eq!(said, "Request sent: an approver will decide it.");
            let mine = text_of(&c, "table").await;
            assert!(
                mine.contains("online video") && mine.contains("6B"),
                "{mine}"
            );
            screenshot(&c, "people-1-teacher").await;
            sign_out(&c).await;
        });
    }));
    if outcome.is_ok() {
        // Not yet approved: still shut.
        std::thread::sleep(Duration::from_secs(6));
        assert_eq!(answer(&lab, PUPIL.name).as_deref(), Some(GATEWAY));
    }
    let outcome = outcome.and_then(|()| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                sign_in_at(&c, CONSOLE, "head", "approver pass phrase").await;
                let waiting = text_of(&c, "section.waiting").await;
                assert!(waiting.contains("class 6B"), "{waiting}");
                click(&c, "form.decide[action$='/approve'] button").await;
                assert_eq!(
                    text_of(&c, "p.done").await,
                    "Approved: the gateway applies it within seconds."
                );
                sign_out(&c).await;
            });
        }))
    });
    let id = console::query(&lab, "SELECT id FROM exception_requests")
        .first()
        .cloned()
        .unwrap_or_default();
    // The instant IT asks about: the first whole minute the exception covers (it runs from
    // when the teacher asked, within the lesson, to the lesson's end), as the console's form
    // takes it.
    let span: Vec<i64> = console::query(&lab, "SELECT from_ms, to_ms FROM exception_requests")
        .first()
        .map(|row| row.split('|').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let at_ms = span
        .first()
        .map_or(0, |from| (from + 59_999) / 60_000 * 60_000);
    assert!(
        span.get(1).is_some_and(|to| at_ms < *to),
        "no whole minute of the lesson is left to ask about: {span:?}"
    );
    let at = jiff::Timestamp::from_millisecond(at_ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string();

    // Within seconds: open to Amira (6B) at the resolver and the firewall, not to Ben (6A).
    let outcome = outcome.and_then(|()| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
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
        }))
    });

    // IT asks the gateway why, for a person at a time: the answer is the gateway's own
    // decision, in the command line's words, for the person the directory knows.
    let outcome = outcome.and_then(|()| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                sign_in_at(&c, CONSOLE, "it", "technician pass phrase").await;
                for (person, expected) in [
                    ("amira.k", format!("request {id}")),
                    ("ben.t", "No video for pupils".to_owned()),
                ] {
                    c.goto(&format!("{base}/explain")).await.unwrap();
                    for (field, value) in
                        [("client", PUPIL.ip), ("person", person), ("name", VIDEO)]
                    {
                        element(&c, &format!("input[name={field}]"))
                            .await
                            .send_keys(value)
                            .await
                            .unwrap();
                    }
                    // Within the exception, in the console's time (Europe/London).
                    let set_at =
                        format!("document.querySelector('input[name=at]').value = '{at}'",);
                    c.execute(&set_at, vec![]).await.unwrap();
                    click(&c, "form[action='/explain'] button").await;
                    let mut said = String::new();
                    for _ in 0..100 {
                        if let Ok(p) = c.find(Locator::Css("p.answer")).await {
                            said = p.text().await.unwrap_or_default();
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    assert!(said.contains(&expected), "{person}: {said:?}");
                    if person == "amira.k" {
                        assert!(said.starts_with("Allowed:"), "{said}");
                        screenshot(&c, "people-2-explain").await;
                    } else {
                        assert!(said.starts_with("Blocked:"), "{said}");
                    }
                }
                sign_out(&c).await;
            });
        }))
    });
    if let Err(panic) = outcome {
        let _ = runtime.block_on(c.clone().close());
        eprintln!("console log:\n{}", lab.log("console"));
        std::panic::resume_unwind(panic);
    }

    // The console goes down and the gateway restarts: the lesson's exception holds, from
    // the gateway's own copy.
    lab.signal("console", "KILL");
    lab.stop_cleanly("agent");
    lab.spawn_agent("agent-again", &policy, &["--no-inspection"]);
    // Once its RADIUS listener is up (a packet sent before is refused).
    assert!(
        eventually(15, || radclient(&lab, "Start", "amira.k")),
        "{}",
        lab.log("agent-again")
    );
    assert!(
        eventually(20, || answer(&lab, PUPIL.name).as_deref() == Some(VIDEO_AT)),
        "the exception did not outlive the console's outage: {}",
        lab.log("agent-again")
    );
    console::start(&mut lab, "console-again", CONSOLE);

    // At the lesson's end it lapses by itself.
    assert!(
        eventually(200, || answer(&lab, PUPIL.name).as_deref() == Some(GATEWAY)),
        "the exception did not lapse at its end: {}",
        lab.log("agent-again")
    );
    assert!(
        eventually(15, || lab.curl(PUPIL.name, &site) == Some(7)),
        "the firewall still lets 6B reach the video site: {}",
        lab.log("agent-again")
    );

    // Amira asks an outside resolver: the DSL sees one incident by her name, at the
    // school's time, and resolves it.
    let asked_at = jiff::Timestamp::now();
    lab.dig(PUPIL.name, RESOLVER, "www.example.org", "A", &[]);
    assert!(
        eventually(30, || !console::query(
            &lab,
            "SELECT id FROM incidents WHERE person_username = 'amira.k'"
        )
        .is_empty()),
        "no incident reached the console: {}",
        lab.log("agent-again")
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            sign_in_at(&c, CONSOLE, "dsl", "safeguarding pass phrase").await;
            c.goto(&format!("{base}/alerts")).await.unwrap();
            let rows = c
                .find_all(Locator::Css("table.alerts tbody tr"))
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{}", text_of(&c, "body").await);
            let row = rows[0].text().await.unwrap();
            assert!(row.contains("Amira K. (6B)"), "{row}");
            // The school's time: the console's zone, Europe/London, on the day of the test.
            let local = asked_at.to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap());
            let minutes = [
                local.clone(),
                local
                    .checked_add(jiff::SignedDuration::from_mins(1))
                    .unwrap(),
            ]
            .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string());
            assert!(
                minutes.iter().any(|m| row.contains(m.as_str())),
                "{row} {minutes:?}"
            );
            assert!(text_of(&c, "footer").await.contains("Europe/London"));
            screenshot(&c, "people-3-incident").await;
            click(&c, "table.alerts tbody tr a").await;
            element(&c, "form[action$='/triage'] select[name=status]")
                .await
                .select_by_value("resolved")
                .await
                .unwrap();
            element(&c, "form[action$='/triage'] select[name=outcome]")
                .await
                .select_by_value("spoken to the pupil")
                .await
                .unwrap();
            click(&c, "form[action$='/triage'] button").await;
            let said = text_of(&c, "p.done").await;
            assert_eq!(said, "Triage recorded.");
            assert_eq!(text_of(&c, "h1 .status").await, "resolved");
            screenshot(&c, "people-4-resolved").await;
        });
    }));
    let _ = runtime.block_on(c.close());
    if let Err(panic) = outcome {
        eprintln!("console log:\n{}", lab.log("console-again"));
        std::panic::resume_unwind(panic);
    }
    lab.stop_cleanly("agent-again");
}

//! `schoolgate-agent check` and `explain`, run as a user would.

use std::process::{Command, Output};

use super::repo;

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_schoolgate-agent"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `explain --json` with `args` and parses what it prints.
fn explain_json(args: &[&str]) -> serde_json::Value {
    let out = agent(&[&["explain", "--json"], args].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes `yaml` as a policy in a fresh directory and runs `check` on it. The directory lives
/// as long as the returned guard.
fn check_text(yaml: &str) -> (Output, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = agent(&["check", "--policy", path.to_str().unwrap()]);
    (out, path, dir)
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn check_accepts_the_shipped_policy_with_a_summary() {
    let policy = repo().join("policy.yaml");
    let out = agent(&["check", "--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("valid: Example Primary School (Europe/London), 6 groups"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_error_and_exits_2() {
    let (out, path, _dir) = check_text(
        "version: 1\nschool: { name: S, timezone: Mars/Olympus }\nschedules:\n  s: { days: [funday], times: [\"9-5\"] }\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let p = path.display();
    for want in [
        format!("error: {p}:2:30: unknown time zone `Mars/Olympus`"),
        format!("error: {p}:4:15: `funday` is not a day"),
        format!("error: {p}:4:32: `9-5` is not a time range"),
        format!("{p}: 3 errors; policy not loaded"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn check_of_a_missing_file_exits_2() {
    let out = agent(&["check", "--policy", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read policy `/nonexistent/policy.yaml`"));
}

#[test]
fn explain_says_it_in_a_sentence_and_in_json() {
    let policy = repo().join("policy.yaml");
    let p = policy.to_str().unwrap();
    let out = agent(&[
        "explain",
        "--policy",
        p,
        "--client",
        "10.10.3.7",
        "--domain",
        "www.facebook.com",
        "--at",
        "2026-11-24T10:00",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "Blocked: pupils may not use social networking in the school day (rule “Pupils keep off social networking in the school day”, matched facebook.com), until 15:30 today."
    );

    let v = explain_json(&[
        "--policy",
        p,
        "--client",
        "10.10.3.7",
        "--domain",
        "www.facebook.com",
        "--at",
        "2026-11-24T10:00:00+00:00",
    ]);
    assert_eq!(v["action"], "block");
    assert_eq!(v["group"], "pupils");
    assert_eq!(
        v["rule"],
        "Pupils keep off social networking in the school day"
    );
    assert_eq!(v["exception"], serde_json::Value::Null);
    assert_eq!(v["category"], "social_networking");
    assert_eq!(v["matched"], "facebook.com");
    assert_eq!(v["until"], "2026-11-24T15:30:00+00:00");

    // A school computer recognised by MAC, a quarantined pupil, an exception.
    let v = explain_json(&[
        "--policy",
        p,
        "--client",
        "10.99.0.1",
        "--mac",
        "52:54:00:12:34:56",
        "--domain",
        "tiktok.com",
        "--at",
        "2026-11-28T20:00",
    ]);
    assert_eq!(v["action"], "block");
    assert_eq!(v["group"], "school_computers");
    assert!(v["until"].is_null());
    assert_eq!(v["device"]["name"], "ICT-Suite-01");

    let v = explain_json(&[
        "--policy",
        p,
        "--client",
        "10.10.3.7",
        "--domain",
        "www.bbc.co.uk",
        "--quarantined",
    ]);
    assert_eq!(v["action"], "block");
    assert_eq!(v["quarantined"], true);

    let v = explain_json(&[
        "--policy",
        p,
        "--client",
        "10.10.3.7",
        "--domain",
        "youtube.com",
        "--at",
        "2026-11-24T13:15",
    ]);
    assert_eq!(v["exception"], "Year 6 media lesson");
    assert_eq!(v["until"], "2026-11-24T14:00:00+00:00");
}

#[test]
fn explain_without_at_uses_now() {
    let policy = repo().join("policy.yaml");
    let v = explain_json(&[
        "--policy",
        policy.to_str().unwrap(),
        "--client",
        "10.30.0.5",
        "--domain",
        "facebook.com",
    ]);
    assert_eq!(
        v["action"], "block",
        "school computers are blocked at any time"
    );
}

#[test]
fn explain_refuses_bad_input_with_exit_2() {
    let policy = repo().join("policy.yaml");
    let p = policy.to_str().unwrap();
    for args in [
        vec![
            "explain",
            "--policy",
            p,
            "--client",
            "10.10.3.700",
            "--domain",
            "x.com",
        ],
        vec![
            "explain",
            "--policy",
            p,
            "--client",
            "10.10.3.7",
            "--mac",
            "zz:zz",
            "--domain",
            "x.com",
        ],
        vec![
            "explain",
            "--policy",
            p,
            "--client",
            "10.10.3.7",
            "--domain",
            "x.com",
            "--at",
            "half past nine",
        ],
        vec![
            "explain",
            "--policy",
            "/nonexistent.yaml",
            "--client",
            "10.10.3.7",
            "--domain",
            "x.com",
        ],
        vec!["explain", "--policy", p, "--domain", "x.com"],
    ] {
        let out = agent(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn check_warns_when_the_calendar_has_ended() {
    let (out, _path, _dir) = check_text(
        "version: 1\nschool: { name: S, timezone: Europe/London }\ncalendar:\n  terms:\n    - { name: Old, from: 2020-01-06, to: 2020-03-27 }\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "a finished calendar is valid, only stale"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: the last term ended on 2020-03-27"),
        "{stderr}"
    );
}

#[test]
fn print_ruleset_shows_the_table_with_listed_addresses_at_a_time() {
    let policy = repo().join("policy.yaml");
    let out = agent(&[
        "print-ruleset",
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        "2026-11-24T10:00",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("table inet schoolgate {}\ndelete table inet schoolgate\n"));
    let set = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("set {name} ")))
            .unwrap_or_else(|| panic!("no set {name}:\n{table}"))
            .to_owned()
    };
    // The shipped lists' resolver addresses are refused to pupils at any time, not to staff.
    // Neighbouring addresses are joined into ranges.
    assert!(set("listed_group_pupils_v4").contains("1.1.1.1-1.1.1.3,"));
    assert!(set("listed_group_pupils_v4").contains(" 8.8.8.8,"));
    assert!(set("listed_group_pupils_v6").contains("2606:4700:4700::1111"));
    assert!(set("listed_group_pupils_v4").contains("162.159.192.0/23"));
    assert!(!set("listed_group_staff_v4").contains("1.1.1.1"));
    let bad = agent(&[
        "print-ruleset",
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        "tea time",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("--at `tea time`"));
}

#[test]
fn explain_as_a_person_from_the_roster() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"version: 1
school: { name: S, timezone: Europe/London }
calendar: { terms: [{ name: T, from: 2026-09-03, to: 2026-12-18 }] }
schedules:
  lunch: { days: [mon, tue, wed, thu, fri], times: ["12:00-13:00"], term_time: true }
categories:
  social: { domains: [facebook.com] }
groups:
  school_computers: { networks: [10.10.4.0/24] }
  staff: { directory: [Staff] }
rules:
  - { name: School computers never, groups: [school_computers], block: [social] }
  - { name: Staff at lunch, groups: [staff], allow: [social], when: lunch }
  - { name: Nobody else, groups: [all], block: [social] }
"#,
    )
    .unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "Username,Role,Forename,Surname\ngrace.o,Teacher,Grace,Okafor\namira.k,Pupil,Amira,Khan\n",
    )
    .unwrap();
    let (p, r) = (policy.to_str().unwrap(), roster.to_str().unwrap());
    let base = [
        "--policy",
        p,
        "--domain",
        "facebook.com",
        "--at",
        "2026-11-24T12:30",
    ];
    let ask = |client: &str, user: &str| {
        explain_json(
            &[
                &base[..],
                &["--client", client, "--roster", r, "--user", user],
            ]
            .concat(),
        )
    };
    let on_laptop = ask("192.168.1.5", "SCHOOL\\Grace.O");
    assert_eq!(on_laptop["action"], "allow", "{on_laptop}");
    assert_eq!(on_laptop["person"]["group"], "staff");
    assert!(
        on_laptop["reason"]
            .as_str()
            .unwrap()
            .contains("it names grace.o's group, staff"),
        "{on_laptop}"
    );
    assert_eq!(ask("10.10.4.9", "grace.o")["action"], "block");
    assert_eq!(ask("192.168.1.5", "amira.k")["action"], "block");
    // Unknown people, a broken roster, and --user without --roster are refused.
    let out = agent(
        &[
            &["explain"],
            &base[..],
            &["--client", "10.0.0.1", "--roster", r, "--user", "nobody"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`nobody` is not in the roster (2 people)"));
    std::fs::write(&roster, "Username,Role\ngrace.o,governor\n").unwrap();
    let out = agent(
        &[
            &["explain"],
            &base[..],
            &["--client", "10.0.0.1", "--roster", r, "--user", "grace.o"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "{r}:2:2: the role \"governor\" is neither pupil nor staff"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = agent(
        &[
            &["explain"],
            &base[..],
            &["--client", "10.0.0.1", "--user", "grace.o"],
        ]
        .concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses --user without --roster"
    );
}

#[test]
fn device_profile_prints_what_each_platform_takes() {
    let (out, path, _dir) = check_text(
        r#"version: 1
school: { name: "St Mary's & St John's", timezone: Europe/London }
groups:
  school_computers:
    devices:
      - { mac: "52:54:00:12:34:56", name: ICT-Suite-01, off_site_id: ict-suite-01-k7q2 }
      - { mac: "52:54:00:12:34:57", name: ICT-Suite-02 }
gateway:
  dns: { block_response: nxdomain }
  off_site:
    server_name: dns.school.example
    doh: ["0.0.0.0:443"]
    dot: ["0.0.0.0:853"]
    cert_file: dns.crt
    key_file: dns.key
"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let policy = path.to_str().unwrap();
    let profile = |device: &str, format: &str, extra: &[&str]| {
        agent(
            &[
                &[
                    "device-profile",
                    device,
                    "--format",
                    format,
                    "--policy",
                    policy,
                ],
                extra,
            ]
            .concat(),
        )
    };
    // Apple's profile is a property list (checked by Python's reader) with the template.
    let apple = profile("ict-suite-01", "apple", &[]);
    assert_eq!(apple.status.code(), Some(0), "{}", text(&apple.stderr));
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys; p=plistlib.loads(sys.stdin.buffer.read()); \
             c=p['PayloadContent'][0]; print(c['PayloadType'], c['DNSSettings']['ServerURL'], p['PayloadOrganization'])",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(&apple.stdout)
        .unwrap();
    let read = python.wait_with_output().unwrap();
    assert_eq!(
        text(&read.stdout).trim(),
        "com.apple.dnsSettings.managed https://dns.school.example/dns-query/ict-suite-01-k7q2 St Mary's & St John's"
    );
    let android = profile("ICT-Suite-01", "android", &[]);
    assert_eq!(
        text(&android.stdout),
        "ict-suite-01-k7q2.dns.school.example\n"
    );
    let chrome = profile("ICT-Suite-01", "chromeos", &[]);
    let v: serde_json::Value = serde_json::from_slice(&chrome.stdout).unwrap();
    assert_eq!(
        v["DnsOverHttpsTemplates"],
        "https://dns.school.example/dns-query/ict-suite-01-k7q2"
    );
    // Windows registers the template by address: 0.0.0.0 does not say it.
    let windows = profile("ICT-Suite-01", "windows", &[]);
    assert_eq!(windows.status.code(), Some(2));
    assert!(text(&windows.stderr).contains("--address"));
    let windows = profile("ICT-Suite-01", "windows", &["--address", "203.0.113.2"]);
    assert!(text(&windows.stdout).contains("Add-DnsClientDohServerAddress -ServerAddress '203.0.113.2' -DohTemplate 'https://dns.school.example/dns-query/ict-suite-01-k7q2'"));
    // A device without an id gets a suggestion; an unknown device is refused.
    let none = profile("ICT-Suite-02", "apple", &[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains("off_site_id: ict-suite-02-"),
        "{}",
        text(&none.stderr)
    );
    assert_eq!(profile("ICT-Suite-09", "apple", &[]).status.code(), Some(2));
}

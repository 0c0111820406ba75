//! Loading refuses bad policies with every error, each at its file, line and column.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

mod common;

use common::lists;
use schoolgate_engine::Policy;

fn errors(yaml: &str, files: &[(&str, &str)]) -> Vec<String> {
    match Policy::from_yaml(yaml, Path::new("/school/policy.yaml"), &lists(files)) {
        Ok(_) => panic!("policy was accepted"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

const GOOD: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
calendar:
  terms:
    - { name: Autumn, from: 2026-09-03, to: 2026-12-18 }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
categories:
  social: { lists: [lists/social.txt], domains: [threads.net] }
groups:
  pupils: { networks: [10.10.0.0/16] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social], when: school_day }
"#;

#[test]
fn a_good_policy_loads() {
    let p = Policy::from_yaml(
        GOOD,
        Path::new("/school/policy.yaml"),
        &lists(&[(
            "lists/social.txt",
            "facebook.com\n# comment\n\n  Instagram.COM  # trailing\n",
        )]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.n_domains(), 3);
    assert_eq!(p.school_name(), "Test School");
}

#[test]
fn every_semantic_error_is_reported_with_its_location() {
    let yaml = r#"version: 1
school: { name: Test School, timezone: Europe/Londn }
calendar:
  terms:
    - { name: Autumn, from: 2026-09-03, to: 2026-13-18 }
    - { name: Spring, from: 2027-03-01, to: 2027-01-05 }
  closures:
    - { name: Odd, from: 2026-10-26 }
schedules:
  school_day: { days: [mon, tues], times: ["08:30-25:30", "09:00-09:00"] }
  always: { days: [mon] }
categories:
  social: { lists: [lists/social.txt, lists/missing.txt], domains: ["*.threads.net"] }
  all: { domains: [x.com] }
groups:
  pupils: { networks: [10.10.0.0/16, 10.10.0.1/16, "fd00::zz/64"] }
  staff:
    networks: [10.10.0.0/16]
    devices:
      - { mac: "52:54:00:12:34:5", name: Laptop }
      - { mac: "52:54:00:12:34:56", name: A }
      - { mac: "52-54-00-12-34-56", name: B }
      - { name: Nothing }
rules:
  - { name: R1, groups: [pupil], block: [socail], when: school_days }
  - { name: R2, groups: [pupils], allow: [social], block: [social] }
  - { name: R3, groups: [pupils], block: [bad_domain.c*m] }
exceptions:
  - { name: E1, groups: [pupils], allow: [social], from: 2026-11-24T14:00, to: 2026-11-24T13:00, approved_by: Head }
  - { name: E2, groups: [pupils], allow: [social], from: 2026-11-24, to: tomorrow, approved_by: "" }
bypass:
  response: { pupils: expel, teachers: alert }
"#;
    let list = "facebook.com\nhttps://www.instagram.com/\nok.example\nbad..name\n";
    let got = errors(yaml, &[("lists/social.txt", list)]);
    let want: &[(&str, &str)] = &[
        (
            "/school/policy.yaml:2:40",
            "unknown time zone `Europe/Londn`",
        ),
        ("/school/policy.yaml:5:45", "`2026-13-18` is not a date"),
        ("/school/policy.yaml:6:29", "`Spring` starts after it ends"),
        (
            "/school/policy.yaml:8:7",
            "a closure needs either `on: DATE`",
        ),
        ("/school/policy.yaml:10:29", "`tues` is not a day"),
        (
            "/school/policy.yaml:10:44",
            "`08:30-25:30` is not a time range",
        ),
        (
            "/school/policy.yaml:10:59",
            "time range `09:00-09:00` is empty",
        ),
        ("/school/policy.yaml:11:3", "`always` is reserved"),
        (
            "/school/lists/social.txt:2:1",
            "`https://www.instagram.com/` is a wildcard or URL; write the bare domain (`www.instagram.com`)",
        ),
        (
            "/school/lists/social.txt:4:1",
            "`bad..name` has an empty label",
        ),
        (
            "/school/policy.yaml:13:39",
            "cannot read list `/school/lists/missing.txt`",
        ),
        (
            "/school/policy.yaml:13:69",
            "`*.threads.net` is a wildcard or URL; write the bare domain (`threads.net`)",
        ),
        ("/school/policy.yaml:14:3", "`all` is reserved"),
        (
            "/school/policy.yaml:16:38",
            "network `10.10.0.1/16` has host bits set (did you mean 10.10.0.0/16?)",
        ),
        (
            "/school/policy.yaml:16:52",
            "`fd00::zz/64` is not a network",
        ),
        (
            "/school/policy.yaml:18:16",
            "network 10.10.0.0/16 is in both group `staff` and group `pupils`",
        ),
        (
            "/school/policy.yaml:20:16",
            "`52:54:00:12:34:5` is not a MAC address",
        ),
        (
            "/school/policy.yaml:22:16",
            "device MAC 52:54:00:12:34:56 is listed twice (as `B` in group `staff` and `A` in group `staff`)",
        ),
        (
            "/school/policy.yaml:23:9",
            "device entry `Nothing` has neither `mac`, `ip` nor `off_site_id`",
        ),
        (
            "/school/policy.yaml:25:26",
            "unknown group `pupil` (expected one of all, pupils, staff)",
        ),
        (
            "/school/policy.yaml:25:42",
            "unknown category `socail` (expected one of social, or a domain such as youtube.com)",
        ),
        (
            "/school/policy.yaml:25:57",
            "unknown schedule `school_days` (expected one of always)",
        ),
        (
            "/school/policy.yaml:26:5",
            "rule `R2` needs exactly one of `allow` or `block`",
        ),
        (
            "/school/policy.yaml:27:43",
            "`bad_domain.c*m` is neither a category (expected one of social) nor a domain",
        ),
        ("/school/policy.yaml:29:58", "`E1` starts after it ends"),
        (
            "/school/policy.yaml:30:58",
            "`2026-11-24` is not a local date and time",
        ),
        (
            "/school/policy.yaml:30:74",
            "`tomorrow` is not a local date and time",
        ),
        (
            "/school/policy.yaml:30:97",
            "exception `E2` names no approver in `approved_by`",
        ),
        (
            "/school/policy.yaml:32:23",
            "bypass response `expel` is not known",
        ),
        (
            "/school/policy.yaml:32:30",
            "unknown group `teachers` (expected one of pupils, staff)",
        ),
    ];
    let mut missing = Vec::new();
    for (at, text) in want {
        let prefix = format!("{at}: {text}");
        if !got.iter().any(|g| g.starts_with(&prefix)) {
            missing.push(prefix);
        }
    }
    assert!(
        missing.is_empty(),
        "missing:\n  {}\n\ngot:\n  {}",
        missing.join("\n  "),
        got.join("\n  ")
    );
    assert_eq!(got.len(), want.len(), "got:\n  {}", got.join("\n  "));
}

#[test]
fn shape_errors_stop_at_the_first_with_its_location() {
    let cases: &[(&str, &str)] = &[
        (
            "version: 1\nschool: { name: S, timezone: Europe/London }\nrulez: []\n",
            "/school/policy.yaml:3:1: unknown field `rulez`",
        ),
        (
            "version: 1\nschool: { name: S, timezone: Europe/London }\nrules:\n  - { name: R, groups: [all], block: [x.com], wehn: always }\n",
            "/school/policy.yaml:4:47: unknown field `wehn`",
        ),
        (
            "version: 1\nschool: { name: S, timezone: Europe/London }\nschedules:\n  s: { days: mon }\n",
            "/school/policy.yaml:4:14:",
        ),
        (
            "version: 1\nschool: { name: S, timezone: Europe/London\n",
            "/school/policy.yaml:",
        ),
        (
            "version: 2\nschool: { name: S, timezone: Europe/London }\n",
            "/school/policy.yaml:1:10: unsupported policy version 2",
        ),
        (
            "version: 1\nversion: 1\nschool: { name: S, timezone: Europe/London }\n",
            "/school/policy.yaml:2:1: key written twice: version",
        ),
        ("", "/school/policy.yaml:1:1:"),
        (
            "school: { name: S, timezone: Europe/London }\n",
            "/school/policy.yaml:1:1: missing field `version`",
        ),
    ];
    for (yaml, want) in cases {
        let got = errors(yaml, &[]);
        assert_eq!(got.len(), 1, "{yaml:?} gave {got:?}");
        assert!(
            got[0].starts_with(want),
            "{yaml:?}:\n   got {}\n  want {want}…",
            got[0]
        );
        assert!(
            !got[0].contains(" at line "),
            "location printed twice: {}",
            got[0]
        );
    }
}

#[test]
fn list_errors_are_bounded() {
    let list: String = (0..100).map(|i| format!("bad name {i}\n")).collect();
    let got = errors(GOOD, &[("lists/social.txt", &list)]);
    assert_eq!(got.len(), 21, "{got:?}");
    assert!(
        got[20].contains("80 more errors in `/school/lists/social.txt` not shown"),
        "{}",
        got[20]
    );
}

#[test]
fn the_shipped_policy_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = Policy::from_yaml(&text, &path, &|p: &Path| std::fs::read_to_string(p))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.school_name(), "Example Primary School");
    assert!(p.n_domains() > 150);
}

#[test]
fn a_mistyped_term_year_is_refused() {
    // Found by fuzzing: a term running to the year 9463 made loading compile millennia of
    // schedule windows before reporting anything.
    for (to, days) in [("9463-07-21", 2_716_265), ("2027-09-04", 367)] {
        let yaml = GOOD.replace("to: 2026-12-18", &format!("to: {to}"));
        let got = errors(&yaml, &[("lists/social.txt", "facebook.com\n")]);
        assert_eq!(got.len(), 1, "{got:?}");
        let want = format!(
            "/school/policy.yaml:5:45: term `Autumn` lasts {days} days; a term lasts at most a year"
        );
        assert!(got[0].starts_with(&want), "{}", got[0]);
    }
    // A year to the day is allowed.
    let yaml = GOOD.replace("to: 2026-12-18", "to: 2027-09-03");
    let lists = lists(&[("lists/social.txt", "facebook.com\n")]);
    Policy::from_yaml(&yaml, Path::new("/school/policy.yaml"), &lists)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The policy shape the project was specified with, verbatim: it must keep loading.
const SPECIFIED_SHAPE: &str = r#"version: 1
school: { name: Example Primary School, timezone: Europe/London }
calendar:
  terms:                                   # dates inclusive
    - { name: Autumn 2026, from: 2026-09-03, to: 2026-12-18 }
  closures:                                # half terms, INSET days, bank holidays
    - { name: Autumn half term, from: 2026-10-26, to: 2026-10-30 }
    - { name: INSET day, on: 2026-11-27 }
schedules:                                 # `always` is built in
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
  lessons:    { days: [mon, tue, wed, thu, fri], times: ["08:50-10:20", "10:40-12:00", "13:00-15:15"], term_time: true }
categories:
  social_networking: { lists: [lists/social_networking.txt], domains: [threads.net] }
  vle: { domains: [dbprimary.com] }
groups:
  school_computers: { devices: [{ mac: "52:54:00:12:34:56", name: ICT-Suite-01 }], networks: [10.30.0.0/16] }
  pupils: { networks: [10.10.0.0/16, "fd00:10::/64"] }
  staff:  { networks: [10.20.0.0/16] }
rules:                                     # first matching rule decides; no match allows
  - { name: VLE always reachable, groups: [all], allow: [vle] }
  - { name: School computers never reach social networking, groups: [school_computers], block: [social_networking], when: always }
  - { name: Pupils keep off social networking in the school day, groups: [pupils], block: [social_networking], when: school_day }
  - { name: No personal social networking in lessons, groups: [staff], block: [social_networking], when: lessons }
exceptions:                                # teacher-directed, time-boxed, checked before rules
  - { name: Year 6 media lesson, groups: [pupils], allow: [youtube.com], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head of Computing }
bypass:
  response: { pupils: quarantine, school_computers: quarantine, staff: alert }
  quarantine_allow: [vle]
"#;

#[test]
fn the_specified_shape_loads_and_decides() {
    use schoolgate_engine::instant::parse_instant;
    use schoolgate_engine::{Action, Client, decide};
    // Placed at the repository root so `lists/` resolves to the shipped lists.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml");
    let p = Policy::from_yaml(SPECIFIED_SHAPE, &path, &|p: &Path| {
        std::fs::read_to_string(p)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pupil = Client::new("10.10.3.7".parse().unwrap(), None);
    let at = |t: &str| parse_instant(t, p.timezone()).unwrap();
    let d = decide(
        &p,
        &pupil,
        None,
        "www.youtube.com",
        at("2026-11-24T13:30"),
        false,
    );
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.until, Some(at("2026-11-24T14:00")));
    let d = decide(
        &p,
        &pupil,
        None,
        "www.facebook.com",
        at("2026-11-24T10:00"),
        false,
    );
    assert_eq!(
        (d.action, d.until),
        (Action::Block, Some(at("2026-11-24T15:30")))
    );
}

#[test]
fn the_gateway_section() {
    use schoolgate_engine::policy::gateway::{BlockResponse, Defences, Firewall, OnStop};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = Policy::from_yaml(&text, &path, &|p: &Path| std::fs::read_to_string(p)).unwrap();
    let g = p
        .gateway()
        .expect("the shipped policy describes its gateway");
    assert_eq!(g.lan_interfaces, ["lan0"]);
    assert_eq!(
        g.dns.listen,
        [
            "10.0.0.1:53".parse().unwrap(),
            "[fd00::1]:53".parse().unwrap()
        ]
    );
    assert_eq!(g.dns.upstreams, ["198.51.100.53:53".parse().unwrap()]);
    assert_eq!(g.dns.block_response, BlockResponse::Sinkhole);
    assert_eq!(g.dns.rate_limit, 100);
    assert_eq!(g.dns.defences, Defences::default());
    let bp = g.block_page.as_ref().unwrap();
    assert_eq!(
        (bp.ipv4(), bp.ipv6()),
        (
            Some("10.0.0.1".parse().unwrap()),
            Some("fd00::1".parse().unwrap())
        )
    );
    assert_eq!(g.metrics, Some("127.0.0.1:9153".parse().unwrap()));
    assert_eq!(g.state_dir, Path::new("/var/lib/schoolgate"));
    assert_eq!(
        g.console.as_ref().unwrap().url,
        "https://console.example.school:8443"
    );
    // Group settings used by the resolver.
    let wifi = p
        .identify(&schoolgate_engine::Client::new(
            "10.11.2.3".parse().unwrap(),
            None,
        ))
        .group
        .unwrap();
    let wifi = p.group(wifi).unwrap();
    assert!(wifi.safe_search);
    assert_eq!(
        wifi.report_presence
            .and_then(|s| p.schedule(s))
            .map(|s| s.name.as_str()),
        Some("school_day")
    );
    let staff = p
        .identify(&schoolgate_engine::Client::new(
            "10.20.0.9".parse().unwrap(),
            None,
        ))
        .group;
    assert!(!p.group(staff.unwrap()).unwrap().safe_search);
    assert!(p.is_filtered(staff), "staff have a lesson-time block");
    assert!(
        !p.is_filtered(None),
        "no rule blocks for devices in no group"
    );

    // Minimal: defaults, and defences switched off only by `danger_` keys.
    let minimal = format!(
        "{GOOD}gateway:\n  dns: {{ listen: [\"127.0.0.1:5353\"], block_response: nxdomain, defences: {{ danger_keep_ech: true }} }}\n"
    );
    let p = Policy::from_yaml(
        &minimal,
        Path::new("/school/policy.yaml"),
        &lists(&[("lists/social.txt", "x.com\n")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = p.gateway().unwrap();
    assert_eq!(g.dns.block_response, BlockResponse::Nxdomain);
    assert_eq!(g.state_dir, Path::new("/var/lib/schoolgate"));
    assert_eq!(g.dns.rate_limit, 100);
    assert!(g.dns.defences.firefox_canary && g.dns.defences.private_relay && g.dns.defences.ddr);
    assert!(!g.dns.defences.strip_ech);
    // The firewall is on, failing closed, unless the policy says otherwise.
    assert_eq!(g.firewall, Firewall::default());
    assert!(g.firewall.enabled);
    assert_eq!(g.firewall.on_stop, OnStop::FailClosed);
}

#[test]
fn firewall_settings_and_quic_per_group() {
    use schoolgate_engine::policy::gateway::OnStop;
    let yaml = format!(
        "{GOOD}gateway:\n  lan_interfaces: [lan0]\n  dns: {{ listen: [\"127.0.0.1:5353\"], block_response: nxdomain }}\n  firewall: {{ enabled: true, on_stop: fail_open }}\n"
    )
    .replace("networks: [10.10.0.0/16]", "networks: [10.10.0.0/16], quic: allow");
    let p = Policy::from_yaml(
        &yaml,
        Path::new("/school/policy.yaml"),
        &lists(&[("lists/social.txt", "x.com\n")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway().unwrap().firewall.on_stop, OnStop::FailOpen);
    let pupils = p
        .identify(&schoolgate_engine::Client::new(
            "10.10.1.1".parse().unwrap(),
            None,
        ))
        .group
        .unwrap();
    assert!(p.is_filtered(Some(pupils)));
    assert!(!p.blocks_quic(pupils), "the group allows QUIC");

    let bad = format!(
        "{GOOD}gateway:\n  dns: {{ listen: [\"127.0.0.1:5353\"], block_response: nxdomain }}\n  firewall: {{ on_stop: fail_sideways }}\n"
    )
    .replace("networks: [10.10.0.0/16]", "networks: [10.10.0.0/16], quic: maybe");
    let got = errors(&bad, &[("lists/social.txt", "x.com\n")]);
    for w in [
        "quic `maybe` is not known (expected block or allow)",
        "firewall on_stop `fail_sideways` is not known (expected fail_closed or fail_open)",
        "the firewall needs `gateway.lan_interfaces`",
    ] {
        assert!(got.iter().any(|g| g.contains(w)), "missing {w}\n{got:#?}");
    }
}

#[test]
fn gateway_errors_are_located() {
    let yaml = format!(
        r#"{GOOD}gateway:
  lan_interfaces: [lan0, "bad/name"]
  dns:
    listen: ["10.77.0.1", "10.77.0.1:53"]
    upstreams: [dns.google, "198.51.100.53"]
    block_response: sinkhole
    rate_limit: 0
  console: {{ url: console.example.school, token_file: /etc/x }}
"#
    );
    let got = errors(&yaml, &[("lists/social.txt", "x.com\n")]);
    let want = [
        "/school/policy.yaml:15:26: `bad/name` is not an interface name",
        "/school/policy.yaml:17:14: `10.77.0.1` is not an address and port",
        "/school/policy.yaml:18:17: `dns.google` is not a resolver address",
        "/school/policy.yaml:20:17: rate limit 0 would refuse every query",
        "/school/policy.yaml:19:21: `block_response: sinkhole` needs `gateway.block_page.listen`",
        "/school/policy.yaml:21:19: `console.example.school` is not a URL",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w}\n got:\n  {}",
            got.join("\n  ")
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn listed_addresses_and_networks_decide_like_domains() {
    use schoolgate_engine::instant::parse_instant;
    use schoolgate_engine::{Action, Client, decide};
    let yaml = GOOD.replace(
        "  social: { lists: [lists/social.txt], domains: [threads.net] }",
        "  social: { lists: [lists/social.txt], domains: [threads.net, \"2001:db8:77::/48\"] }\n  \
         tor: { lists: [lists/tor.txt] }",
    ) + "  - { name: No Tor, groups: [pupils], block: [tor] }\n  \
         - { name: Inline, groups: [pupils], block: [203.0.113.9, \"2001:db8:99::1\"] }\n";
    let p = Policy::from_yaml(
        &yaml,
        Path::new("/school/policy.yaml"),
        &lists(&[
            ("lists/social.txt", "facebook.com\n192.0.2.0/24\n"),
            (
                "lists/tor.txt",
                "# relays\n198.51.100.7\n198.51.100.8 # another\n",
            ),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.n_domains(), 2, "addresses are not counted as domains");
    assert_eq!(p.listed_addresses().len(), 6);
    let pupil = Client::new("10.10.3.7".parse().unwrap(), None);
    let at = |t: &str| parse_instant(t, p.timezone()).unwrap();
    let school = at("2026-11-24T10:00");
    let evening = at("2026-11-24T19:00");
    let decided = |name: &str, now| {
        let d = decide(&p, &pupil, None, name, now, false);
        (d.action, d.matched.map(|m| m.domain.to_owned()))
    };
    assert_eq!(
        decided("192.0.2.77", school),
        (Action::Block, Some("192.0.2.0/24".into()))
    );
    assert_eq!(decided("192.0.2.77", evening).0, Action::Allow);
    assert_eq!(decided("[2001:db8:77::5]", school).0, Action::Block);
    assert_eq!(
        decided("198.51.100.8", evening),
        (Action::Block, Some("198.51.100.8".into()))
    );
    assert_eq!(decided("198.51.100.9", evening).0, Action::Allow);
    assert_eq!(decided("203.0.113.9", evening).0, Action::Block);
    assert_eq!(decided("2001:db8:99::1", evening).0, Action::Block);
    // A name that only looks numeric is still a name.
    assert_eq!(decided("198.51.100.8.example", evening).0, Action::Allow);
}

/// The console's approved requests arrive as a second document: each exception in it is
/// checked as the policy's own are, a bad one is left out with its error told against that
/// document's line, and the good ones decide as if IT had written them.
#[test]
fn added_exceptions_are_checked_one_by_one_against_their_own_file() {
    use schoolgate_engine::{Action, Client, PersonView, decide};
    let added = r#"{
  "exceptions": [
    {
      "name": "Lesson video (request 7)",
      "classes": ["6B"],
      "allow": ["social"],
      "from": "2026-11-24T13:00:00Z",
      "to": "2026-11-24T14:00:00Z",
      "approved_by": "head"
    },
    {
      "name": "Bad one (request 8)",
      "groups": ["teachers"],
      "allow": ["social"],
      "from": "2026-11-24T13:00:00Z",
      "to": "2026-11-24T14:00:00Z",
      "approved_by": "head"
    }
  ]
}"#;
    let (policy, skipped) = Policy::from_yaml_with(
        GOOD,
        Path::new("/school/policy.yaml"),
        &lists(&[("/school/lists/social.txt", "instagram.com\n")]),
        Some((
            added,
            Path::new("/var/lib/schoolgate/console-exceptions.json"),
        )),
    )
    .unwrap();
    assert_eq!(policy.exceptions().len(), 1);
    assert_eq!(policy.exceptions()[0].name, "Lesson video (request 7)");
    let skipped: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].starts_with("/var/lib/schoolgate/console-exceptions.json:13:"),
        "{skipped:?}"
    );
    assert!(skipped[0].contains("teachers"), "{skipped:?}");

    let client = Client::new("10.10.3.7".parse().unwrap(), None);
    let at = "2026-11-24T13:30:00Z".parse().unwrap();
    let in_6b = PersonView {
        username: "amira.k",
        class: Some("6B"),
        groups: &[],
    };
    let in_6a = PersonView {
        class: Some("6A"),
        ..in_6b
    };
    let open = decide(&policy, &client, Some(&in_6b), "instagram.com", at, false);
    assert_eq!(open.action, Action::Allow, "{open:?}");
    let shut = decide(&policy, &client, Some(&in_6a), "instagram.com", at, false);
    assert_eq!(shut.action, Action::Block, "{shut:?}");

    // A document that is not YAML adds nothing and says where it broke.
    let (policy, skipped) = Policy::from_yaml_with(
        GOOD,
        Path::new("/school/policy.yaml"),
        &lists(&[("/school/lists/social.txt", "instagram.com\n")]),
        Some(("{ exceptions: [", Path::new("/x.json"))),
    )
    .unwrap();
    assert!(policy.exceptions().is_empty());
    assert!(
        skipped[0].to_string().starts_with("/x.json:"),
        "{skipped:?}"
    );
}

#[test]
fn devices_away_from_school_are_found_by_their_off_site_id() {
    let yaml = r#"version: 1
school: { name: Test School, timezone: Europe/London }
groups:
  school_computers:
    devices:
      - { mac: "52:54:00:12:34:56", name: ICT-Suite-01, off_site_id: ict-01-k7q2 }
      - { name: Home-Laptop-7, off_site_id: Laptop-7 }
  pupils: { networks: [10.10.0.0/16] }
gateway:
  dns: { block_response: nxdomain }
  off_site:
    server_name: DNS.School.Example.
    doh: ["0.0.0.0:443"]
    dot: ["0.0.0.0:853", "[::]:853"]
    cert_file: tls/dns.crt
    key_file: tls/dns.key
"#;
    let policy = Policy::from_yaml(yaml, Path::new("/school/policy.yaml"), &lists(&[])).unwrap();
    let found = policy.off_site_device("ICT-01-K7Q2").unwrap();
    let device = policy.device(found.device.unwrap()).unwrap();
    assert_eq!(device.name, "ICT-Suite-01");
    assert_eq!(
        policy.group(found.group.unwrap()).unwrap().name,
        "school_computers"
    );
    // An entry with only an off-site id is a device too, and its id is kept in lower case.
    let laptop = policy.off_site_device("laptop-7").unwrap();
    assert_eq!(
        policy
            .device(laptop.device.unwrap())
            .unwrap()
            .off_site_id
            .as_deref(),
        Some("laptop-7")
    );
    assert!(policy.off_site_device("ict-02-zzzz").is_none());
    assert!(policy.off_site_device("").is_none());
    let o = policy.gateway().unwrap().off_site.as_ref().unwrap();
    assert_eq!(o.server_name, "dns.school.example");
    assert_eq!((o.doh.len(), o.dot.len()), (1, 2));
    assert_eq!(o.cert_file, Path::new("/school/tls/dns.crt"));
    assert_eq!(
        o.rate_limit,
        schoolgate_engine::policy::gateway::DEFAULT_OFF_SITE_RATE_LIMIT
    );
}

#[test]
fn off_site_mistakes_are_located() {
    let yaml = r#"version: 1
school: { name: Test School, timezone: Europe/London }
groups:
  school_computers:
    devices:
      - { mac: "52:54:00:12:34:56", name: ICT-Suite-01, off_site_id: "ict 01" }
      - { mac: "52:54:00:12:34:57", name: ICT-Suite-02, off_site_id: same }
      - { mac: "52:54:00:12:34:58", name: ICT-Suite-03, off_site_id: SAME }
      - { mac: "52:54:00:12:34:59", name: ICT-Suite-04, off_site_id: -dash }
gateway:
  dns: { block_response: nxdomain }
  off_site:
    server_name: "not a name"
    cert_file: dns.crt
    key_file: dns.key
    rate_limit: 0
"#;
    let got = errors(yaml, &[]);
    let want = [
        "/school/policy.yaml:6:70: `ict 01` cannot be an off-site id",
        "/school/policy.yaml:8:70: off-site id `same` is defined twice",
        "/school/policy.yaml:9:70: `-dash` cannot be an off-site id",
        "/school/policy.yaml:13:5: gateway.off_site `doh or dot` names no address",
        "/school/policy.yaml:13:18: `not a name` has the character ' '",
        "/school/policy.yaml:16:17: rate limit 0 would refuse every query",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w}\n got:\n  {}",
            got.join("\n  ")
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

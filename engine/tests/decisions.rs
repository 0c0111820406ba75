//! Table-driven decision tests: the shipped `policy.yaml` (every seed rule, term edges,
//! closures, weekends, exceptions, quarantine) and `fixtures/edge_cases.yaml` (networks,
//! devices, overnight and non-term schedules, both UK clock changes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use schoolgate_engine::instant::parse_instant;
use schoolgate_engine::{Action, Client, MacAddr, Policy, Reason, decide, explain};

pub fn load(path: &Path) -> Policy {
    let text = std::fs::read_to_string(path).unwrap();
    let lists = |p: &Path| std::fs::read_to_string(p);
    Policy::from_yaml(&text, path, &lists).unwrap_or_else(|e| panic!("{e}"))
}

fn repo_policy() -> Policy {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml"))
}

fn edge_policy() -> Policy {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edge_cases.yaml"))
}

/// One row: who asks for what, when; and what must come back.
struct Case {
    why: &'static str,
    ip: &'static str,
    mac: Option<&'static str>,
    name: &'static str,
    at: &'static str,
    quarantined: bool,
    action: Action,
    /// The rule or exception name, `quarantine`, or `-` when no rule decided.
    by: &'static str,
    group: Option<&'static str>,
    matched: Option<&'static str>,
    /// Local time in the school's zone, or RFC 3339; `None`: never changes.
    until: Option<&'static str>,
}

const fn case(why: &'static str, ip: &'static str, name: &'static str, at: &'static str) -> Case {
    Case {
        why,
        ip,
        mac: None,
        name,
        at,
        quarantined: false,
        action: Action::Allow,
        by: "-",
        group: None,
        matched: None,
        until: None,
    }
}

impl Case {
    const fn mac(mut self, mac: &'static str) -> Self {
        self.mac = Some(mac);
        self
    }
    const fn quarantined(mut self) -> Self {
        self.quarantined = true;
        self
    }
    const fn block(mut self, by: &'static str, matched: &'static str) -> Self {
        self.action = Action::Block;
        self.by = by;
        self.matched = Some(matched);
        self
    }
    const fn allow(mut self, by: &'static str, matched: &'static str) -> Self {
        self.action = Action::Allow;
        self.by = by;
        self.matched = Some(matched);
        self
    }
    const fn group(mut self, g: &'static str) -> Self {
        self.group = Some(g);
        self
    }
    const fn until(mut self, t: &'static str) -> Self {
        self.until = Some(t);
        self
    }
}

fn run(policy: &Policy, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let now =
            parse_instant(c.at, policy.timezone()).unwrap_or_else(|| panic!("bad time {}", c.at));
        let mac = c.mac.map(|m| m.parse::<MacAddr>().unwrap());
        let client = Client::new(c.ip.parse().unwrap(), mac);
        let d = decide(policy, &client, None, c.name, now, c.quarantined);
        let by = match d.reason {
            Reason::NoRule => "-".to_owned(),
            Reason::Quarantine => "quarantine".to_owned(),
            Reason::Rule(id) => policy.rule(id).unwrap().name.clone(),
            Reason::Exception(id) => policy.exception(id).unwrap().name.clone(),
        };
        let group = d
            .identity
            .group
            .map(|g| policy.group(g).unwrap().name.clone());
        let want_until = c
            .until
            .map(|t| parse_instant(t, policy.timezone()).unwrap());
        let got = (
            d.action,
            by.as_str(),
            group.as_deref(),
            d.matched.map(|m| m.domain),
            d.until,
        );
        let want = (c.action, c.by, c.group, c.matched, want_until);
        if got != want {
            failures.push(format!(
                "{} ({} {} at {}):\n   got {:?}\n  want {:?}\n  said {}",
                c.why,
                c.ip,
                c.name,
                c.at,
                got,
                want,
                explain::sentence(policy, &d, &client, None, c.name, now)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const PUPILS_SD: &str = "Pupils keep off social networking in the school day";
const COMPUTERS: &str = "School computers never reach social networking";
const STAFF_LESSONS: &str = "No personal social networking in lessons";
const VLE: &str = "VLE always reachable";
const BYPASS: &str = "No filter bypass tools for pupils or school computers";
const Y6_LESSON: &str = "Year 6 media lesson";
const PUPIL: &str = "10.10.3.7";
const STAFF: &str = "10.20.4.4";

#[test]
fn seed_rules_and_calendar_in_the_shipped_policy() {
    // 2026-11-24 is a Tuesday in the autumn term; 2026-11-27 is an INSET day.
    #[rustfmt::skip]
    let cases = [
        // Pupils may not use social networking in the school day.
        case("pupils, school day", PUPIL, "www.facebook.com", "2026-11-24T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-11-24T15:30"),
        case("pupils, first second of the day", PUPIL, "instagram.com", "2026-11-24T08:30").block(PUPILS_SD, "instagram.com").group("pupils").until("2026-11-24T15:30"),
        case("pupils, just before school", PUPIL, "instagram.com", "2026-11-24T08:29:59").group("pupils").until("2026-11-24T08:30"),
        case("pupils, last second of the day", PUPIL, "tiktok.com", "2026-11-24T15:29:59").block(PUPILS_SD, "tiktok.com").group("pupils").until("2026-11-24T15:30"),
        case("pupils, end of the day is open", PUPIL, "tiktok.com", "2026-11-24T15:30").group("pupils").until("2026-11-25T08:30"),
        case("pupils, evening", PUPIL, "www.snapchat.com", "2026-11-24T19:00").group("pupils").until("2026-11-25T08:30"),
        case("pupils, lunch is still the school day", PUPIL, "discord.com", "2026-11-24T12:30").block(PUPILS_SD, "discord.com").group("pupils").until("2026-11-24T15:30"),
        case("pupils, Saturday", PUPIL, "www.facebook.com", "2026-11-28T10:00").group("pupils").until("2026-11-30T08:30"),
        case("pupils, Sunday night", PUPIL, "www.facebook.com", "2026-11-29T23:59:59").group("pupils").until("2026-11-30T08:30"),
        case("pupils, INSET day", PUPIL, "www.facebook.com", "2026-11-27T10:00").group("pupils").until("2026-11-30T08:30"),
        case("pupils, day before INSET, after school", PUPIL, "www.facebook.com", "2026-11-26T16:00").group("pupils").until("2026-11-30T08:30"),
        case("pupils, half term", PUPIL, "www.facebook.com", "2026-10-28T10:00").group("pupils").until("2026-11-02T08:30"),
        case("pupils, last day before half term", PUPIL, "www.facebook.com", "2026-10-23T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-10-23T15:30"),
        case("pupils, day before the first term", PUPIL, "www.facebook.com", "2026-09-02T10:00").group("pupils").until("2026-09-03T08:30"),
        case("pupils, first day of term", PUPIL, "www.facebook.com", "2026-09-03T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-09-03T15:30"),
        case("pupils, last day of autumn term", PUPIL, "www.facebook.com", "2026-12-18T15:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-12-18T15:30"),
        case("pupils, Christmas holiday", PUPIL, "www.facebook.com", "2026-12-18T15:30").group("pupils").until("2027-01-05T08:30"),
        case("pupils, after the last term of the calendar", PUPIL, "www.facebook.com", "2027-07-21T10:00").group("pupils"),
        case("pupils, summer INSET closure on the last day", PUPIL, "www.facebook.com", "2027-07-20T16:00").group("pupils"),
        // Both UK clock changes fall in holidays: the next school day starts at 08:30 local.
        case("pupils, Easter: the next day is in summer time", PUPIL, "www.facebook.com", "2027-03-25T16:00").group("pupils").until("2027-04-12T07:30:00Z"),
        case("pupils, summer time, school day", PUPIL, "www.facebook.com", "2027-06-08T15:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2027-06-08T14:30:00Z"),
        // Names: case, trailing dot, label boundaries.
        case("upper case and trailing dot", PUPIL, "WWW.FaceBook.COM.", "2026-11-24T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-11-24T15:30"),
        case("label boundary", PUPIL, "notfacebook.com", "2026-11-24T10:00").group("pupils"),
        case("listed name as a label of another", PUPIL, "facebook.com.example.net", "2026-11-24T10:00").group("pupils"),
        case("ordinary site", PUPIL, "www.bbc.co.uk", "2026-11-24T10:00").group("pupils"),
        case("inline domain in the category", PUPIL, "www.threads.net", "2026-11-24T10:00").block(PUPILS_SD, "threads.net").group("pupils").until("2026-11-24T15:30"),
        // IPv6 and IPv4-mapped addresses.
        case("pupil over IPv6", "fd00:10::5", "www.facebook.com", "2026-11-24T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-11-24T15:30"),
        case("pupil as v4-mapped v6", "::ffff:10.10.3.7", "www.facebook.com", "2026-11-24T10:00").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-11-24T15:30"),
        // The VLE is always reachable, even where a rule would block.
        case("VLE for pupils", PUPIL, "www.dbprimary.com", "2026-11-24T10:00").allow(VLE, "dbprimary.com").group("pupils"),
        case("VLE for a school computer", "10.30.0.9", "dbprimary.com", "2026-11-28T10:00").allow(VLE, "dbprimary.com").group("school_computers"),
        // School computers never reach social networking, at any time.
        case("school computer by network, weekend", "10.30.0.9", "www.tiktok.com", "2026-11-28T22:00").block(COMPUTERS, "tiktok.com").group("school_computers"),
        case("school computer by MAC on another network", "10.10.9.9", "www.tiktok.com", "2026-12-25T10:00").mac("52:54:00:12:34:56").block(COMPUTERS, "tiktok.com").group("school_computers"),
        case("school computer by IP inside the staff network", "10.20.1.50", "x.com", "2026-11-24T12:30").block(COMPUTERS, "x.com").group("school_computers"),
        // Staff may not use social networking for personal purposes in lesson time.
        case("staff, lesson", STAFF, "instagram.com", "2026-11-24T09:00").block(STAFF_LESSONS, "instagram.com").group("staff").until("2026-11-24T10:20"),
        case("staff, morning break", STAFF, "instagram.com", "2026-11-24T10:30").group("staff").until("2026-11-24T10:40"),
        case("staff, lunch", STAFF, "instagram.com", "2026-11-24T12:30").group("staff").until("2026-11-24T13:00"),
        case("staff, afternoon lesson", STAFF, "instagram.com", "2026-11-24T13:00").block(STAFF_LESSONS, "instagram.com").group("staff").until("2026-11-24T15:15"),
        case("staff, after lessons", STAFF, "instagram.com", "2026-11-24T15:15").group("staff").until("2026-11-25T08:50"),
        case("staff, before school", STAFF, "instagram.com", "2026-11-24T08:00").group("staff").until("2026-11-24T08:50"),
        case("staff may use encrypted DNS names", STAFF, "dns.google", "2026-11-24T09:00").group("staff"),
        // A device entry by MAC wins over the network it is on.
        case("pupil iPad on the staff network", "10.20.9.9", "instagram.com", "2026-11-24T12:30").mac("52:54:00:aa:bb:cc").block(PUPILS_SD, "instagram.com").group("pupils").until("2026-11-24T15:30"),
        // Guests and unknown devices.
        case("guest Wi-Fi", "10.40.0.3", "www.facebook.com", "2026-11-24T10:00").block("Visitors keep off social networking in the school day", "facebook.com").group("guests").until("2026-11-24T15:30"),
        case("unknown device falls in default", "192.168.7.7", "www.facebook.com", "2026-11-24T10:00").block(PUPILS_SD, "facebook.com").group("default").until("2026-11-24T15:30"),
        // Bypass tools are blocked for pupils at all times.
        case("pupil, DoH resolver name", PUPIL, "cloudflare-dns.com", "2026-11-28T10:00").block(BYPASS, "cloudflare-dns.com").group("pupils"),
        case("pupil, VPN provider", PUPIL, "api.nordvpn.com", "2026-11-24T10:00").block(BYPASS, "nordvpn.com").group("pupils"),
        // Teacher-directed use: the exception opens YouTube to pupils for one hour.
        case("exception, before", PUPIL, "www.youtube.com", "2026-11-24T12:59:59").block(PUPILS_SD, "youtube.com").group("pupils").until("2026-11-24T13:00"),
        case("exception, opening", PUPIL, "www.youtube.com", "2026-11-24T13:00").allow(Y6_LESSON, "youtube.com").group("pupils").until("2026-11-24T14:00"),
        case("exception covers video streams", PUPIL, "rr3---sn-aigl6n7s.googlevideo.com", "2026-11-24T13:30").allow(Y6_LESSON, "googlevideo.com").group("pupils").until("2026-11-24T14:00"),
        case("exception does not open other social networks", PUPIL, "www.facebook.com", "2026-11-24T13:30").block(PUPILS_SD, "facebook.com").group("pupils").until("2026-11-24T15:30"),
        case("exception, closing", PUPIL, "www.youtube.com", "2026-11-24T14:00").block(PUPILS_SD, "youtube.com").group("pupils").until("2026-11-24T15:30"),
        case("exception is for pupils only", "10.30.0.9", "www.youtube.com", "2026-11-24T13:30").block(COMPUTERS, "youtube.com").group("school_computers"),
        case("exception day, after school", PUPIL, "www.youtube.com", "2026-11-24T16:00").group("pupils").until("2026-11-25T08:30"),
        // A day before the exception, `until` does not stop at it: blocked until 15:30 anyway.
        case("exception tomorrow", PUPIL, "www.youtube.com", "2026-11-23T10:00").block(PUPILS_SD, "youtube.com").group("pupils").until("2026-11-23T15:30"),
        // Quarantine: only quarantine_allow, whatever the time, exceptions included.
        case("quarantined, ordinary site", PUPIL, "www.bbc.co.uk", "2026-11-28T10:00").quarantined().block("quarantine", "").group("pupils"),
        case("quarantined, VLE", PUPIL, "www.dbprimary.com", "2026-11-28T10:00").quarantined().allow("quarantine", "dbprimary.com").group("pupils"),
        case("quarantined, during an exception", PUPIL, "www.youtube.com", "2026-11-24T13:30").quarantined().block("quarantine", "").group("pupils"),
    ];
    let cases = cases.map(|mut c| {
        if c.by == "quarantine" && c.matched == Some("") {
            c.matched = None;
        }
        c
    });
    run(&repo_policy(), &cases);
}

#[test]
fn networks_devices_schedules_and_clock_changes() {
    const Y6_GAMES: &str = "Year 6 games off in the school day";
    const ALWAYS_SOCIAL: &str = "Pupils off social always";
    const BOARDERS: &str = "Boarders off games in the evening";
    const FRIDAY: &str = "Staff off games on Friday night";
    const WEEKDAYS: &str = "Staff off social on weekdays";
    #[rustfmt::skip]
    let cases = [
        // Most specific network wins: 10.0.0.0/8 staff ⊃ 10.10.0.0/16 pupils ⊃ 10.10.6.0/24 year6.
        case("year 6 subnet", "10.10.6.5", "roblox.com", "2027-01-12T10:00").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-12T12:00"),
        case("pupil subnet", "10.10.7.5", "roblox.com", "2027-01-12T10:00").group("pupils"),
        case("staff /8", "10.20.0.1", "roblox.com", "2027-01-12T10:00").group("staff").until("2027-01-15T22:00"),
        case("year 6 over IPv6, outside the club's network", "2001:db8:10:6::5", "roblox.com", "2027-01-12T10:00").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-12T15:30"),
        case("pupils over IPv6", "2001:db8:10:7::1", "facebook.com", "2027-01-12T10:00").block(ALWAYS_SOCIAL, "facebook.com").group("pupils"),
        // Device entries win over networks: by IP, and by MAC over IP.
        case("device entry by IP", "10.0.0.99", "roblox.com", "2027-01-12T10:00").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-12T15:30"),
        case("device entry by MAC", "10.10.6.100", "roblox.com", "2027-01-12T10:00").mac("02:00:00:00:00:01").group("boarders").until("2027-01-12T18:00"),
        // An exception by network covers every device on it, whatever its group: at 12:00
        // the club's exception becomes what decides for the boarder's phone too.
        case("network exception covers other groups", "10.10.6.5", "roblox.com", "2027-01-12T10:00").mac("02:00:00:00:00:01").group("boarders").until("2027-01-12T12:00"),
        // No `default` group: an unknown device gets only the `all` rules.
        case("unknown device, no default group", "192.0.2.1", "facebook.com", "2027-01-12T10:00"),
        case("unknown device, an `all` rule", "192.0.2.1", "www.evil.example", "2027-01-12T10:00").block("Nobody reaches evil", "evil.example"),
        // An exception by network opens and closes; outside its network it does not apply.
        case("network exception opens", "10.10.6.5", "roblox.com", "2027-01-12T12:00").allow("Roblox club", "roblox.com").group("year6").until("2027-01-12T13:00"),
        case("network exception closes", "10.10.6.5", "roblox.com", "2027-01-12T13:00").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-12T15:30"),
        case("outside the exception's network", "10.10.6.100", "roblox.com", "2027-01-12T12:30").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-12T15:30"),
        // An exception by device, for one domain of a category.
        case("device exception", "10.0.0.99", "minecraft.net", "2027-01-13T09:30").allow("Sam's project", "minecraft.net").group("year6").until("2027-01-13T10:00"),
        case("device exception, other domain", "10.0.0.99", "roblox.com", "2027-01-13T09:30").block(Y6_GAMES, "roblox.com").group("year6").until("2027-01-13T15:30"),
        // A rule in force at every moment hides later rules for the same name.
        case("always rule hides a school-day rule", "10.10.7.5", "facebook.com", "2027-01-12T10:00").block(ALWAYS_SOCIAL, "facebook.com").group("pupils"),
        // A range crossing midnight belongs to the day it starts on.
        case("Friday night", "10.20.0.1", "roblox.com", "2027-01-15T23:00").block(FRIDAY, "roblox.com").group("staff").until("2027-01-16T06:00"),
        case("early Saturday is Friday's night", "10.20.0.1", "sub.example.org", "2027-01-16T05:59").block(FRIDAY, "example.org").group("staff").until("2027-01-16T06:00"),
        case("Thursday night is not selected", "10.20.0.1", "roblox.com", "2027-01-14T23:00").group("staff").until("2027-01-15T22:00"),
        case("early Friday is Thursday's night", "10.20.0.1", "roblox.com", "2027-01-15T03:00").group("staff").until("2027-01-15T22:00"),
        // A schedule that ignores terms runs through the holidays.
        case("weekdays in the summer holiday", "10.20.0.1", "facebook.com", "2027-08-02T10:00").block(WEEKDAYS, "facebook.com").group("staff").until("2027-08-06T23:00:00Z"),
        case("weekend in the summer holiday", "10.20.0.1", "facebook.com", "2027-08-07T10:00").group("staff").until("2027-08-08T23:00:00Z"),
        case("far beyond the calendar", "10.20.0.1", "facebook.com", "2031-01-11T10:00").group("staff").until("2031-01-13T00:00:00Z"),
        // Spring forward, Sunday 2027-03-28 01:00 GMT → 02:00 BST.
        case("the night before spring forward", "10.99.0.1", "x", "2027-03-27T23:00").mac("02:00:00:00:00:01").group("boarders"),
        case("evening before spring forward", "10.99.0.1", "roblox.com", "2027-03-27T23:00").mac("02:00:00:00:00:01").group("boarders").until("2027-03-28T17:00:00Z"),
        case("evening on the spring-forward day", "10.99.0.1", "roblox.com", "2027-03-28T19:00").mac("02:00:00:00:00:01").block(BOARDERS, "roblox.com").group("boarders").until("2027-03-28T21:00:00Z"),
        case("term day after Easter, summer time", "10.10.6.5", "roblox.com", "2027-03-25T16:00").group("year6").until("2027-04-12T07:30:00Z"),
        // Fall back, Sunday 2027-10-31 02:00 BST → 01:00 GMT.
        case("evening before fall back", "10.99.0.1", "roblox.com", "2027-10-30T23:00").mac("02:00:00:00:00:01").group("boarders").until("2027-10-31T18:00:00Z"),
        case("evening on the fall-back day", "10.99.0.1", "roblox.com", "2027-10-31T21:59").mac("02:00:00:00:00:01").block(BOARDERS, "roblox.com").group("boarders").until("2027-10-31T22:00:00Z"),
        case("school day after half term, winter time", "10.10.6.5", "roblox.com", "2027-10-22T16:00").group("year6").until("2027-11-01T08:30:00Z"),
        case("the repeated hour", "10.10.6.5", "roblox.com", "2027-10-31T01:30:00+00:00").group("year6").until("2027-11-01T08:30:00Z"),
        // Quarantine follows bypass.quarantine_allow.
        case("quarantined, allowed name", "10.10.7.5", "minecraft.net", "2027-01-12T10:00").quarantined().allow("quarantine", "minecraft.net").group("pupils"),
    ];
    run(&edge_policy(), &cases);
}

#[test]
fn explanations_read_as_sentences_and_json() {
    let policy = repo_policy();
    let now = parse_instant("2026-11-24T10:00", policy.timezone()).unwrap();
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let d = decide(&policy, &client, None, "www.facebook.com", now, false);
    assert_eq!(
        explain::sentence(&policy, &d, &client, None, "www.facebook.com", now),
        "Blocked: pupils may not use social networking in the school day (rule “Pupils keep off social networking in the school day”, matched facebook.com), until 15:30 today."
    );
    let json = explain::to_json(&policy, &d, &client, None, "www.facebook.com", now);
    assert_eq!(json["action"], "block");
    assert_eq!(json["group"], "pupils");
    assert_eq!(json["rule"], PUPILS_SD);
    assert_eq!(json["exception"], serde_json::Value::Null);
    assert_eq!(json["category"], "social_networking");
    assert_eq!(json["matched"], "facebook.com");
    assert_eq!(json["until"], "2026-11-24T15:30:00+00:00");
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..7],
        [
            "action",
            "group",
            "rule",
            "exception",
            "category",
            "matched",
            "until"
        ]
    );

    // Summer time shows the +01:00 offset.
    let summer = parse_instant("2027-06-08T10:00", policy.timezone()).unwrap();
    let d = decide(&policy, &client, None, "www.facebook.com", summer, false);
    assert_eq!(
        explain::to_json(&policy, &d, &client, None, "x", summer)["until"],
        "2027-06-08T15:30:00+01:00"
    );

    // Hostile names are bounded and escaped in the text.
    let nasty = format!("{}\u{1b}[31m.evil\n", "a".repeat(400));
    let d = decide(&policy, &client, None, &nasty, now, false);
    let s = explain::sentence(&policy, &d, &client, None, &nasty, now);
    assert!(!s.contains('\u{1b}') && !s.contains('\n'), "{s}");
    assert!(s.len() < 600, "{}", s.len());
}

#[test]
fn bypass_responses_per_group() {
    use schoolgate_engine::policy::Response;
    let policy = repo_policy();
    let group_of = |ip: &str| {
        policy
            .identify(&Client::new(ip.parse().unwrap(), None))
            .group
    };
    let cases = [
        (PUPIL, Response::Quarantine),
        ("10.30.0.9", Response::Quarantine),
        (STAFF, Response::Alert),
        ("10.40.0.3", Response::Alert),
        ("192.168.7.7", Response::Quarantine), // the `default` group
    ];
    for (ip, want) in cases {
        assert_eq!(policy.bypass_response(group_of(ip)), want, "{ip}");
    }
    // Groups not listed, and devices in no group, get `alert`.
    let edge = edge_policy();
    let staff = edge
        .identify(&Client::new("10.20.0.1".parse().unwrap(), None))
        .group;
    assert_eq!(edge.bypass_response(staff), Response::Alert);
    assert_eq!(edge.bypass_response(None), Response::Alert);
    let pupils = edge
        .identify(&Client::new("10.10.7.5".parse().unwrap(), None))
        .group;
    assert_eq!(edge.bypass_response(pupils), Response::Quarantine);
}

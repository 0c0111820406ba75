//! Decisions that know the person: device groups and person groups, rules that name either,
//! exceptions for classes and people, and files without people meaning what they meant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

mod common;

use common::lists;
use jiff::Timestamp;
use proptest::prelude::*;
use schoolgate_engine::instant::parse_instant;
use schoolgate_engine::policy::Response;
use schoolgate_engine::{Action, Client, PersonView, Policy, Reason, decide, explain};

/// The worked example of docs/policy.md ("People"): school computers, staff laptops, and
/// pupils and staff from the directory.
const SCHOOL: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
calendar:
  terms:
    - { name: Autumn, from: 2026-09-03, to: 2026-12-18 }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
  lunch: { days: [mon, tue, wed, thu, fri], times: ["12:00-13:00"], term_time: true }
categories:
  social: { domains: [facebook.com, instagram.com] }
  video: { domains: [youtube.com] }
groups:
  school_computers: { networks: [10.10.4.0/24] }
  staff_laptops: { networks: [10.10.8.0/24] }
  pupils: { directory: [Pupils] }
  staff: { directory: [Staff], users: [head.teacher] }
rules:
  - { name: School computers never reach social networking, groups: [school_computers], block: [social] }
  - { name: Staff may at lunch, groups: [staff], allow: [social], when: lunch }
  - { name: Staff not in lessons, groups: [staff, staff_laptops], block: [social], when: school_day }
  - { name: Pupils not in the school day, groups: [pupils], block: [social, video], when: school_day }
exceptions:
  - name: 6B's film project
    classes: [6b]
    allow: [video]
    from: 2026-11-24T09:00
    to: 2026-11-24T15:00
    approved_by: J. Director
  - name: Amira's presentation
    people: [Amira.K]
    allow: [video]
    from: 2026-11-25T09:00
    to: 2026-11-25T10:00
    approved_by: J. Director
"#;

fn policy(yaml: &str) -> Policy {
    Policy::from_yaml(yaml, Path::new("/school/policy.yaml"), &lists(&[]))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn at(p: &Policy, t: &str) -> Timestamp {
    parse_instant(t, p.timezone()).unwrap()
}

struct Someone {
    username: &'static str,
    class: Option<&'static str>,
    groups: Vec<String>,
}

impl Someone {
    fn view(&self) -> PersonView<'_> {
        PersonView {
            username: self.username,
            class: self.class,
            groups: &self.groups,
        }
    }
}

fn pupil(username: &'static str, class: &'static str) -> Someone {
    Someone {
        username,
        class: Some(class),
        groups: vec!["Pupils".into(), "Year 6".into(), class.into()],
    }
}

fn staff(username: &'static str) -> Someone {
    Someone {
        username,
        class: None,
        groups: vec!["Staff".into()],
    }
}

#[test]
fn a_rule_decides_when_it_names_the_device_group_or_the_persons() {
    let p = policy(SCHOOL);
    let ict = Client::new("10.10.4.21".parse().unwrap(), None);
    let laptop = Client::new("10.10.8.5".parse().unwrap(), None);
    let phone = Client::new("192.168.1.9".parse().unwrap(), None);
    let lunch = at(&p, "2026-11-23T12:30");
    let lesson = at(&p, "2026-11-23T10:30");
    let amira = pupil("amira.k", "6B");
    let grace = staff("grace.o");
    let name = "www.facebook.com";
    let action = |c: &Client, who: Option<&Someone>, t| {
        decide(&p, c, who.map(Someone::view).as_ref(), name, t, false).action
    };
    // The school-computer rule comes first: it holds whoever signs in, at any time.
    assert_eq!(action(&ict, Some(&amira), lunch), Action::Block);
    assert_eq!(action(&ict, Some(&grace), lunch), Action::Block);
    // Staff on their own laptop at lunch: the staff rule, by the person's group.
    assert_eq!(action(&laptop, Some(&grace), lunch), Action::Allow);
    assert_eq!(action(&laptop, Some(&grace), lesson), Action::Block);
    // The same laptop with nobody known: only the laptop's group speaks (no lunch rule).
    assert_eq!(action(&laptop, None, lunch), Action::Block);
    // A pupil on a device in no group is held by the pupils' rule.
    assert_eq!(action(&phone, Some(&amira), lesson), Action::Block);
    assert_eq!(action(&phone, None, lesson), Action::Allow);
    // Named users are in the group whatever their directory groups say.
    let head = Someone {
        username: "Head.Teacher",
        class: None,
        groups: vec![],
    };
    assert_eq!(action(&laptop, Some(&head), lunch), Action::Allow);
}

#[test]
fn exceptions_name_classes_and_people() {
    let p = policy(SCHOOL);
    let phone = Client::new("192.168.1.9".parse().unwrap(), None);
    let amira = pupil("amira.k", "6B");
    let ben = pupil("ben.t", "6A");
    let video = |who: &Someone, t: &str| {
        decide(
            &p,
            &phone,
            Some(&who.view()),
            "www.youtube.com",
            at(&p, t),
            false,
        )
    };
    let d = video(&amira, "2026-11-24T10:00");
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::Exception(exception(&p, 0)))
    );
    assert_eq!(video(&ben, "2026-11-24T10:00").action, Action::Block);
    // The exception for Amira alone, the next day; Ben's class has none then.
    assert_eq!(video(&amira, "2026-11-25T09:30").action, Action::Allow);
    assert_eq!(video(&ben, "2026-11-25T09:30").action, Action::Block);
    assert_eq!(video(&amira, "2026-11-25T10:30").action, Action::Block);
}

fn exception(p: &Policy, i: u32) -> schoolgate_engine::policy::ExceptionId {
    let id = schoolgate_engine::policy::ExceptionId(i);
    assert!(p.exception(id).is_some());
    id
}

#[test]
fn explain_says_whose_group_the_rule_named() {
    let p = policy(SCHOOL);
    let ict = Client::new("10.10.4.21".parse().unwrap(), None);
    let laptop = Client::new("10.10.8.5".parse().unwrap(), None);
    let grace = staff("grace.o");
    let now = at(&p, "2026-11-23T12:30");
    let say = |c: &Client| {
        let d = decide(&p, c, Some(&grace.view()), "facebook.com", now, false);
        explain::sentence(&p, &d, c, Some(&grace.view()), "facebook.com", now)
    };
    assert_eq!(
        say(&ict),
        "Blocked: grace.o (staff) on school computers may not use social at any time \
         (rule “School computers never reach social networking”, matched facebook.com; \
         it names the device's group, school computers)."
    );
    assert!(
        say(&laptop).contains("it names grace.o's group, staff"),
        "{}",
        say(&laptop)
    );
    let d = decide(&p, &laptop, Some(&grace.view()), "facebook.com", now, false);
    let json = explain::to_json(&p, &d, &laptop, Some(&grace.view()), "facebook.com", now);
    assert_eq!(json["person"]["username"], "grace.o");
    assert_eq!(json["person"]["group"], "staff");
    assert_eq!(json["group"], "staff_laptops");
}

#[test]
fn people_in_the_policy_are_checked_where_they_are_written() {
    let yaml = SCHOOL
        .replace("users: [head.teacher]", "users: [\"head teacher\"]")
        .replace("classes: [6b]", "classes: [\"\"]");
    let errors: Vec<String> =
        match Policy::from_yaml(&yaml, Path::new("/school/policy.yaml"), &lists(&[])) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
    assert_eq!(
        errors,
        [
            "/school/policy.yaml:16:40: `head teacher` is not a username (1 to 128 bytes, no spaces or control characters)",
            "/school/policy.yaml:24:15: `` is not a directory group or class name (1 to 128 bytes, no control characters)",
        ]
    );
}

#[test]
fn the_bypass_response_is_the_persons_groups_when_someone_is_signed_in() {
    let p = policy(
        r#"version: 1
school: { name: Test School, timezone: Europe/London }
groups:
  school_computers: { networks: [10.30.0.0/16] }
  pupils: { directory: [Pupils] }
  staff: { directory: [Staff] }
bypass:
  response: { pupils: quarantine, school_computers: alert, staff: log }
"#,
    );
    let client = Client::new("10.30.0.11".parse().unwrap(), None);
    let mut identity = p.identify(&client);
    assert_eq!(p.bypass_response_of(&identity), Response::Alert);
    let pupils = ["Pupils".to_owned()];
    identity.person = Some(p.identify_person(&PersonView {
        username: "amira.k",
        class: None,
        groups: &pupils,
    }));
    assert_eq!(p.bypass_response_of(&identity), Response::Quarantine);
    let staff = ["Staff".to_owned()];
    identity.person = Some(p.identify_person(&PersonView {
        username: "grace.o",
        class: None,
        groups: &staff,
    }));
    assert_eq!(p.bypass_response_of(&identity), Response::Log);
    // Someone in no group of the policy: the device's group answers.
    let none: [String; 0] = [];
    identity.person = Some(p.identify_person(&PersonView {
        username: "visitor",
        class: None,
        groups: &none,
    }));
    assert_eq!(p.bypass_response_of(&identity), Response::Alert);
}

const LDAP: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
gateway:
  dns: { block_response: nxdomain }
  ldap:
    url: ldaps://dc1.school.example
    bind_dn: "CN=schoolgate,OU=Service,DC=school,DC=example"
    password_file: secrets/ldap.password
    base_dn: "DC=school,DC=example"
    pupils: ["OU=Pupils,DC=school,DC=example"]
    staff: [Staff]
"#;

#[test]
fn an_ldap_section_reads_with_active_directorys_defaults() {
    let p = policy(LDAP);
    let ldap = p.gateway().unwrap().ldap.as_ref().unwrap();
    assert_eq!(ldap.url, "ldaps://dc1.school.example");
    assert!(!ldap.start_tls);
    assert_eq!(
        ldap.password_file,
        Path::new("/school/secrets/ldap.password")
    );
    assert_eq!(
        (ldap.username.as_str(), ldap.display_name.as_str()),
        ("sAMAccountName", "displayName")
    );
    assert_eq!(ldap.groups_base_dn, "DC=school,DC=example");
    assert_eq!(ldap.filter, "(objectClass=person)");
    assert_eq!(ldap.sync_minutes, 15);
    assert_eq!(ldap.pupils, ["OU=Pupils,DC=school,DC=example"]);
}

#[test]
fn an_ldap_section_that_would_leak_the_password_or_find_nobody_is_refused() {
    let yaml = LDAP
        .replace("ldaps://dc1", "ldap://dc1")
        .replace("    staff: [Staff]\n", "    sync_minutes: 0\n")
        .replace("    pupils: [\"OU=Pupils,DC=school,DC=example\"]\n", "");
    let errors: Vec<String> =
        match Policy::from_yaml(&yaml, Path::new("/school/policy.yaml"), &lists(&[])) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
    assert_eq!(
        errors,
        [
            "/school/policy.yaml:6:10: `ldap://dc1.school.example` without `start_tls: true` would send the bind password in clear (use ldaps:// or StartTLS)",
            "/school/policy.yaml:6:5: `gateway.ldap` needs `pupils` or `staff`: the groups or units whose members they are",
            "/school/policy.yaml:10:19: sync every 0 minutes is not between 1 and 1440",
        ]
    );
    let fine = LDAP.replace("ldaps://dc1", "ldap://dc1").replace(
        "    staff: [Staff]\n",
        "    staff: [Staff]\n    start_tls: true\n",
    );
    assert!(
        policy(&fine)
            .gateway()
            .unwrap()
            .ldap
            .as_ref()
            .unwrap()
            .start_tls
    );
    let not_a_url = LDAP.replace("ldaps://dc1.school.example", "https://dc1");
    let e =
        Policy::from_yaml(&not_a_url, Path::new("/school/policy.yaml"), &lists(&[])).unwrap_err();
    assert!(
        e.to_string()
            .contains("`https://dc1` is not a directory server URL"),
        "{e}"
    );
}

/// A policy without people: any person, or none, is decided the same as before.
const NO_PEOPLE: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
calendar:
  terms:
    - { name: Autumn, from: 2026-09-03, to: 2026-12-18 }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
categories:
  social: { domains: [facebook.com] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  staff: { networks: [10.20.0.0/16] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social], when: school_day }
exceptions:
  - { name: Club, groups: [staff], allow: [social], from: 2026-11-24T09:00, to: 2026-11-24T10:00, approved_by: D }
"#;

proptest! {
    #[test]
    fn without_people_in_the_policy_a_person_changes_nothing(
        host in 0u8..3,
        minutes in 0i64..(7 * 24 * 60),
        username in "[a-z]{1,8}",
        class in proptest::option::of("[0-9][A-C]"),
        groups in proptest::collection::vec("[A-Za-z ]{1,10}", 0..4),
        name in prop_oneof![Just("facebook.com"), Just("example.org")],
    ) {
        let p = policy(NO_PEOPLE);
        let ip = ["10.10.1.1", "10.20.1.1", "192.0.2.1"][usize::from(host)];
        let client = Client::new(ip.parse().unwrap(), None);
        let now = at(&p, "2026-11-23T00:00") + jiff::SignedDuration::from_mins(minutes);
        let person = PersonView { username: &username, class: class.as_deref(), groups: &groups };
        let without = decide(&p, &client, None, name, now, false);
        let with = decide(&p, &client, Some(&person), name, now, false);
        prop_assert_eq!(
            (with.action, with.reason, with.until, with.identity.group),
            (without.action, without.reason, without.until, without.identity.group)
        );
    }
}

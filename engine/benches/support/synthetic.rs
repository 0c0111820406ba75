//! A synthetic school policy whose social networking category lists a million generated
//! domains, for the decision benchmark and the footprint measurement. Deterministic: the
//! same domains every run.

#![allow(dead_code, clippy::indexing_slicing, clippy::expect_used)]

use std::io;
use std::path::Path;

use schoolgate_engine::Policy;

const TLDS: [&str; 8] = ["com", "net", "org", "co.uk", "io", "app", "tv", "social"];
const WORDS: [&str; 16] = [
    "chat", "snap", "gram", "tube", "live", "feed", "friend", "story", "clip", "meet", "post",
    "share", "talk", "vid", "pic", "wave",
];

/// `n` distinct domains, one per line, shaped like real block lists: one to three labels
/// under a public suffix, 8 to 40 characters.
pub(crate) fn domains(n: usize) -> String {
    let mut out = String::with_capacity(n * 24);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w1 = WORDS[(x % 16) as usize];
        let w2 = WORDS[((x >> 8) % 16) as usize];
        let tld = TLDS[((x >> 16) % 8) as usize];
        match (x >> 24) % 4 {
            0 => out.push_str(&format!("{w1}{i}.{tld}\n")),
            1 => out.push_str(&format!("{w1}-{w2}{i}.{tld}\n")),
            2 => out.push_str(&format!("cdn{}.{w1}{i}.{tld}\n", (x >> 32) % 10)),
            _ => out.push_str(&format!("api.{w2}.{w1}{i}.{tld}\n")),
        }
    }
    out
}

/// The shipped policy's shape with the big list as its social networking category.
pub(crate) const POLICY: &str = r#"version: 1
school: { name: Benchmark Primary, timezone: Europe/London }
calendar:
  terms:
    - { name: Autumn 2026, from: 2026-09-03, to: 2026-12-18 }
    - { name: Spring 2027, from: 2027-01-05, to: 2027-03-25 }
    - { name: Summer 2027, from: 2027-04-12, to: 2027-07-21 }
  closures:
    - { name: Autumn half term, from: 2026-10-26, to: 2026-10-30 }
    - { name: INSET day, on: 2026-11-27 }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true }
  lessons:    { days: [mon, tue, wed, thu, fri], times: ["08:50-10:20", "10:40-12:00", "13:00-15:15"], term_time: true }
categories:
  social_networking: { lists: [lists/big.txt], domains: [threads.net] }
  vle: { domains: [dbprimary.com] }
groups:
  school_computers: { devices: [{ mac: "52:54:00:12:34:56", name: ICT-Suite-01 }], networks: [10.30.0.0/16] }
  pupils: { networks: [10.10.0.0/16, "fd00:10::/64"] }
  staff:  { networks: [10.20.0.0/16] }
  year_6: { directory: ["Year 6"] }
  staff_people: { directory: [Staff], users: [head.teacher] }
rules:
  - { name: VLE always reachable, groups: [all], allow: [vle] }
  - { name: School computers never reach social networking, groups: [school_computers], block: [social_networking], when: always }
  - { name: Pupils keep off social networking in the school day, groups: [pupils], block: [social_networking], when: school_day }
  - { name: No personal social networking in lessons, groups: [staff, staff_people], block: [social_networking], when: lessons }
  - { name: Year 6 keep off video in the school day, groups: [year_6], block: [youtube.com], when: school_day }
exceptions:
  - { name: Year 6 media lesson, groups: [pupils], allow: [youtube.com], from: 2026-11-24T13:00, to: 2026-11-24T14:00, approved_by: Head of Computing }
bypass:
  response: { pupils: quarantine, school_computers: quarantine, staff: alert }
  quarantine_allow: [vle]
"#;

/// Builds the policy from `list` (the text of lists/big.txt).
pub(crate) fn build(list: &str) -> Policy {
    let reader = |_: &Path| -> io::Result<String> { Ok(list.to_owned()) };
    Policy::from_yaml(POLICY, Path::new("bench/policy.yaml"), &reader)
        .expect("synthetic policy is valid")
}

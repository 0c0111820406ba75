//! The lookup every DNS request makes for the person signed in at its address allocates
//! nothing: counted by dhat's heap profiler, which this test binary uses as its allocator.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use schoolgate_agent::people::LivePeople;
use schoolgate_agent::people::sessions::LiveSessions;
use schoolgate_agent::reload::LivePolicy;
use schoolgate_engine::{Client, decide_as};
use schoolgate_people::Username;
use schoolgate_people::sessions::SignIn;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[test]
fn the_person_at_an_address_is_found_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("roster.csv"),
        "username,role,class\namira.k,pupil,6B\ngrace.o,staff,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: 1
school: { name: Test School, timezone: Europe/London }
categories:
  social: { domains: [facebook.com] }
groups:
  school_computers: { networks: [10.0.0.0/8] }
  pupils: { directory: [Pupils] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social] }
exceptions:
  - { name: 6B, classes: [6B], allow: [social], from: 2026-11-24T12:00, to: 2026-11-24T13:00, approved_by: Head }
",
    )
    .unwrap();
    let live = LivePolicy::load(&dir.path().join("policy.yaml")).unwrap();
    let policy = live.current();
    let people = LivePeople::new(Some(dir.path().join("roster.csv")));
    people.reload();
    let sessions = LiveSessions::new(None, Arc::clone(&people));
    let now = "2026-11-24T10:00:00Z".parse().unwrap();
    let at = |i: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
    for (i, user) in [(1, "amira.k"), (2, "grace.o"), (3, "stranger")] {
        sessions.sign_in(
            &policy,
            SignIn {
                username: Username::new(user).unwrap(),
                addresses: vec![at(i)],
                device: None,
                mac: None,
                source: "radius wlc1".into(),
                id: None,
            },
            now,
        );
    }

    // The first look at the index from this thread registers the thread with arc-swap (once
    // per thread, not per request): done before counting.
    for i in 1..=4 {
        let _ = sessions.person_at(&policy, at(i));
    }

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let mut blocked = 0;
    for round in 0..1000u32 {
        let ip = at((round % 4) as u8 + 1);
        let client = Client::new(ip, None);
        let mut identity = policy.identify(&client);
        identity.person = sessions.person_at(&policy, ip);
        let d = decide_as(&policy, &client, identity, "www.facebook.com", now, false);
        blocked += usize::from(d.action == schoolgate_engine::Action::Block);
    }
    let after = dhat::HeapStats::get();
    // Amira's requests were blocked by the pupils' rule: the person was found.
    assert_eq!(blocked, 250);
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}

//! People on the hot path: a decision for a signed-in address with 10,000 people in the
//! directory and 2,000 signed in, the firewall's profiles worked out for those 2,000 (what
//! the follower does after each sign-in), and RADIUS accounting taken as the listener
//! takes it.
//!
//! `cargo bench -p schoolgate-agent --bench people`. Targets (docs/PERFORMANCE.md): the
//! decision with the person looked up at or under 300 ns median, the lookup allocating
//! nothing; RADIUS ingest at least 5,000 packets a second.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use schoolgate_agent::people::LivePeople;
use schoolgate_agent::people::radius::Listener;
use schoolgate_agent::people::sessions::LiveSessions;
use schoolgate_agent::reload::LivePolicy;
use schoolgate_agent::report::metrics::Metrics;
use schoolgate_engine::policy::gateway::{Radius, RadiusClient};
use schoolgate_engine::{Client, decide_as};
use schoolgate_gateway::firewall::placed::Placed;
use schoolgate_people::Username;
use schoolgate_people::sessions::SignIn;

const PEOPLE: usize = 10_000;
const SIGNED_IN: usize = 2_000;
const DOMAINS: usize = 100_000;
const SECRET: &str = "bench-secret";

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 50, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut domains = String::new();
    for i in 0..DOMAINS {
        writeln!(domains, "social{i}.example").unwrap();
    }
    std::fs::write(dir.path().join("social.txt"), domains).unwrap();
    let mut roster = String::from("username,role,year,class\n");
    for i in 0..PEOPLE {
        let (role, class) = if i % 10 == 0 {
            ("staff", String::new())
        } else {
            ("pupil", format!("{}{}", i % 7 + 1, ["A", "B", "C"][i % 3]))
        };
        writeln!(roster, "user{i},{role},{},{class}", i % 7 + 1).unwrap();
    }
    std::fs::write(dir.path().join("roster.csv"), roster).unwrap();
    std::fs::write(dir.path().join("radius.secret"), SECRET).unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: 1
school: { name: Bench School, timezone: Europe/London }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: [\"08:30-15:30\"] }
categories:
  social: { lists: [social.txt] }
groups:
  school_computers: { networks: [10.50.0.0/16] }
  year6: { directory: [Year 6] }
  pupils: { directory: [Pupils] }
  staff: { directory: [Staff] }
rules:
  - { name: School computers never social, groups: [school_computers], block: [social] }
  - { name: Pupils in the day, groups: [pupils], block: [social], when: school_day }
exceptions:
  - { name: 6B club, classes: [6B], allow: [social], from: 2026-11-24T12:00, to: 2026-11-24T13:00, approved_by: Head }
",
    )
    .unwrap();
    let live = LivePolicy::load(&dir.path().join("policy.yaml")).unwrap();
    let policy = live.current();
    let people = LivePeople::new(Some(dir.path().join("roster.csv")));
    people.reload();
    assert_eq!(people.current().len(), PEOPLE);
    let sessions = LiveSessions::new(None, Arc::clone(&people));
    let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    for i in 0..SIGNED_IN {
        sessions.sign_in(
            &policy,
            SignIn {
                username: Username::new(&format!("user{}", i * 5 + 1)).unwrap(),
                addresses: vec![address(i)],
                device: None,
                mac: None,
                source: "radius wlc1".into(),
                id: None,
            },
            now,
        );
    }
    assert_eq!(sessions.len(), SIGNED_IN);
    assert!(sessions.person_at(&policy, address(7)).is_some());
    let names: Vec<String> = (0..SIGNED_IN)
        .map(|i| format!("www.social{}.example", i * 37))
        .collect();

    let mut g = c.benchmark_group("people");
    g.measurement_time(Duration::from_secs(3));
    let mut i = 0usize;
    g.bench_function("person at an address (2,000 signed in)", |b| {
        b.iter(|| {
            i = (i + 1) % SIGNED_IN;
            black_box(sessions.person_at(&policy, black_box(address(i))))
        })
    });
    g.bench_function(
        "decision for a signed-in address (10,000 people, 2,000 signed in)",
        |b| {
            b.iter(|| {
                i = (i + 1) % SIGNED_IN;
                let ip = black_box(address(i));
                let client = Client::new(ip, None);
                let mut identity = policy.identify(&client);
                identity.person = sessions.person_at(&policy, ip);
                black_box(decide_as(&policy, &client, identity, &names[i], now, false))
            })
        },
    );
    // The follower's round after a sign-in: every signed-in address with its identity, into
    // the firewall's profiles (pure; loading them into nft is not timed).
    let clients: Vec<(schoolgate_engine::policy::Identity, Client)> = (0..SIGNED_IN)
        .map(|i| {
            let client = Client::new(address(i), None);
            let mut identity = policy.identify(&client);
            identity.person = sessions.person_at(&policy, address(i));
            (identity, client)
        })
        .collect();
    let placed = Placed::new(&policy, clients.iter().copied());
    assert_eq!(
        placed.at.len(),
        SIGNED_IN,
        "everyone signed in is judged apart"
    );
    assert!(placed.profiles.len() >= 3, "pupils, 6B pupils and staff");
    g.bench_function("firewall profiles for 2,000 signed in", |b| {
        b.iter(|| black_box(Placed::new(&policy, black_box(&clients).iter().copied())))
    });
    g.finish();

    let metrics = Arc::new(Metrics::new());
    let counted = Arc::clone(&metrics);
    let listener = Listener::new(
        &Radius {
            listen: Vec::new(),
            clients: vec![RadiusClient {
                network: "127.0.0.0/8".parse().unwrap(),
                secret_file: dir.path().join("radius.secret"),
            }],
        },
        Arc::clone(&sessions),
        Arc::clone(&live),
        metrics,
    )
    .unwrap();
    // Interim updates for those signed in, each a new request (its session time grows), built
    // outside the timing: every one is taken whole, none is a repeat.
    let packet = |n: usize| {
        let who = n % SIGNED_IN;
        let IpAddr::V4(ip) = address(who) else {
            unreachable!()
        };
        let user = format!("user{}", who * 5 + 1);
        schoolgate_people::radius::request(
            (n % 256) as u8,
            &[
                (40, &3u32.to_be_bytes()),
                (1, user.as_bytes()),
                (8, &ip.octets()),
                (46, &(n as u32).to_be_bytes()),
            ],
            SECRET.as_bytes(),
        )
    };
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut g = c.benchmark_group("radius");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    g.bench_function("interim update taken and answered", |b| {
        b.iter_batched(
            || {
                n += 1;
                packet(n)
            },
            |p| {
                let answer = listener.take(&p, from, std::time::Instant::now());
                assert!(answer.is_some());
                answer
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let text = counted.render();
    assert!(
        !text.contains("result=\"repeat\""),
        "a packet was taken as a repeat: the bench would time the cheap path"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

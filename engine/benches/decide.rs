//! Decision time with a million listed domains, and the time to load that policy.
//!
//! `cargo bench -p schoolgate-engine --bench decide`. Targets (docs/PERFORMANCE.md): a median
//! decision at or under 300 ns; loading under 2 s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use schoolgate_engine::{Client, PersonView, decide, decide_as};

#[path = "support/synthetic.rs"]
mod synthetic;

const N: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let list = synthetic::domains(N);
    let policy = synthetic::build(&list);
    assert!(policy.n_domains() >= N);
    let listed: Vec<String> = list
        .lines()
        .step_by(9973)
        .map(|d| format!("www.{d}"))
        .collect();
    let unlisted: Vec<String> = (0..listed.len())
        .map(|i| format!("www.site{i}.example.org"))
        .collect();
    let pupil = Client::new("10.10.3.7".parse().unwrap(), None);
    let staff = Client::new("10.20.3.7".parse().unwrap(), None);
    let school_day: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    let exception: Timestamp = "2026-11-24T13:30:00Z".parse().unwrap();

    let mut g = c.benchmark_group("decide");
    g.measurement_time(Duration::from_secs(3));
    let mut i = 0usize;
    g.bench_function("listed, blocked, with until", |b| {
        b.iter(|| {
            i = (i + 1) % listed.len();
            black_box(decide(
                &policy,
                &pupil,
                None,
                black_box(&listed[i]),
                school_day,
                false,
            ))
        })
    });
    g.bench_function("unlisted, allowed", |b| {
        b.iter(|| {
            i = (i + 1) % unlisted.len();
            black_box(decide(
                &policy,
                &pupil,
                None,
                black_box(&unlisted[i]),
                school_day,
                false,
            ))
        })
    });
    g.bench_function("staff in lessons, until the break", |b| {
        b.iter(|| {
            i = (i + 1) % listed.len();
            black_box(decide(
                &policy,
                &staff,
                None,
                black_box(&listed[i]),
                school_day,
                false,
            ))
        })
    });
    // Someone signed in: the person's group is found as well (no allocation), and the two
    // groups' rules are read together.
    let amira_groups = vec!["Pupils".to_owned(), "Year 6".to_owned(), "6B".to_owned()];
    let amira = PersonView {
        username: "amira.k",
        class: Some("6B"),
        groups: &amira_groups,
    };
    let grace_groups = vec!["Staff".to_owned()];
    let grace = PersonView {
        username: "grace.o",
        class: None,
        groups: &grace_groups,
    };
    let ict = Client::new("10.30.4.21".parse().unwrap(), None);
    g.bench_function("pupil signed in, listed, blocked", |b| {
        b.iter(|| {
            i = (i + 1) % listed.len();
            black_box(decide(
                &policy,
                &pupil,
                Some(black_box(&amira)),
                black_box(&listed[i]),
                school_day,
                false,
            ))
        })
    });
    // As the agent decides: the person identified once, at sign-in.
    let mut kept = policy.identify(&pupil);
    kept.person = Some(policy.identify_person(&amira));
    g.bench_function("pupil signed in, identity kept, listed, blocked", |b| {
        b.iter(|| {
            i = (i + 1) % listed.len();
            black_box(decide_as(
                &policy,
                &pupil,
                black_box(kept),
                black_box(&listed[i]),
                school_day,
                false,
            ))
        })
    });
    g.bench_function("staff signed in at a school computer, listed", |b| {
        b.iter(|| {
            i = (i + 1) % listed.len();
            black_box(decide(
                &policy,
                &ict,
                Some(black_box(&grace)),
                black_box(&listed[i]),
                school_day,
                false,
            ))
        })
    });
    g.bench_function("exception in force", |b| {
        b.iter(|| {
            black_box(decide(
                &policy,
                &pupil,
                None,
                black_box("www.youtube.com"),
                exception,
                false,
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("policy with 1M domains", |b| {
        b.iter(|| black_box(synthetic::build(&list)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

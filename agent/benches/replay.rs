//! Inspection throughput: every frame of the shared corpus (`../shared/corpus`, held in
//! memory) through the pipeline (packet view, flow table, classifiers) with each observation
//! judged by the shipped policy, as `replay` and live capture do. Reported as frames per
//! second on one core; `bench/replay.sh` runs it beside ndpiReader on the same files.
//!
//! `cargo bench -p schoolgate-agent --bench replay`. Target (docs/PERFORMANCE.md): at least
//! 2 million packets per second per core.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use schoolgate_agent::capture::Frame;
use schoolgate_agent::inspection::Pipeline;
use schoolgate_agent::policy_file;
use schoolgate_engine::{Client, MacAddr};
use schoolgate_inspect::capture_file;
use schoolgate_inspect::inspector::Config;
use schoolgate_inspect::judge::judge;

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcap");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIPPED: the shared corpus (../shared/corpus) is not here");
        return;
    };
    let mut files: Vec<Vec<u8>> = entries
        .filter_map(Result::ok)
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    files.sort();
    let captures: Vec<Vec<capture_file::Frame<'_>>> = files
        .iter()
        .filter_map(|b| capture_file::frames(b).ok())
        .collect();
    let frames: u64 = captures.iter().map(|c| c.len() as u64).sum();
    let policy = policy_file::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml"),
        None,
    )
    .unwrap()
    .policy;
    let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    println!("{} files, {frames} frames", captures.len());

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(frames));
    for filter in [false, true] {
        let name = if filter { "corpus_filtered" } else { "corpus" };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut judged = 0u64;
                // One pipeline per file, as one replay per file.
                for capture in &captures {
                    let mut pipeline = Pipeline::new(Config::default(), filter);
                    for f in capture {
                        let frame = Frame {
                            time: f.time,
                            link: f.link,
                            data: &f.data,
                        };
                        for obs in pipeline.frame(frame).drain(..) {
                            let client = Client::new(obs.client.ip(), obs.client_mac.map(MacAddr));
                            let v =
                                judge(&policy, &client, policy.identify(&client), &obs, now, false);
                            judged += u64::from(v.technique.is_some());
                        }
                    }
                }
                black_box(judged)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

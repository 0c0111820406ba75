//! The checked-in fuzz seeds (fuzz/seeds/) replayed through the same calls as the fuzz
//! targets, so `cargo test` keeps every crash once found from coming back.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use schoolgate_inspect::tls::{Parsed, Transport, from_handshake, from_records};

/// The checked-in seeds of fuzz target `target`, by file name; at least `min` of them.
fn seeds(target: &str, min: usize) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    assert!(
        seeds.len() >= min,
        "expected the checked-in seeds in {}",
        dir.display()
    );
    seeds
}

#[test]
fn tls_client_hello_seeds_do_not_panic() {
    let mut hellos = 0;
    for (_, data) in seeds("tls_client_hello", 8) {
        if matches!(from_records(&data), Parsed::Hello(_)) {
            hellos += 1;
        }
        let _ = from_handshake(&data, Transport::Quic);
    }
    // The seeds hold whole hellos in one record, over three records, and with real ECH.
    assert!(hellos >= 3, "only {hellos} seeds read as a hello");
}

#[test]
fn packet_seeds_do_not_panic() {
    for target in ["inspect_frames", "quic_and_signatures"] {
        let mut observed = Vec::new();
        for (name, data) in seeds(target, 7) {
            if schoolgate_inspect::fuzz::frames(&data) > 0 {
                observed.push(name);
            }
            schoolgate_inspect::fuzz::datagram(&data);
        }
        if target == "inspect_frames" {
            // The frames reach the classifiers, not only the packet views.
            observed.sort();
            eprintln!("seeds observed: {observed:?}");
            assert!(
                observed.len() >= 10,
                "only {observed:?} made an observation"
            );
        }
    }
}

#[test]
fn capture_and_filter_seeds_do_not_panic() {
    let mut read = 0;
    for (_, data) in seeds("capture_and_filter", 7) {
        if schoolgate_inspect::capture_file::frames(&data).is_ok_and(|f| !f.is_empty()) {
            read += 1;
        }
        schoolgate_inspect::fuzz::capture_and_filter(&data);
    }
    // pcap with three link types and pcapng: the seeds reach the frames.
    assert!(read >= 4, "only {read} seeds read as captures");
}

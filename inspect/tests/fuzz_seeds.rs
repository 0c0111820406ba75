//! The checked-in fuzz seeds (fuzz/seeds/) replayed through the same calls as the fuzz
//! targets, so `cargo test` keeps every crash once found from coming back.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use schoolgate_inspect::tls::{Parsed, Transport, from_handshake, from_records};

#[test]
fn tls_client_hello_seeds_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/tls_client_hello");
    let mut hellos = 0;
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if matches!(from_records(&data), Parsed::Hello(_)) {
            hellos += 1;
        }
        let _ = from_handshake(&data, Transport::Quic);
        n += 1;
    }
    assert!(n >= 8, "expected the checked-in seeds in {}", dir.display());
    // The seeds hold whole hellos in one record, over three records, and with real ECH.
    assert!(hellos >= 3, "only {hellos} seeds read as a hello");
}

#[test]
fn packet_seeds_do_not_panic() {
    for target in ["inspect_frames", "quic_and_signatures"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut n = 0;
        let mut observed = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if schoolgate_inspect::fuzz::frames(&data) > 0 {
                observed.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
            schoolgate_inspect::fuzz::datagram(&data);
            n += 1;
        }
        assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/capture_and_filter");
    let mut read = 0;
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if schoolgate_inspect::capture_file::frames(&data).is_ok_and(|f| !f.is_empty()) {
            read += 1;
        }
        schoolgate_inspect::fuzz::capture_and_filter(&data);
        n += 1;
    }
    assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
    // pcap with three link types and pcapng: the seeds reach the frames.
    assert!(read >= 4, "only {read} seeds read as captures");
}

//! Loads the million-domain synthetic policy from files on disk and prints how long that took
//! and how much memory the process grew by. Linux only (reads /proc/self/status).
//!
//! `cargo run --release -p schoolgate-engine --example footprint`

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

use std::path::Path;
use std::time::Instant;

use schoolgate_engine::Policy;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("schoolgate-footprint-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::write(dir.join("lists/big.txt"), synthetic::domains(1_000_000)).unwrap();
    std::fs::write(dir.join("policy.yaml"), synthetic::POLICY).unwrap();
    let list_bytes = std::fs::metadata(dir.join("lists/big.txt")).unwrap().len();

    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let path = dir.join("policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let policy = Policy::from_yaml(&text, &path, &|p: &Path| std::fs::read_to_string(p)).unwrap();
    let took = start.elapsed();
    let after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    std::fs::remove_dir_all(&dir).unwrap();

    println!("domains listed:        {}", policy.n_domains());
    println!(
        "list file:             {:.1} MiB",
        list_bytes as f64 / 1048576.0
    );
    println!(
        "load (read + compile): {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    println!(
        "resident growth:       {:.1} MiB",
        (after - before) as f64 / 1024.0
    );
    println!("peak resident:         {:.1} MiB", peak as f64 / 1024.0);
}

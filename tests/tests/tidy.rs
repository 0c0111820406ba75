//! Repository-wide checks that keep the code base honest: every Rust file says what it holds
//! in a `//!` header, ARCHITECTURE.md's code map names every module, CI runs exactly the test
//! command README gives, and the code is formatted and clippy-clean.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file of ours, outside build output.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let files = rust_files();
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn architecture_code_map_names_every_module() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for krate in [
        "engine", "inspect", "contract", "gateway", "wire", "people", "serve", "agent", "console",
        "lab", "demo",
    ] {
        // Every module, folders' files included.
        let mut dirs = vec![root().join(krate).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let module = name.trim_end_matches(".rs");
                // `bin/` holds binaries, each named in the code map by its file; templates
                // and migrations are not modules.
                if matches!(
                    module,
                    "lib" | "main" | "mod" | "bin" | "templates" | "migrations"
                ) || (path.is_file() && !name.ends_with(".rs"))
                {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path.clone());
                }
                let mention = format!("`{module}");
                if !arch.contains(&mention) {
                    let rel = path.strip_prefix(root()).unwrap().display().to_string();
                    missing.push(rel);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let marker = "<!-- test-command -->";
    let after = readme
        .split(marker)
        .nth(1)
        .expect("README marks its test command");
    let command = after
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("```"))
        .expect("a command after the marker");
    assert_eq!(
        readme.matches(marker).count(),
        1,
        "README has exactly one test command"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert!(
        last == command || last == format!("exec {command}"),
        ".ci/run ends with `{last}`, README says `{command}`"
    );
}

/// Runs the cargo that runs these tests, at the repository root.
fn cargo(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn code_is_formatted() {
    let out = cargo(&["fmt", "--all", "--check"]);
    assert!(
        out.status.success(),
        "run `cargo fmt --all`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The workspace lints (no `unwrap` outside tests, no indexing that can panic, …) hold.
#[test]
fn clippy_is_clean() {
    let out = cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]);
    assert!(
        out.status.success(),
        "cargo clippy found problems:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fuzz crate, outside the workspace, builds from its own lock file as it stands (a
/// stale lock once made `--locked` fail), and its README lists every target.
#[test]
fn the_fuzz_crate_is_locked_and_every_target_documented() {
    let manifest = root().join("fuzz/Cargo.toml");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fuzz/Cargo.lock is stale: run `cargo metadata --manifest-path fuzz/Cargo.toml`:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let readme = std::fs::read_to_string(root().join("fuzz/README.md")).unwrap();
    let targets: Vec<&str> = toml
        .split("[[bin]]")
        .skip(1)
        .filter_map(|b| b.split("name = \"").nth(1)?.split('"').next())
        .collect();
    assert!(targets.len() >= 7, "{targets:?}");
    for t in targets {
        assert!(
            readme.contains(&format!("| `{t}` |")),
            "fuzz/README.md's table does not list the target `{t}`"
        );
        assert!(
            root().join("fuzz/seeds").join(t).is_dir(),
            "fuzz/seeds/{t} is missing"
        );
    }
}

/// The benchmark scripts call the agent with flags it still has (a renamed flag once left
/// `bench/dnsperf.sh` measuring an agent that never started): every `--flag` on a line that
/// runs `"$agent" SUBCOMMAND`, and every `…_flag=--flag` the scripts pass to it, is in that
/// subcommand's `--help`.
#[test]
fn bench_scripts_pass_the_agent_only_flags_it_has() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("bench")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().replace("\\\n", " ");
        // Flags kept in variables: `firewall_flag=--no-firewall`.
        let kept: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().split_once("_flag=--").map(|(_, f)| f))
            .map(|f| f.split_whitespace().next().unwrap_or_default())
            .collect();
        for line in text.lines() {
            let Some((_, call)) = line.split_once("\"$agent\" ") else {
                continue;
            };
            let mut words = call.split_whitespace();
            let sub = words.next().unwrap_or_default();
            // `[ -x "$agent" ]` and the like do not run it.
            if sub.is_empty() || !sub.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                continue;
            }
            let help =
                schoolgate_tests::program_help("schoolgate-agent", &[sub]).unwrap_or_else(|| {
                    panic!(
                        "{}: `schoolgate-agent {sub}` is not a subcommand",
                        path.display()
                    )
                });
            let flags = words
                .filter(|w| w.starts_with("--"))
                .map(|w| {
                    w.trim_start_matches("--")
                        .split('=')
                        .next()
                        .unwrap_or_default()
                })
                .chain(if call.contains("_flag") {
                    kept.clone()
                } else {
                    Vec::new()
                });
            for flag in flags {
                assert!(
                    help.split_whitespace()
                        .any(|w| w.trim_end_matches(',') == format!("--{flag}")),
                    "{}: `schoolgate-agent {sub}` has no flag --{flag}",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} flags found in bench/");
}

/// The crates that hold no I/O and read no clock: bytes, policies and `now` in, values out.
const PURE: [&str; 6] = ["engine", "inspect", "contract", "gateway", "wire", "people"];

/// Crates that do I/O (sockets, files watched, netlink sockets, packet capture, databases,
/// mail): a pure crate may not depend on one, directly or through another crate. The
/// netlink-packet-* crates only read and write bytes, so the gateway core may parse NFLOG's
/// messages with them; the sockets are netlink-sys's.
const IO_CRATES: [&str; 13] = [
    "tokio",
    "mio",
    "nix",
    "socket2",
    "reqwest",
    "hyper",
    "axum",
    "sqlx",
    "lettre",
    "notify",
    "hickory-resolver",
    "netlink-sys",
    "rtnetlink",
];

/// Names a pure crate's code may not use outside its tests: files, sockets, threads,
/// processes, the environment and the clock.
const IO_NAMES: [&str; 16] = [
    "std::fs",
    "File::open",
    "File::create",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "UnixStream",
    "UnixListener",
    "UnixDatagram",
    "SystemTime",
    "Instant::now",
    "Timestamp::now",
    "Zoned::now",
    "std::thread",
    "std::process",
    "std::env",
];

/// Reads of the clock, which the agent makes only in `clock.rs`.
const CLOCK_READS: [&str; 5] = [
    "SystemTime::now",
    "Instant::now",
    "Timestamp::now",
    "Zoned::now",
    "Utc::now",
];

/// The lines of `source` that are code, with their numbers: comments are left out, and so
/// is the test module (at the end of a file, by this code base's layout), where tests may
/// read the clock and import what they like.
fn code_lines(source: &str) -> Vec<(usize, &str)> {
    let mut code = Vec::new();
    let mut lines = source.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|(_, next)| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if !line.starts_with("//") {
            code.push((i + 1, line));
        }
    }
    code
}

/// The `names` `source` uses outside comments and its test module, with their line numbers.
fn uses(source: &str, names: &[&'static str]) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (line, code) in code_lines(source) {
        for &name in names {
            if code.contains(name) {
                found.push((line, name));
            }
        }
    }
    found
}

/// The I/O crates in `cargo tree --prefix none --format {p}`'s output (one `name version`
/// per line), and any packet-capture crate (`pnet*`).
fn io_dependencies(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name) || name.starts_with("pnet"))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_purity_checks_find_what_they_look_for() {
    let source = "//! A module.\n\
                  // std::fs in a comment is fine\n\
                  use std::fs;\n\
                  fn f() { let _ = std::time::SystemTime::UNIX_EPOCH; }\n\
                  fn g(now: Timestamp) {}\n\
                  fn h() -> Timestamp { jiff::Timestamp::now() }\n\
                  #[cfg(test)]\n\
                  use std::net::UdpSocket;\n\
                  #[cfg(test)]\n\
                  mod tests {\n\
                  fn t() { let _ = std::time::Instant::now(); }\n\
                  }\n";
    assert_eq!(
        uses(source, &IO_NAMES),
        [
            (3, "std::fs"),
            (4, "SystemTime"),
            (6, "Timestamp::now"),
            (8, "UdpSocket")
        ]
    );
    let tree = "schoolgate-gateway v0.1.0\nipnet v2.11.0\ntokio v1.48.0\npnet_datalink v0.35.0\n\
                netlink-packet-core v0.9.0\ntokio v1.48.0\n";
    assert_eq!(io_dependencies(tree), ["pnet_datalink", "tokio"]);
}

#[test]
fn the_agent_reads_the_clock_only_in_clock_rs() {
    let mut reads = Vec::new();
    for file in rust_files() {
        let rel = file.strip_prefix(root()).unwrap().to_path_buf();
        if !rel.starts_with("agent/src") || rel == Path::new("agent/src/clock.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for (line, name) in uses(&source, &CLOCK_READS) {
            reads.push(format!("{}:{line}: {name}", rel.display()));
        }
    }
    assert!(
        reads.is_empty(),
        "the agent reads the clock through `clock::now` or `clock::instant` only:\n  {}",
        reads.join("\n  ")
    );
}

#[test]
fn pure_crates_do_no_io_and_read_no_clock() {
    let mut problems = Vec::new();
    let files = rust_files();
    for krate in PURE {
        for file in &files {
            let rel = file.strip_prefix(root()).unwrap().to_path_buf();
            if !rel.starts_with(Path::new(krate).join("src")) {
                continue;
            }
            let source = std::fs::read_to_string(file).unwrap();
            for (line, name) in uses(&source, &IO_NAMES) {
                problems.push(format!("{}:{line}: {name}", rel.display()));
            }
        }
        let package = format!("schoolgate-{krate}");
        let out = cargo(&[
            "tree", "--locked", "-p", &package, "-e", "normal", "--prefix", "none", "--format",
            "{p}",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for dep in io_dependencies(&String::from_utf8_lossy(&out.stdout)) {
            problems.push(format!("{package} depends on {dep}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the pure crates must do no I/O and read no clock:\n  {}",
        problems.join("\n  ")
    );
}

/// The agent's top-level modules by layer: a module may import only modules of a lower layer
/// (and its own). The stages a request passes through import the stages they hand it to
/// (the resolver and inspection hand outcomes to the actor, the actor to the firewall and
/// to reporting), and the sources they read (the live policy, who is who, capture) sit
/// below them all. ARCHITECTURE.md explains each layer.
const AGENT_LAYERS: [(&str, u8); 24] = [
    ("clock", 0),
    ("trust", 0),
    ("recent", 0),
    ("watch", 0),
    ("policy_file", 0),
    ("upstream", 1),
    ("reload", 1),
    ("capture", 2),
    ("clients", 2),
    ("report", 3),
    ("firewall", 4),
    ("people", 4),
    ("feeds", 4),
    ("act", 5),
    ("shared", 6),
    ("dns", 7),
    ("inspection", 7),
    ("blockpage", 7),
    ("replay", 8),
    ("daemon", 9),
    ("fuzz", 9),
    ("lib", 9),
    ("main", 9),
    ("cli", 9),
];

/// The top-level module `rel` (a path under `src/`) belongs to.
fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    first.unwrap_or_default().trim_end_matches(".rs").to_owned()
}

/// The top-level modules of this crate `source` imports (`crate::name`), outside comments
/// and its test module, with the line of each.
fn crate_imports(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (line, code) in code_lines(source) {
        for (at, _) in code.match_indices("crate::") {
            // `schoolgate_crate::` and the like are other crates.
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((line, name));
            }
        }
    }
    found
}

/// The imports in `files` (path under `src/`, source) that go to a layer that is not lower,
/// or name a module `layers` does not place.
fn layer_violations(files: &[(PathBuf, String)], layers: &[(&str, u8)]) -> Vec<String> {
    let layer = |m: &str| layers.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let mut problems = Vec::new();
    for (rel, source) in files {
        let from = top_module(rel);
        let Some(from_layer) = layer(&from) else {
            problems.push(format!("{}: module `{from}` has no layer", rel.display()));
            continue;
        };
        for (line, to) in crate_imports(source) {
            if to == from {
                continue;
            }
            match layer(&to) {
                Some(l) if l < from_layer => {}
                Some(l) => problems.push(format!(
                    "{}:{line}: `{from}` (layer {from_layer}) imports `{to}` (layer {l})",
                    rel.display()
                )),
                None => problems.push(format!(
                    "{}:{line}: `{from}` imports `{to}`, which has no layer",
                    rel.display()
                )),
            }
        }
    }
    problems
}

#[test]
fn the_layer_check_finds_what_it_looks_for() {
    let files = [
        (
            PathBuf::from("act/mod.rs"),
            "//! Act.\nuse crate::report::events::Event;\n// crate::dns in a comment\n\
             use schoolgate_crate::dns;\nuse crate::dns::server::Resolver;\n"
                .to_owned(),
        ),
        (
            PathBuf::from("report/events.rs"),
            "//! Events.\nuse crate::report::journal;\n#[cfg(test)]\nmod tests {\n\
             use crate::act::Actor;\n}\n"
                .to_owned(),
        ),
        (PathBuf::from("new.rs"), "//! New.\n".to_owned()),
    ];
    let layers = [("report", 3), ("act", 5), ("dns", 7)];
    assert_eq!(
        layer_violations(&files, &layers),
        [
            "act/mod.rs:5: `act` (layer 5) imports `dns` (layer 7)",
            "new.rs: module `new` has no layer",
        ]
    );
}

#[test]
fn the_agents_modules_import_only_lower_layers() {
    let src = root().join("agent/src");
    let files: Vec<(PathBuf, String)> = rust_files()
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).ok()?.to_path_buf();
            Some((rel, std::fs::read_to_string(&f).unwrap()))
        })
        .collect();
    assert!(files.len() > 30, "the agent's sources were not found");
    let problems = layer_violations(&files, &AGENT_LAYERS);
    assert!(
        problems.is_empty(),
        "a module imports one at its own layer or above (see ARCHITECTURE.md):\n  {}",
        problems.join("\n  ")
    );
}

/// The files of one folder that import each other (`super::name`, in their code lines) round
/// a circle, if any: the circle's files in order.
fn sibling_circle(files: &[(String, String)]) -> Option<Vec<String>> {
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let edges: Vec<Vec<usize>> = files
        .iter()
        .map(|(_, source)| {
            let code = code_lines(source);
            names
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    let import = format!("super::{n}");
                    code.iter().any(|(_, line)| line.contains(&import))
                })
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    // Depth-first search; a file met again while on the path closes a circle.
    fn visit(at: usize, edges: &[Vec<usize>], state: &mut [u8], path: &mut Vec<usize>) -> bool {
        state[at] = 1;
        path.push(at);
        for &next in &edges[at] {
            if state[next] == 1 {
                let start = path.iter().position(|&p| p == next).unwrap_or(0);
                path.drain(..start);
                return true;
            }
            if state[next] == 0 && visit(next, edges, state, path) {
                return true;
            }
        }
        path.pop();
        state[at] = 2;
        false
    }
    let mut state = vec![0u8; files.len()];
    for start in 0..files.len() {
        let mut path = Vec::new();
        if state[start] == 0 && visit(start, &edges, &mut state, &mut path) {
            return Some(path.into_iter().map(|i| names[i].to_owned()).collect());
        }
    }
    None
}

#[test]
fn the_circle_check_finds_a_circle() {
    let file = |n: &str, s: &str| (n.to_owned(), s.to_owned());
    let circle = [
        file("ruleset", "use super::listed::Listed;\n"),
        file("listed", "use super::learned::scopes;\n"),
        file("learned", "use super::ruleset::group_ids;\n"),
        file("ranges", "// super::ruleset in a comment\n"),
    ];
    assert_eq!(
        sibling_circle(&circle),
        Some(vec!["ruleset".into(), "listed".into(), "learned".into()])
    );
    assert_eq!(sibling_circle(&circle[..2]), None);
}

#[test]
fn the_folders_files_import_no_circle() {
    for folder in [
        "gateway/src/firewall",
        "gateway/src/dns",
        "agent/src/act",
        "agent/src/report",
    ] {
        let dir = root().join(folder);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("mod.rs") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                // The test module may use what it likes: `sibling_circle` reads code lines.
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
        files.sort();
        assert!(files.len() > 1, "{folder} was not read");
        assert_eq!(
            sibling_circle(&files),
            None,
            "files of {folder} import each other round a circle"
        );
    }
}

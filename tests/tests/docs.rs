//! The README and docs/ name only what exists: every command-line flag is one the programs'
//! `--help` lists (or another tool's, named below), every `schoolgate-agent` and
//! `schoolgate-console` subcommand exists, every policy key is a field of the policy's
//! schema, and every console path is one the console's router serves. A renamed flag or
//! key then fails here instead of misleading a reader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schoolgate_tests::program_help;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every page in docs/, with their names.
fn pages() -> Vec<(String, String)> {
    let mut out = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root().join("README.md")).unwrap(),
    )];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let name = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        out.push((name, std::fs::read_to_string(&p).unwrap()));
    }
    out
}

/// The text inside backticks on every line.
fn code_spans(text: &str) -> Vec<String> {
    text.lines()
        .flat_map(|l| {
            l.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The subcommands a clap `--help` lists.
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .filter_map(|l| l.split_whitespace().next())
                .filter(|w| *w != "help")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Every command path of a program (`["user", "add"]`, …) with its help text.
fn commands(package: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text =
            program_help(package, &args).unwrap_or_else(|| panic!("{package} {args:?} --help"));
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        out.push((path, text));
    }
    out
}

fn flags_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

/// Flags of other tools the docs show: cargo's and systemctl's.
const OTHER_TOOLS: &[&str] = &[
    "--release",
    "--locked",
    "--workspace",
    "--bench",
    "--test",
    "--nocapture",
    "--example",
    "--manifest-path",
    "--now",
];

#[test]
fn every_flag_and_subcommand_the_docs_name_exists() {
    let programs = [
        ("schoolgate-agent", commands("schoolgate-agent")),
        ("schoolgate-console", commands("schoolgate-console")),
        ("schoolgate-demo", commands("schoolgate-demo")),
    ];
    let mut known: BTreeSet<String> = OTHER_TOOLS.iter().map(|f| (*f).to_owned()).collect();
    for (_, cmds) in &programs {
        for (_, text) in cmds {
            known.extend(flags_in(text));
        }
    }
    known.insert("--version".to_owned());
    let mut wrong = Vec::new();
    let mut subcommands_checked = 0;
    for (page, text) in pages() {
        for span in code_spans(&text) {
            for flag in flags_in(&span) {
                if !known.contains(&flag) {
                    wrong.push(format!("{page}: `{span}`: no program has {flag}"));
                }
            }
            // `schoolgate-agent SUB …` / `schoolgate-console SUB SUB …`: the subcommands
            // exist, and the flags after them are theirs.
            for (program, cmds) in &programs[..2] {
                // The program run, not a cargo package (`-p schoolgate-agent`).
                let Some(after) = span
                    .match_indices(&format!("{program} "))
                    .find(|(at, _)| !span[..*at].ends_with("-p "))
                    .map(|(at, m)| &span[at + m.len()..])
                else {
                    continue;
                };
                let words: Vec<&str> = after
                    .split_whitespace()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                    .filter(|w| !w.starts_with('-'))
                    .collect();
                // The longest command path the words begin with.
                let found = cmds
                    .iter()
                    .filter(|(path, _)| {
                        path.len() <= words.len() && path.iter().zip(&words).all(|(a, b)| a == b)
                    })
                    .max_by_key(|(path, _)| path.len());
                let Some((path, help)) = found else {
                    continue;
                };
                if path.is_empty() && !words.is_empty() {
                    wrong.push(format!(
                        "{page}: `{span}`: {program} has no subcommand `{}`",
                        words[0]
                    ));
                    continue;
                }
                subcommands_checked += 1;
                let own = flags_in(help);
                for flag in flags_in(after) {
                    if !own.contains(&flag) && flag != "--version" && known.contains(&flag) {
                        wrong.push(format!(
                            "{page}: `{span}`: `{program} {}` has no {flag}",
                            path.join(" ")
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        subcommands_checked >= 20,
        "only {subcommands_checked} commands found"
    );
}

/// The field names of the policy's schema (`engine/src/policy/raw.rs`).
fn policy_fields() -> BTreeSet<String> {
    let raw = std::fs::read_to_string(root().join("engine/src/policy/raw.rs")).unwrap();
    raw.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name))
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_policy_key_the_docs_name_is_in_the_schema() {
    let fields = policy_fields();
    assert!(fields.contains("token_file") && fields.contains("approved_by"));
    let top = [
        "version",
        "school",
        "calendar",
        "schedules",
        "categories",
        "groups",
        "rules",
        "exceptions",
        "bypass",
        "gateway",
    ];
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        for span in code_spans(&text) {
            // A dotted key from the top of the file: `gateway.console.token_file`.
            let segments: Vec<&str> = span.split('.').collect();
            let dotted = segments.len() > 1
                && top.contains(&segments[0])
                && segments.iter().all(|s| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if !dotted {
                continue;
            }
            checked += 1;
            // Group and category names sit between keys (`bypass.response.pupils`): the
            // second and the last segment are keys.
            for key in [segments[1], segments[segments.len() - 1]] {
                if !fields.contains(key) && segments[0] != "groups" {
                    wrong.push(format!("{page}: `{span}`: no policy key `{key}`"));
                }
            }
        }
        // The key tables of the policy reference: `| `key` | meaning |`.
        if page == "docs/policy.md" {
            for line in text.lines() {
                let Some(cell) = line.strip_prefix("| `") else {
                    continue;
                };
                let keys = cell.split(" |").next().unwrap_or_default();
                for key in keys.split('`').step_by(2) {
                    let key = key.trim_matches(|c: char| c == ',' || c == ' ' || c == '`');
                    if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        continue;
                    }
                    checked += 1;
                    if !fields.contains(key) {
                        wrong.push(format!("{page}: `{key}` is not a policy key"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 40, "only {checked} keys found");
}

#[test]
fn every_console_path_the_docs_name_is_served() {
    let mut routes = BTreeSet::new();
    for dir in ["console/src/web", "console/src"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".route(").skip(1) {
                if let Some(route) = piece.trim_start().strip_prefix('"') {
                    routes.insert(route.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    assert!(routes.len() >= 20, "{routes:?}");
    // The agent's own: the block page answers every path, metrics on `/metrics`.
    routes.insert("/metrics".to_owned());
    let files = [
        "/etc/", "/var/", "/usr/", "/proc/", "/run/", "/dev/", "/tmp/", "/sys/",
    ];
    let mut wrong = Vec::new();
    for (page, text) in pages() {
        for span in code_spans(&text) {
            if !span.starts_with('/') || span == "/" || span.contains(' ') {
                continue;
            }
            if files.iter().any(|f| span.starts_with(f)) {
                continue;
            }
            // `/devices/10.77.0.3` is `/devices/{key}`.
            let served = routes.iter().any(|r| {
                let (a, b): (Vec<&str>, Vec<&str>) =
                    (r.split('/').collect(), span.split('/').collect());
                a.len() == b.len()
                    && a.iter()
                        .zip(&b)
                        .all(|(r, s)| r == s || (r.starts_with('{') && !s.is_empty()))
            });
            if !served {
                wrong.push(format!("{page}: `{span}` is not a console path"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

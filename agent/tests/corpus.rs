//! Every capture of the shared corpus (`../shared/corpus`, nDPI's regression captures with
//! nDPI's per-flow labels) replayed through inspection and the shipped policy, and compared
//! with nDPI's labels through a small mapping. Prints a table per category (files, flows
//! expected, found, missed, false alarms) and holds the targets: at least 95% recall for
//! each bypass technique and each social app named on the wire, no bypass alert on the
//! background captures, and GREASE ECH never reported.
//!
//! Skipped, saying so, when the corpus is not there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use schoolgate_agent::policy_file;
use schoolgate_agent::replay::{Format, Options, replay};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    dir.join("FLOWS.csv").exists().then_some(dir)
}

/// A CSV line split on commas outside double quotes.
/// An endpoint as Rust writes it (RFC 5952), or as given if it is not one.
fn endpoint(s: &str) -> String {
    s.parse::<std::net::SocketAddr>()
        .map_or_else(|_| s.to_owned(), |a| a.to_string())
}

fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// nDPI's service name for a social app, as our list sections name it.
fn social_app(service: &str) -> Option<&'static str> {
    Some(match service {
        "Facebook" | "FacebookMessenger" | "FbookReelStory" => "facebook",
        "Instagram" => "instagram",
        "WhatsApp" => "whatsapp",
        "TikTok" => "tiktok",
        "Snapchat" => "snapchat",
        "Twitter" => "twitter",
        "YouTube" => "youtube",
        "Discord" => "discord",
        "Reddit" => "reddit",
        "Pinterest" => "pinterest",
        "Tumblr" => "tumblr",
        "Telegram" => "telegram",
        "Bluesky" => "bluesky",
        "Threads" => "threads",
        "Mastodon" => "mastodon",
        "LinkedIn" => "linkedin",
        "Twitch" => "twitch",
        "Likee" => "likee",
        "Badoo" => "badoo",
        _ => return None,
    })
}

/// The techniques that count as finding a flow nDPI labelled with `service`.
fn bypass(service: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match service {
        "DoH_DoT" => (
            "encrypted_dns",
            &["dns_over_https", "dns_over_tls", "dns_over_quic"],
        ),
        "DNScrypt" => ("dnscrypt", &["dnscrypt"]),
        "Tor" => ("tor", &["tor"]),
        "OpenVPN" | "NordVPN" if service == "OpenVPN" => ("openvpn", &["openvpn"]),
        "WireGuard" => ("wireguard", &["wireguard"]),
        "IPSec" => ("ipsec", &["ipsec"]),
        "SSH" => ("ssh", &["ssh"]),
        "SOCKS" => ("socks_proxy", &["socks_proxy"]),
        "HTTP_Connect" => ("http_proxy", &["http_proxy"]),
        "Psiphon" => ("circumvention_tool", &["circumvention_tool"]),
        "CloudflareWarp" | "ProtonVPN" | "NordVPN" | "SurfShark" => {
            // A VPN app's own tunnel, told by its protocol, is as good a catch.
            ("vpn_app", &["vpn_app", "wireguard", "openvpn"])
        }
        _ => return None,
    })
}

#[derive(Debug, Default, Clone)]
struct Row {
    files: std::collections::BTreeSet<String>,
    expected: usize,
    found: usize,
    false_alarms: usize,
    missed: Vec<String>,
}

/// Categories still short of their target, and why. Each is open work, not an excuse:
/// remove a line when its category meets the target.
const KNOWN_GAPS: &[(&str, &str)] = &[(
    "bypass: encrypted_client_hello",
    "tls_ech's flow to performance.radar.cloudflare.com carries the ECH extension with the real name as outer SNI: \
         GREASE ECH by the RFC's own account (real ECH puts the provider's public name there), which must not alert; \
         nDPI flags any ECH extension",
)];

/// The shipped policy, and each capture's category from the manifest.
fn shipped_policy_and_categories(
    dir: &Path,
) -> (schoolgate_engine::Policy, HashMap<String, String>) {
    let policy = policy_file::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml"),
        None,
    )
    .expect("the shipped policy loads")
    .policy;
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.csv")).unwrap();
    let categories = manifest
        .lines()
        .skip(1)
        .map(fields)
        .map(|f| (f[0].clone(), f[7].clone()))
        .collect();
    (policy, categories)
}

/// What one pass over the corpus found.
struct Evaluation {
    rows: BTreeMap<String, Row>,
    grease_reported: usize,
    background_alarms: Vec<String>,
    packets: u64,
    filtered: u64,
}

/// Replays every capture (through the kernel filter when `filter`) and compares what was
/// seen with nDPI's labels.
fn evaluate(
    policy: &schoolgate_engine::Policy,
    dir: &Path,
    categories: &HashMap<String, String>,
    filter: bool,
) -> Evaluation {
    let (mut packets, mut filtered) = (0, 0);
    // Observations per file, by unordered endpoint pair.
    let mut seen: HashMap<(String, String, String), Vec<serde_json::Value>> = HashMap::new();
    let mut by_file: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for file in categories.keys() {
        let bytes = std::fs::read(dir.join("pcap").join(file)).unwrap();
        let mut out = Vec::new();
        // A school-day morning, so the decisions are the strict ones.
        let at = "2026-11-24T10:00:00Z".parse().unwrap();
        let options = Options {
            at: Some(at),
            format: Format::Json,
            filter,
        };
        let summary = replay(policy, &bytes, options, &mut out).unwrap();
        packets += summary.packets;
        filtered += summary.filtered;
        for line in String::from_utf8(out).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (a, b) = (
                v["client"].as_str().unwrap().to_owned(),
                v["server"].as_str().unwrap().to_owned(),
            );
            let pair = if a < b { (a, b) } else { (b, a) };
            seen.entry((file.clone(), pair.0, pair.1))
                .or_default()
                .push(v.clone());
            by_file.entry(file.clone()).or_default().push(v);
        }
    }

    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut grease_reported = 0usize;
    let flows = std::fs::read_to_string(dir.join("FLOWS.csv")).unwrap();
    for line in flows.lines().skip(1) {
        let f = fields(line);
        let (file, label, host, flags) = (&f[0], &f[5], &f[9], &f[10]);
        // nDPI writes IPv6 addresses its own way (`::` for a single zero group); compare
        // them as addresses.
        let (a, b) = (&endpoint(&f[3]), &endpoint(&f[4]));
        let category = &categories[file];

        let pair = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        let obs = seen
            .get(&(file.clone(), pair.0, pair.1))
            .cloned()
            .unwrap_or_default();
        let techniques: Vec<&str> = obs.iter().filter_map(|o| o["technique"].as_str()).collect();
        let apps: Vec<&str> = obs.iter().filter_map(|o| o["app"].as_str()).collect();
        let service = label.rsplit('.').next().unwrap_or(label);
        let is_dns = label.starts_with("DNS");

        let mut expect: Option<(String, Vec<&str>)> =
            bypass(service).map(|(c, t)| (c.to_owned(), t.to_vec()));
        if flags == "ECH" || flags == "ESNI" {
            if category.contains("bypass:ech") {
                expect = Some((
                    "encrypted_client_hello".into(),
                    vec!["encrypted_client_hello"],
                ));
            } else if techniques.contains(&"encrypted_client_hello") {
                grease_reported += 1;
            }
        }
        if category.contains("bypass:tor") && label == "TLS" && host.starts_with("www.") {
            expect = Some(("tor".into(), vec!["tor"]));
        }
        // A circumvention tool's flow that nDPI could only call TLS is the tool's TLS-wrapped
        // proxy (the manifest: "V2Ray VMess over TLS"; the other tool's capture has none).
        if category.contains("bypass:circumvention-tool") && label == "TLS" {
            expect = Some(("tls_proxy".into(), vec!["tls_proxy"]));
        }
        if file.starts_with("dns-tunnel") && is_dns {
            expect = Some(("dns_tunnel".into(), vec!["dns_tunnel"]));
        }
        let server_public = {
            let ip = b
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']))
                .unwrap_or(b);
            ip.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !schoolgate_inspect::flow::local(ip))
        };
        if is_dns && server_public && category.contains("bypass:dns-external") {
            expect = Some(("external_dns".into(), vec!["external_dns"]));
        }
        if let Some((name, wanted)) = expect {
            let row = rows.entry(format!("bypass: {name}")).or_default();
            row.files.insert(file.clone());
            row.expected += 1;
            if techniques.iter().any(|t| wanted.contains(t)) {
                row.found += 1;
            } else {
                row.missed.push(format!("{file} {a} -> {b} {label} {host}"));
            }
            continue;
        }
        if let Some(app) = social_app(service).filter(|_| !host.is_empty()) {
            let row = rows.entry(format!("social: {app}")).or_default();
            row.files.insert(file.clone());
            row.expected += 1;
            if apps.contains(&app) {
                row.found += 1;
            } else {
                row.missed
                    .push(format!("{file} {a} -> {b} {label} {host}: saw {apps:?}"));
            }
        }
        // Anything else reported as a bypass is a false alarm, counted where it was raised.
        for t in techniques {
            let row = rows.entry(format!("bypass: {t}")).or_default();
            row.false_alarms += 1;
            row.missed
                .push(format!("FALSE ALARM {file} {a} -> {b} {label} {host}"));
        }
    }
    let mut background_alarms = Vec::new();
    for (file, obs) in &by_file {
        if categories[file].starts_with("background:") {
            for o in obs.iter().filter(|o| !o["technique"].is_null()) {
                background_alarms.push(format!("{file}: {o}"));
            }
        }
    }

    Evaluation {
        rows,
        grease_reported,
        background_alarms,
        packets,
        filtered,
    }
}

#[test]
fn corpus_recall_and_false_alarms() {
    let Some(dir) = corpus() else {
        println!("SKIPPED: the shared corpus (../shared/corpus) is not here");
        return;
    };
    let (policy, categories) = shipped_policy_and_categories(&dir);

    let Evaluation {
        rows,
        grease_reported,
        background_alarms,
        ..
    } = evaluate(&policy, &dir, &categories, false);
    println!("| category | files | flows expected | found | missed | false alarms | recall |");
    println!("|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (name, row) in &rows {
        let recall = if row.expected == 0 {
            1.0
        } else {
            row.found as f64 / row.expected as f64
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.0}% |",
            row.files.len(),
            row.expected,
            row.found,
            row.expected - row.found,
            row.false_alarms,
            recall * 100.0
        );
        let gap = KNOWN_GAPS.iter().any(|(g, _)| *g == name);
        let met = recall >= 0.95 && row.false_alarms == 0;
        if !met && !gap {
            failures.push(format!("{name}: {:?}", row.missed));
        }
        if met && gap {
            failures.push(format!(
                "{name} meets its target: take it out of KNOWN_GAPS"
            ));
        }
    }
    for line in rows.values().flat_map(|r| &r.missed) {
        println!("  {line}");
    }
    assert!(
        background_alarms.is_empty(),
        "bypass alerts on background captures: {background_alarms:#?}"
    );
    assert_eq!(grease_reported, 0, "GREASE ECH was reported as ECH");
    assert!(
        failures.is_empty(),
        "categories below target: {failures:#?}"
    );
}

/// The capture socket's kernel filter, run over the same corpus: it must not cost a single
/// detection or add a false alarm, and the share of packets it keeps out of user space is
/// printed (recorded in docs/PERFORMANCE.md).
#[test]
fn the_kernel_filter_keeps_every_detection() {
    let Some(dir) = corpus() else {
        println!("SKIPPED: the shared corpus (../shared/corpus) is not here");
        return;
    };
    let (policy, categories) = shipped_policy_and_categories(&dir);
    let all = evaluate(&policy, &dir, &categories, false);
    let kept = evaluate(&policy, &dir, &categories, true);
    println!(
        "kernel filter: {} of {} packets dropped ({:.1}%)",
        kept.filtered,
        kept.packets,
        kept.filtered as f64 * 100.0 / kept.packets.max(1) as f64
    );
    let mut lost = Vec::new();
    for (name, row) in &all.rows {
        let with = kept.rows.get(name);
        let found = with.map_or(0, |r| r.found);
        let alarms = with.map_or(0, |r| r.false_alarms);
        println!("{name}: {} found unfiltered, {found} filtered", row.found);
        if found < row.found || alarms > row.false_alarms {
            let missed: Vec<_> = with
                .map(|r| {
                    r.missed
                        .iter()
                        .filter(|m| !row.missed.contains(m))
                        .collect()
                })
                .unwrap_or_default();
            lost.push(format!(
                "{name}: {found}/{} found, {alarms} false alarms: {missed:?}",
                row.found
            ));
        }
    }
    assert!(
        kept.background_alarms.is_empty(),
        "{:#?}",
        kept.background_alarms
    );
    assert_eq!(kept.grease_reported, 0);
    assert!(lost.is_empty(), "the filter cost detections: {lost:#?}");
}

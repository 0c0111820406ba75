//! List feeds on a gateway built from network namespaces: the agent fetches its categories'
//! lists from a publisher's HTTPS server on the lab's "internet" (CPython's file server with
//! TLS, ETags and conditional GET, `tests/scripts/feed_server.py`), and the resolver blocks
//! what they list. On SIGHUP every feed is asked again: a changed list is used, an unchanged
//! one costs a 304, and a corrupt, oversized or wrongly signed one is refused with a
//! `feed_rejected` event while the last good copy stays. A locked category's feed, signed
//! with minisign, holds against an exception that names one of its entries.
//!
//! Skipped, saying so, when python3, openssl or minisign is not installed (`.ci/run`
//! installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Stdio};

use schoolgate_tests::lab::{self, GATEWAY, Lab, PUPIL, RESOLVER, SITES, eventually};
use schoolgate_tests::{require_lab, require_tools};

/// The publisher's address (its certificate names it as an IP address).
const PUBLISHER: &str = SITES[4];

fn policy(lab: &Lab, exception: bool) -> String {
    let d = lab.dir.path().display();
    let key = std::fs::read_to_string(lab.path("minisign.pub")).unwrap();
    let key = key.lines().nth(1).unwrap();
    let exception = if exception {
        "exceptions:\n  - { name: Research, groups: [pupils], allow: [abuse.example], from: 2026-01-05T09:00, to: 2026-01-05T10:00, approved_by: Head }\n"
    } else {
        ""
    };
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  gambling:
    feeds:
      - {{ url: "https://{PUBLISHER}/gambling.txt", ca_file: {d}/ca.pem }}
  adverts:
    feeds:
      - {{ url: "https://{PUBLISHER}/hosts", format: hosts, ca_file: {d}/ca.pem }}
      - {{ url: "https://{PUBLISHER}/big.txt", max_size: 1KB, ca_file: {d}/ca.pem }}
  adult:
    feeds:
      - {{ url: "https://{PUBLISHER}/blacklists.tar.gz", format: ut1, section: adult, ca_file: {d}/ca.pem }}
  illegal:
    locked: true
    feeds:
      - {{ url: "https://{PUBLISHER}/illegal.txt", minisign_key: {key}, ca_file: {d}/ca.pem }}
groups:
  pupils: {{ networks: [10.77.0.0/28] }}
rules:
  - {{ name: Pupils off gambling and adverts, groups: [pupils], block: [gambling, adverts, adult] }}
{exception}gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53"]
    upstreams: ["{RESOLVER}"]
    block_response: nxdomain
  state_dir: {d}/state
"#
    )
}

fn missing_tools() -> Option<&'static str> {
    lab::missing_tool(&["python3", "openssl", "minisign", "tar", "gzip"])
}

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs `file` with the lab's minisign key.
fn sign(dir: &Path, file: &str) {
    let status = Command::new("minisign")
        .args(["-S", "-s"])
        .arg(dir.join("minisign.key"))
        .arg("-m")
        .arg(dir.join("www").join(file))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn blocked(lab: &Lab, name: &str) -> bool {
    lab.dig(PUPIL.name, GATEWAY, name, "A", &[]).status == "NXDOMAIN"
}

fn kinds(lab: &Lab, kind: &str) -> Vec<serde_json::Value> {
    lab.events()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn feeds_are_fetched_refreshed_and_refused_when_bad() {
    require_lab!();
    require_tools!(missing_tools());
    let mut lab = Lab::up();
    let dir = lab.dir.path().to_owned();
    let d = dir.display();
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("ut1/blacklists/adult")).unwrap();
    // A CA and the publisher's certificate for its address.
    sh(&format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=lab-ca \
         -days 1 -keyout ca.key -out ca.pem 2>/dev/null && \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN={PUBLISHER} \
         -keyout feeds.key -out feeds.csr 2>/dev/null && \
         printf 'subjectAltName=IP:{PUBLISHER}\\nbasicConstraints=CA:FALSE\\n' > ext && \
         openssl x509 -req -in feeds.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
         -extfile ext -out feeds.pem 2>/dev/null"
    ));
    // The publisher's minisign key (without a password, for the test).
    let status = Command::new("minisign")
        .args(["-G", "-W", "-f", "-p"])
        .arg(dir.join("minisign.pub"))
        .arg("-s")
        .arg(dir.join("minisign.key"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // What the publisher serves.
    let write = |file: &str, text: &str| std::fs::write(www.join(file), text).unwrap();
    write("gambling.txt", "# lab gambling list\nbet.example\n");
    write("hosts", "127.0.0.1 localhost\n0.0.0.0 ads.example\n");
    write("big.txt", &"filler.example\n".repeat(300));
    write("illegal.txt", "abuse.example\n");
    sign(&dir, "illegal.txt");
    write("ut1/blacklists/adult/domains", "adult.example\n");
    sh(&format!(
        "cd {}/ut1 && tar czf ../blacklists.tar.gz blacklists",
        www.display()
    ));
    lab.spawn(
        "inet",
        "publisher",
        &[
            "python3",
            &format!("{}/scripts/feed_server.py", env!("CARGO_MANIFEST_DIR")),
            PUBLISHER,
            "443",
            www.to_str().unwrap(),
            &format!("{d}/feeds.pem"),
            &format!("{d}/feeds.key"),
        ],
    );

    let peer = lab::workspace_bin("lab-peer");
    lab.spawn(
        "inet",
        "resolver",
        &[peer.to_str().unwrap(), "dns", "198.51.100.53:53"],
    );
    // The publisher answers before the agent starts (its first fetch is at start).
    assert!(
        eventually(10, || lab
            .exec(
                "inet",
                &[
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--cacert",
                    &format!("{d}/ca.pem"),
                    &format!("https://{PUBLISHER}/hosts"),
                ],
            )
            .status
            .success()),
        "the publisher did not start: {}",
        lab.log("publisher")
    );

    std::fs::write(lab.path("policy.yaml"), policy(&lab, false)).unwrap();
    lab.spawn_agent("agent", &lab.path("policy.yaml"), &[]);
    // Fetched at start, stored, and read by the policy watch.
    assert!(
        eventually(20, || [
            "bet.example",
            "ads.example",
            "adult.example",
            "abuse.example"
        ]
        .iter()
        .all(|n| blocked(&lab, n))),
        "the feeds were not used: {}\n{}",
        lab.log("agent"),
        lab.log("publisher")
    );
    assert!(!blocked(&lab, "www.bbc.co.uk"));
    assert!(
        !blocked(&lab, "localhost"),
        "a hosts file's own names are not entries"
    );
    let loaded = kinds(&lab, "feed_loaded");
    assert_eq!(loaded.len(), 4, "{loaded:#?}");
    assert!(
        loaded
            .iter()
            .any(|e| e["category"] == "adult" && e["count"] == 1)
    );
    // The oversized feed was refused, and says so.
    let rejected = kinds(&lab, "feed_rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    let why = rejected[0]["evidence"].as_str().unwrap();
    assert!(
        why.contains("big.txt") && why.contains("larger than its bound of 1024 bytes"),
        "{why}"
    );
    assert!(why.contains("nothing is listed from it yet"), "{why}");
    assert!(!blocked(&lab, "filler.example"));

    // A changed list is used at the next refresh (SIGHUP asks every feed again).
    write("gambling.txt", "bet.example\ncasino.example\n");
    lab.signal("agent", "HUP");
    assert!(
        eventually(15, || blocked(&lab, "casino.example")),
        "the refreshed list was not used: {}",
        lab.log("agent")
    );
    // Unchanged lists cost a 304 (by ETag): none is stored again.
    let before = kinds(&lab, "feed_loaded").len();
    lab.signal("agent", "HUP");
    assert!(
        eventually(10, || lab
            .log("publisher")
            .matches("GET /hosts 304")
            .count()
            >= 1),
        "{}",
        lab.log("publisher")
    );
    assert!(
        eventually(10, || lab
            .log("publisher")
            .contains("GET /gambling.txt 304")),
        "{}",
        lab.log("publisher")
    );
    assert_eq!(kinds(&lab, "feed_loaded").len(), before);

    // A corrupt download (an error page served as the list) is kept out: the last good
    // copy stays.
    write(
        "gambling.txt",
        "<html>\n<body>\n<h1>Service unavailable</h1>\n</body>\n</html>\n",
    );
    let rejected_before = kinds(&lab, "feed_rejected").len();
    lab.signal("agent", "HUP");
    assert!(
        eventually(10, || kinds(&lab, "feed_rejected").iter().any(|e| {
            e["evidence"].as_str().is_some_and(|w| {
                w.contains("gambling.txt") && w.contains("does not read as a domains list")
            })
        })),
        "{:#?}",
        kinds(&lab, "feed_rejected")
    );
    assert!(kinds(&lab, "feed_rejected").len() > rejected_before);
    assert!(
        blocked(&lab, "casino.example"),
        "the last good copy was lost"
    );

    // A list whose signature does not match is refused; the locked category keeps its copy.
    write("illegal.txt", "abuse.example\nother.example\n");
    lab.signal("agent", "HUP");
    assert!(
        eventually(10, || kinds(&lab, "feed_rejected").iter().any(|e| {
            e["evidence"].as_str().is_some_and(|w| {
                w.contains("illegal.txt") && w.contains("signature does not verify")
            })
        })),
        "{:#?}",
        kinds(&lab, "feed_rejected")
    );
    assert!(!blocked(&lab, "other.example"));
    assert!(blocked(&lab, "abuse.example"));

    // An exception naming an entry of the locked category's feed is refused, and the policy
    // in force stays.
    std::fs::write(lab.path("policy.yaml"), policy(&lab, true)).unwrap();
    assert!(
        eventually(10, || kinds(&lab, "policy_rejected").iter().any(|e| {
            e["evidence"]
                .as_str()
                .is_some_and(|w| w.contains("`abuse.example` is in the locked category `illegal`"))
        })),
        "{:#?}\n{}",
        kinds(&lab, "policy_rejected"),
        lab.log("agent")
    );
    assert!(blocked(&lab, "abuse.example"));
    lab.stop_cleanly("agent");
}

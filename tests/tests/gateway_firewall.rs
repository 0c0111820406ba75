//! The agent's firewall on a gateway built from network namespaces: DNS to any resolver is
//! answered by the agent and reported as a bypass attempt, DoT (`kdig +tls`) is refused for
//! everyone, QUIC for filtered groups only; an address listed in a file the policy names is
//! refused for the groups that block its category from the moment the file is saved; a
//! tablet whose group quarantines on a bypass attempt reaches only the VLE afterwards;
//! `fail_closed` leaves the table when the agent stops, a restart picks it up (the tablet
//! stays quarantined), and `fail_open` removes it; another table on the gateway is never
//! touched.
//!
//! The DoT resolver and the QUIC server and client are `lab-peer`'s, speaking the real
//! protocols (rustls, quinn).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use schoolgate_tests::lab::{
    GATEWAY, GATEWAY6, Lab, PUPIL, RESOLVER, SCHOOL, STAFF, WEB, eventually,
};
use schoolgate_tests::require_lab;

/// Pupils are filtered (so QUIC is refused for them); staff are not filtered at all here.
/// The school's tablet is quarantined on a bypass attempt; pupils only raise an alert. The
/// addresses in `endpoints.txt` are refused to pupils.
fn policy(lab: &Lab, on_stop: &str) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
categories:
  social_networking: {{ domains: [instagram.com] }}
  vle: {{ domains: [vle.198-51-100-22.ip.lab] }}
  bypass_tools: {{ lists: [endpoints.txt] }}
groups:
  tablets: {{ devices: [{{ mac: "{tablet}", name: Tablet-1 }}] }}
  pupils: {{ networks: [10.77.0.0/28, "2001:db8:77::100/120"] }}
  staff: {{ networks: [10.77.0.16/28, "2001:db8:77::200/120"] }}
rules:
  - {{ name: VLE always, groups: [all], allow: [vle] }}
  - {{ name: Pupils off social, groups: [pupils, tablets], block: [social_networking] }}
  - {{ name: No bypass tools, groups: [pupils], block: [bypass_tools] }}
bypass:
  response: {{ tablets: quarantine, pupils: alert }}
  quarantine_allow: [vle]
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53", "[{GATEWAY6}]:53"]
    upstreams: ["{RESOLVER}"]
    block_response: sinkhole
  block_page: {{ listen: "{GATEWAY}:80" }}
  state_dir: {state}
  firewall: {{ on_stop: {on_stop} }}
  metrics: {{ listen: "127.0.0.1:9153" }}
"#,
        state = lab.path("state").display(),
        tablet = SCHOOL.mac,
    )
}

/// A table of the school's own on the gateway, which the agent must leave alone. No
/// counters, so its listing does not change with traffic.
const OTHER_TABLE: &str = "table inet school_admin {
    set denied { type ipv4_addr; elements = { 192.0.2.66 }; }
    chain forward { type filter hook forward priority 10; policy accept; ip daddr @denied drop; }
}
";

fn ruleset(lab: &Lab) -> String {
    let out = lab.exec("gw", &["nft", "list", "ruleset"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_our_table(lab: &Lab) -> bool {
    lab.exec("gw", &["nft", "list", "table", "inet", "schoolgate"])
        .status
        .success()
}

/// Whether `kdig +tls` from `host` gets an answer from the DoT resolver.
fn dot_answers(lab: &Lab, host: &str) -> bool {
    let out = lab.exec(
        host,
        &[
            "kdig",
            "+tls",
            "+time=2",
            "+retry=0",
            "+short",
            "@198.51.100.53",
            "www.bbc.co.uk",
            "A",
        ],
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(WEB)
}

/// Whether a QUIC connection from `host` to the QUIC server gets its stream echoed.
fn quic_works(lab: &Lab, host: &str) -> bool {
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    let cert = lab.path("quic.der");
    lab.exec(
        host,
        &[
            peer,
            "quic-get",
            "198.51.100.10:443",
            cert.to_str().unwrap(),
        ],
    )
    .status
    .success()
}

fn start_agent(lab: &mut Lab, label: &str) {
    let policy = lab.path("policy.yaml");
    lab.spawn_agent(label, &policy, &["--no-inspection"]);
}

#[test]
fn gateway_firewall_end_to_end() {
    require_lab!();
    let mut lab = Lab::up();
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn("inet", "resolver", &[peer, "dns", "198.51.100.53:53"]);
    lab.spawn("inet", "dot", &[peer, "dot", "198.51.100.53:853"]);
    let cert = lab.path("quic.der");
    lab.spawn(
        "inet",
        "quic",
        &[peer, "quic", "198.51.100.10:443", cert.to_str().unwrap()],
    );
    lab.spawn(
        "inet",
        "web",
        &[
            peer,
            "http",
            "198.51.100.10:80",
            "198.51.100.21:80",
            "198.51.100.22:80",
        ],
    );
    std::fs::write(lab.path("endpoints.txt"), "# VPN endpoints\n").unwrap();
    let load = lab.exec(
        "gw",
        &["sh", "-c", &format!("echo '{OTHER_TABLE}' | nft -f -")],
    );
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let before = ruleset(&lab);
    // Without the agent, the outside resolver answers for itself, and DoT and QUIC work.
    assert_eq!(
        lab.dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &[])
            .first("A"),
        Some(WEB)
    );
    assert!(
        eventually(5, || dot_answers(&lab, PUPIL.name)),
        "DoT does not work without the agent: {}",
        lab.log("dot")
    );
    assert!(
        eventually(5, || quic_works(&lab, PUPIL.name)),
        "QUIC does not work without the agent: {}",
        lab.log("quic")
    );

    std::fs::write(lab.path("policy.yaml"), policy(&lab, "fail_closed")).unwrap();
    start_agent(&mut lab, "agent");
    assert!(
        eventually(15, || has_our_table(&lab)
            && lab
                .dig(PUPIL.name, GATEWAY, "www.bbc.co.uk", "A", &[])
                .first("A")
                == Some(WEB)),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // DNS sent to any resolver is answered by the agent: blocked for the pupil, with the
    // rule named; the same for a resolver address that does not exist at all; and over TCP
    // and IPv6.
    let d = lab.dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &[]);
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    assert!(
        d.ede
            .as_deref()
            .unwrap_or_default()
            .contains("Pupils off social")
    );
    let d = lab.dig(PUPIL.name, "192.0.2.200", "www.instagram.com", "A", &[]);
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    let d = lab.dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &["+tcp"]);
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    let d = lab.dig(
        PUPIL.name,
        "2001:db8:100::53",
        "www.instagram.com",
        "A",
        &[],
    );
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    // Staff asking an outside resolver get the agent's (allowed) answer.
    assert_eq!(
        lab.dig(STAFF.name, RESOLVER, "www.instagram.com", "A", &[])
            .first("A"),
        Some(WEB)
    );

    // The tablet asks an outside resolver: answered by the agent, and quarantined for it.
    // From then on it reaches the VLE (by name, and its address) and nothing else.
    let vle = "vle.198-51-100-22.ip.lab";
    assert_eq!(lab.curl(SCHOOL.name, "http://198.51.100.10/"), Some(0));
    lab.dig(SCHOOL.name, RESOLVER, "www.bbc.co.uk", "A", &[]);
    assert!(
        eventually(5, || lab.curl(SCHOOL.name, "http://198.51.100.10/")
            == Some(7)),
        "the tablet was not quarantined: {}",
        lab.log("agent")
    );
    let d = lab.dig(SCHOOL.name, GATEWAY, "www.bbc.co.uk", "A", &[]);
    assert_ne!(d.first("A"), Some(WEB), "{}", d.raw);
    assert!(
        d.ede.as_deref().unwrap_or_default().contains("quarantined"),
        "{}",
        d.raw
    );
    assert_eq!(
        lab.dig(SCHOOL.name, GATEWAY, vle, "A", &[]).first("A"),
        Some("198.51.100.22")
    );
    assert!(
        eventually(5, || lab.curl(SCHOOL.name, &format!("http://{vle}/"))
            == Some(0)),
        "the quarantined tablet cannot reach the VLE: {}",
        lab.log("agent")
    );
    // Others are not affected.
    assert_eq!(lab.curl(PUPIL.name, "http://198.51.100.10/"), Some(0));

    // DoT is refused for everyone; QUIC for the filtered pupils only.
    assert!(!dot_answers(&lab, PUPIL.name), "DoT passed for a pupil");
    assert!(!dot_answers(&lab, STAFF.name), "DoT passed for staff");
    assert!(!quic_works(&lab, PUPIL.name), "QUIC passed for a pupil");
    assert!(quic_works(&lab, STAFF.name), "QUIC refused for staff");

    // Every rule's counter is on /metrics.
    let metrics = lab.metrics();
    let counted = |chain: &str, rule: &str| -> u64 {
        let line =
            format!("schoolgate_firewall_rule_packets_total{{chain=\"{chain}\",rule=\"{rule}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {chain}/{rule} counter: {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(counted("forward", "dns_over_tls") >= 2, "{metrics}");
    assert!(counted("dns", "external_dns_logged") >= 5);
    assert!(counted("quarantined", "quarantine_refused") >= 1);
    assert!(counted("group_pupils", "quic") >= 1);
    assert!(metrics.contains("schoolgate_firewall_learned_addresses "));
    assert!(metrics.trim_end().ends_with("# EOF"));

    // An address listed for a blocked category is refused to pupils once the list is saved,
    // and let through again when it is taken out; staff, whom no rule stops, pass throughout.
    let endpoint = "http://198.51.100.21/";
    assert_eq!(lab.curl(PUPIL.name, endpoint), Some(0));
    std::fs::write(
        lab.path("endpoints.txt"),
        "# VPN endpoints\n198.51.100.21\n",
    )
    .unwrap();
    assert!(
        eventually(5, || lab.curl(PUPIL.name, endpoint) == Some(7)),
        "the listed address was not refused: {}",
        lab.log("agent")
    );
    assert_eq!(lab.curl(STAFF.name, endpoint), Some(0));
    // (The list's change reloaded the table, so its counters started again from zero.)
    assert!(lab.metrics().contains(
        "schoolgate_firewall_rule_packets_total{chain=\"group_pupils\",rule=\"listed_address\"} 1\n"
    ));
    std::fs::write(lab.path("endpoints.txt"), "# VPN endpoints\n").unwrap();
    assert!(
        eventually(5, || lab.curl(PUPIL.name, endpoint) == Some(0)),
        "the address stayed refused after it left the list: {}",
        lab.log("agent")
    );

    // Plain web traffic still flows.
    assert_eq!(lab.curl(PUPIL.name, "http://198.51.100.10/"), Some(0));

    // fail_closed: stopped, the table stays, and DNS still cannot go round the gateway.
    lab.stop_cleanly("agent");
    // Asking outside resolvers was reported: the pupil's with an alert, the tablet's with
    // its quarantine.
    let events = lab.events();
    let attempt = |ip: &str, to: &str| {
        events.iter().find(|e| {
            e["kind"] == "bypass_attempt"
                && e["technique"] == "external_dns"
                && e["device"]["ip"] == ip
                && e["destination"] == to
        })
    };
    let pupil = attempt(PUPIL.ip, "198.51.100.53:53")
        .unwrap_or_else(|| panic!("no attempt reported: {events:#?}"));
    assert_eq!(pupil["severity"], "high");
    // Over UDP and over TCP: the first sent at once, the repeat counted in a follow-up.
    let sightings: u64 = events
        .iter()
        .filter(|e| {
            e["kind"] == "bypass_attempt"
                && e["device"]["ip"] == PUPIL.ip
                && e["destination"] == "198.51.100.53:53"
        })
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        (pupil["count"].as_u64(), sightings),
        (Some(1), 2),
        "{events:#?}"
    );
    assert!(attempt(PUPIL.ip, "192.0.2.200:53").is_some());
    assert!(attempt(PUPIL.ip6, "[2001:db8:100::53]:53").is_some());
    assert!(
        pupil["evidence"]
            .as_str()
            .unwrap()
            .contains("www.instagram.com"),
        "{pupil}"
    );
    let tablet = attempt(SCHOOL.ip, "198.51.100.53:53").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(tablet["device"]["name"], "Tablet-1");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "quarantined" && e["device"]["ip"] == SCHOOL.ip),
        "{events:#?}"
    );
    assert!(attempt(STAFF.ip, "198.51.100.53:53").is_some());
    // DNS asked of the gateway itself is no attempt.
    assert!(
        !events.iter().any(|e| e["destination"]
            .as_str()
            .is_some_and(|d| d.starts_with(GATEWAY) || d.contains(GATEWAY6))),
        "{events:#?}"
    );
    assert!(has_our_table(&lab), "fail_closed removed the table");
    let d = lab.dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &[]);
    assert_ne!(
        d.first("A"),
        Some(WEB),
        "DNS went round the stopped agent: {}",
        d.raw
    );
    assert!(
        !dot_answers(&lab, PUPIL.name),
        "DoT passed with the agent stopped"
    );

    // A restart picks the table up; fail_open removes it on stop, leaving the gateway's
    // ruleset exactly as it was before the agent first ran.
    std::fs::write(lab.path("policy.yaml"), policy(&lab, "fail_open")).unwrap();
    start_agent(&mut lab, "agent2");
    assert!(
        eventually(15, || lab
            .dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &[])
            .first("A")
            == Some(GATEWAY)),
        "the agent did not come back: {}",
        lab.log("agent2")
    );
    assert!(lab.log("agent2").contains("picked up the firewall table"));
    assert_eq!(
        lab.curl(SCHOOL.name, "http://198.51.100.10/"),
        Some(7),
        "the restart released the quarantined tablet"
    );
    lab.stop_cleanly("agent2");
    assert!(!has_our_table(&lab), "fail_open left the table");
    assert_eq!(
        ruleset(&lab),
        before,
        "the agent changed something outside its table"
    );
    assert_eq!(
        lab.dig(PUPIL.name, RESOLVER, "www.instagram.com", "A", &[])
            .first("A"),
        Some(WEB),
        "fail_open: the network works unfiltered"
    );
}

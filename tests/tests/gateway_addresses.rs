//! Addresses the firewall learns from DNS, on a gateway built from network namespaces: a
//! pupil who connects to a blocked site by address is refused in the school day and let
//! through after it, to the second; an address shared with an allowed name is not refused; a
//! block that starts at the same boundary takes effect then; an address the policy lists
//! follows the same boundary; and neither a policy reload nor the boundary drops an
//! established connection.
//!
//! The agent's clock starts at 15:29:45 on a school Tuesday (`--clock-from`), so the school
//! day ends 15 s into the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use schoolgate_tests::lab::{self, GATEWAY, GATEWAY6, Lab, PUPIL, RESOLVER, STAFF, eventually};
use schoolgate_tests::require_lab;

/// When the agent's clock starts, and how far that is from the end of the school day.
const CLOCK_FROM: &str = "2026-11-24T15:29:45Z";
const TO_BOUNDARY: Duration = Duration::from_secs(15);

/// `extra_vle` changes the policy without changing what the test looks at (for a reload).
fn policy(lab: &Lab, extra_vle: &str) -> String {
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
calendar:
  terms: [{{ name: Autumn, from: 2026-09-01, to: 2026-12-18 }}]
schedules:
  school_day: {{ days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true, label: in the school day }}
  after_school: {{ days: [mon, tue, wed, thu, fri], times: ["15:30-16:00"], label: after school }}
categories:
  social_networking: {{ domains: [photos.198-51-100-20.ip.lab, photos.198-51-100-21.ip.lab] }}
  games: {{ domains: [games.198-51-100-23.ip.lab] }}
  game_servers: {{ domains: [198.51.100.24/31] }}
  vle: {{ domains: [vle.198-51-100-22.ip.lab{extra_vle}] }}
groups:
  pupils: {{ networks: [10.77.0.0/28, "2001:db8:77::100/120"] }}
  staff: {{ networks: [10.77.0.16/28, "2001:db8:77::200/120"] }}
rules:
  - {{ name: VLE always, groups: [all], allow: [vle] }}
  - {{ name: Pupils off social in the school day, groups: [pupils], block: [social_networking], when: school_day }}
  - {{ name: No games after school, groups: [pupils], block: [games, game_servers], when: after_school }}
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53", "[{GATEWAY6}]:53"]
    upstreams: ["{RESOLVER}"]
    block_response: nxdomain
  state_dir: {state}
  firewall: {{ on_stop: fail_open }}
"#,
        state = lab.path("state").display(),
    )
}

/// The pupils' set of refused IPv4 addresses, as `nft` lists it.
fn refused(lab: &Lab) -> String {
    let out = lab.exec(
        "gw",
        &[
            "nft",
            "list",
            "set",
            "inet",
            "schoolgate",
            "blocked_group_pupils_v4",
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `curl` to `name` on port 80 at `ip` without asking DNS: 0 connected, 7 refused.
fn curl_at(lab: &Lab, host: &str, name: &str, ip: &str) -> Option<i32> {
    let resolve = format!("{name}:80:{ip}");
    let url = format!("http://{name}/");
    lab.exec(
        host,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "3",
            "--resolve",
            &resolve,
            &url,
        ],
    )
    .status
    .code()
}

#[test]
fn learned_addresses_follow_the_school_day() {
    require_lab!();
    let mut lab = Lab::up();
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn("inet", "resolver", &[peer, "dns", "198.51.100.53:53"]);
    let sites: Vec<String> = lab::SITES.iter().map(|s| format!("{s}:80")).collect();
    let mut web = vec![peer, "http"];
    web.extend(sites.iter().map(String::as_str));
    lab.spawn("inet", "web", &web);
    lab.spawn("inet", "echo", &[peer, "echo", "198.51.100.22:7"]);
    std::fs::write(lab.path("policy.yaml"), policy(&lab, "")).unwrap();

    let policy_path = lab.path("policy.yaml");
    let started = Instant::now();
    lab.spawn_agent(
        "agent",
        &policy_path,
        &["--no-inspection", "--clock-from", CLOCK_FROM],
    );
    assert!(
        eventually(10, || lab
            .dig(STAFF.name, GATEWAY, "www.bbc.co.uk", "A", &[])
            .first("A")
            .is_some()),
        "the agent never came up: {}",
        lab.log("agent")
    );

    // Before the agent knows the site's address, a pupil who has it gets through.
    let (photos, photos_ip) = ("photos.198-51-100-20.ip.lab", "198.51.100.20");
    assert_eq!(curl_at(&lab, PUPIL.name, photos, photos_ip), Some(0));
    // Asking for the name is refused, and the agent looks the address up itself: from then
    // on the pupil cannot reach it by address either. Staff still can.
    let d = lab.dig(PUPIL.name, GATEWAY, photos, "A", &[]);
    assert_ne!(d.first("A"), Some(photos_ip), "{}", d.raw);
    assert!(
        eventually(5, || refused(&lab).contains(photos_ip)),
        "the address was never learned: {}\n{}",
        refused(&lab),
        lab.log("agent")
    );
    assert_eq!(curl_at(&lab, PUPIL.name, photos, photos_ip), Some(7));
    assert_eq!(curl_at(&lab, STAFF.name, photos, photos_ip), Some(0));

    // A shared address: refused while only the blocked name is known to use it, let through
    // once an allowed name answers with it too.
    let (shared_blocked, shared_allowed, shared_ip) = (
        "photos.198-51-100-21.ip.lab",
        "news.198-51-100-21.ip.lab",
        "198.51.100.21",
    );
    lab.dig(PUPIL.name, GATEWAY, shared_blocked, "A", &[]);
    assert!(
        eventually(5, || refused(&lab).contains(shared_ip)),
        "{}",
        refused(&lab)
    );
    assert_eq!(
        lab.dig(STAFF.name, GATEWAY, shared_allowed, "A", &[])
            .first("A"),
        Some(shared_ip)
    );
    assert!(
        eventually(5, || !refused(&lab).contains(shared_ip)),
        "a shared address stayed refused: {}",
        refused(&lab)
    );
    assert_eq!(
        curl_at(&lab, PUPIL.name, shared_allowed, shared_ip),
        Some(0)
    );

    // Games are allowed now and blocked from 15:30: the pupil's answer is learned, not refused.
    let (games, games_ip) = ("games.198-51-100-23.ip.lab", "198.51.100.23");
    assert_eq!(
        lab.dig(PUPIL.name, GATEWAY, games, "A", &[]).first("A"),
        Some(games_ip)
    );
    assert!(!refused(&lab).contains(games_ip));

    // An established connection (to the VLE's address) kept busy across a reload and the
    // boundary.
    let talk_for = TO_BOUNDARY.saturating_sub(started.elapsed()) + Duration::from_secs(4);
    lab.spawn(
        PUPIL.name,
        "talk",
        &[
            peer,
            "talk",
            "198.51.100.22:7",
            &talk_for.as_secs().to_string(),
        ],
    );
    assert!(
        eventually(5, || lab.log("talk").contains("connected")),
        "{}",
        lab.log("talk")
    );
    std::fs::write(
        lab.path("policy.yaml"),
        policy(&lab, ", vle2.198-51-100-22.ip.lab"),
    )
    .unwrap();
    assert!(
        eventually(5, || lab
            .log("agent")
            .matches("firewall table loaded")
            .count()
            >= 2),
        "the reload never loaded a table: {}",
        lab.log("agent")
    );
    // The blocked address is still refused after the reload.
    assert!(refused(&lab).contains(photos_ip), "{}", refused(&lab));

    // A listed game server is reached until 15:30.
    let server = "http://198.51.100.24/";
    assert_eq!(lab.curl(PUPIL.name, server), Some(0));

    // 15:30:00: the school day ends and the after-school block starts.
    let boundary = started + TO_BOUNDARY;
    std::thread::sleep(boundary.saturating_duration_since(Instant::now()));
    assert!(
        eventually(2, || !refused(&lab).contains(photos_ip)
            && refused(&lab).contains(games_ip)),
        "not changed within 2 s of the boundary: {}\n{}",
        refused(&lab),
        lab.log("agent")
    );
    assert!(
        eventually(2, || lab.curl(PUPIL.name, server) == Some(7)),
        "the listed game server was not refused after 15:30: {}",
        lab.log("agent")
    );
    assert_eq!(lab.curl(STAFF.name, server), Some(0));
    assert_eq!(curl_at(&lab, PUPIL.name, photos, photos_ip), Some(0));
    assert_eq!(curl_at(&lab, PUPIL.name, games, games_ip), Some(7));
    assert_eq!(
        lab.wait("talk", Duration::from_secs(10)),
        Some(0),
        "the established connection broke: {}",
        lab.log("talk")
    );
    lab.stop_cleanly("agent");
}

//! The firewall's table, built from policies without a kernel: a snapshot for the shipped
//! policy, group placement, QUIC per group, learned and quarantine sets; and, where `nft`
//! and network namespaces are at hand, the kernel's own check of the text in a namespace
//! of its own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use schoolgate_engine::Policy;
use schoolgate_engine::policy::GroupId;
use schoolgate_gateway::firewall::learned::Scope;
use schoolgate_gateway::firewall::listed;
use schoolgate_gateway::firewall::placed::Placed;
use schoolgate_gateway::firewall::ruleset::{self, Changes, Filled, Quarantined, Settings, State};

use super::repo;

fn shipped() -> Policy {
    let path = repo().join("policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    Policy::from_yaml(&text, &path, &|p: &Path| std::fs::read_to_string(p)).unwrap()
}

fn small(yaml_groups: &str) -> Policy {
    let text = format!(
        "version: 1
school: {{ name: T, timezone: Europe/London }}
categories: {{ social: {{ domains: [facebook.com] }} }}
groups:
{yaml_groups}
rules:
  - {{ name: No social, groups: [pupils], block: [social] }}
"
    );
    Policy::from_yaml(&text, Path::new("t.yaml"), &|_: &Path| {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    })
    .unwrap()
}

fn settings() -> Settings {
    Settings::new(
        vec!["lan0".to_owned()],
        &[
            "10.0.0.1:53".parse().unwrap(),
            "[fd00::1]:53".parse().unwrap(),
        ],
    )
}

fn group(p: &Policy, name: &str) -> GroupId {
    GroupId(p.groups().iter().position(|g| g.name == name).unwrap() as u32)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Compares with the snapshot file; `SNAPSHOTS=update` rewrites it.
fn snapshot(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("SNAPSHOTS").as_deref() == Ok("update") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SNAPSHOTS=update writes it)", path.display()));
    assert!(
        want == text,
        "{} differs from the built table (SNAPSHOTS=update rewrites it):\n{text}",
        path.display()
    );
}

#[test]
fn the_shipped_policy_makes_this_table() {
    let p = shipped();
    let mut state = State::default();
    state.blocked.insert(
        Scope::Group(Some(group(&p, "pupils"))),
        vec![(ip("198.51.100.20"), 300), (ip("2001:db8:100::20"), 60)],
    );
    state.quarantined = Quarantined {
        ips: vec![ip("10.10.3.9")],
        macs: vec!["52:54:00:aa:bb:cd".parse().unwrap()],
    };
    state.quarantine_allow = vec![(ip("198.51.100.40"), 3600)];
    let tuesday = schoolgate_engine::instant::parse_instant("2026-11-24T10:00", p.timezone());
    state.listed = listed::enforce(&p, &Placed::default(), tuesday.unwrap());
    let text = ruleset::build(&p, &settings(), &state);
    snapshot("shipped-policy.nft", &text);
    kernel_accepts(&text);
}

#[test]
fn devices_go_to_their_group_before_networks_and_nested_networks_win() {
    let p = small(
        "  pupils:
    networks: [10.10.0.0/16]
  staff:
    networks: [10.10.5.0/24]
    devices: [{ mac: \"52:54:00:00:00:01\", name: Head }, { ip: 10.10.9.9, name: Desk }]
  default: {}
",
    );
    let text = ruleset::build(&p, &settings(), &State::default());
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in\n{text}"))
            .to_owned()
    };
    assert!(line("map group_mac").contains("52:54:00:00:00:01 : goto group_staff"));
    let v4 = line("map group_v4");
    for want in [
        "10.10.0.0-10.10.4.255 : goto group_pupils",
        "10.10.5.0/24 : goto group_staff",
        "10.10.6.0-10.10.9.8 : goto group_pupils",
        "10.10.9.9 : goto group_staff",
        "10.10.9.10-10.10.255.255 : goto group_pupils",
    ] {
        assert!(v4.contains(want), "{want} not in {v4}");
    }
    // Devices the policy places nowhere else fall to the default group.
    let forward: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("chain forward"))
        .take_while(|l| l.trim() != "}")
        .collect();
    assert_eq!(
        forward.last().unwrap().trim(),
        "counter goto group_default comment \"default_group\""
    );
}

#[test]
fn quic_is_refused_for_filtered_groups_unless_they_allow_it() {
    let p = small(
        "  pupils: { networks: [10.10.0.0/16] }
  filtered_but_allowed: { networks: [10.12.0.0/16], quic: allow }
  staff: { networks: [10.20.0.0/16] }
  lab: { networks: [10.30.0.0/16], quic: block }
",
    );
    let text = ruleset::build(&p, &settings(), &State::default());
    let chain = |name: &str| -> String {
        text.lines()
            .skip_while(|l| l.trim() != format!("chain {name} {{"))
            .take_while(|l| l.trim() != "}")
            .collect::<Vec<_>>()
            .join("\n")
    };
    let quic = "udp dport 443 counter reject";
    assert!(chain("group_pupils").contains(quic), "pupils are filtered");
    assert!(!chain("group_filtered_but_allowed").contains(quic));
    assert!(
        !chain("group_staff").contains(quic),
        "no rule filters staff"
    );
    assert!(chain("group_lab").contains(quic), "asked for");
    // DoT and DoQ are refused for every device on the LAN.
    assert!(chain("forward").contains("tcp dport 853 counter reject with tcp reset"));
    assert!(chain("forward").contains("udp dport 853 counter reject"));
}

#[test]
fn learned_and_quarantine_sets_carry_their_timeouts() {
    let p = small("  pupils: { networks: [10.10.0.0/16] }\n");
    let pupils = group(&p, "pupils");
    let mut blocked = BTreeMap::new();
    blocked.insert(
        Scope::Group(Some(pupils)),
        vec![
            (ip("198.51.100.21"), 30_000),
            (ip("198.51.100.20"), 300_500),
            // Already expired: left out.
            (ip("198.51.100.22"), 0),
        ],
    );
    let state = State {
        blocked,
        quarantined: Quarantined {
            ips: vec![ip("10.10.0.7"), ip("fd00:10::7")],
            macs: vec![],
        },
        quarantine_allow: vec![],
        listed: Default::default(),
        placed: Placed::default(),
    };
    let text = ruleset::build(&p, &settings(), &state);
    assert!(text.contains(
        "set blocked_group_pupils_v4 { type ipv4_addr; flags timeout; size 131072; elements = { 198.51.100.20 timeout 300500ms, 198.51.100.21 timeout 30000ms }; }"
    ));
    assert!(!text.contains("198.51.100.22"));
    assert!(text.contains("set quarantine_v4 { type ipv4_addr; elements = { 10.10.0.7 }; }"));
    assert!(text.contains("set quarantine_v6 { type ipv6_addr; elements = { fd00:10::7 }; }"));
    // Quarantine is checked before established connections are let through.
    let q = text.find("ip saddr @quarantine_v4").unwrap();
    let est = text
        .find("ct state established,related counter accept")
        .unwrap();
    assert!(q < est);
}

#[test]
fn learned_addresses_change_without_reloading_the_table() {
    let p = small("  pupils: { networks: [10.10.0.0/16] }\n");
    let pupils = group(&p, "pupils");
    let changes = Changes {
        add: vec![
            (
                Filled::Blocked(Scope::Group(Some(pupils))),
                ip("198.51.100.20"),
                60_000,
            ),
            (
                Filled::Blocked(Scope::Group(Some(pupils))),
                ip("2001:db8:100::20"),
                60_000,
            ),
            (Filled::Blocked(Scope::Group(None)), ip("198.51.100.21"), 0),
            (Filled::QuarantineAllow, ip("198.51.100.60"), 900_000),
        ],
        remove: vec![(
            Filled::Blocked(Scope::Group(Some(pupils))),
            ip("198.51.100.30"),
        )],
    };
    assert_eq!(
        ruleset::update(&p, &changes),
        "add element inet schoolgate blocked_group_pupils_v4 { 198.51.100.20 timeout 60000ms }\n\
         add element inet schoolgate blocked_group_pupils_v6 { 2001:db8:100::20 timeout 60000ms }\n\
         add element inet schoolgate blocked_no_group_v4 { 198.51.100.21 timeout 1ms }\n\
         add element inet schoolgate quarantine_allow_v4 { 198.51.100.60 timeout 900000ms }\n\
         delete element inet schoolgate blocked_group_pupils_v4 { 198.51.100.30 }\n"
    );
    // The kernel takes it after the table (checked in a namespace of its own).
    let table = ruleset::build(&p, &settings(), &State::default());
    let both = format!(
        "{table}{}",
        ruleset::update(
            &p,
            &Changes {
                remove: vec![],
                ..changes
            }
        )
    );
    kernel_accepts(&both);
}

#[test]
fn blocked_connections_are_refused_by_their_four_addresses_before_established_ones_pass() {
    let p = small("  pupils: { networks: [10.10.0.0/16] }\n");
    let sock = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
    let v4 = ruleset::block_tcp(sock("10.10.4.21:50123"), sock("198.51.100.7:443"), 120_000);
    assert_eq!(
        v4,
        "add element inet schoolgate tcp_block_v4 { 10.10.4.21 . 198.51.100.7 . 50123 . 443 timeout 120000ms }\n"
    );
    let v6 = ruleset::block_tcp(
        sock("[2001:db8:77::20]:50124"),
        sock("[2001:db8:100::7]:443"),
        120_000,
    );
    assert!(v6.contains("tcp_block_v6 { 2001:db8:77::20 . 2001:db8:100::7 . 50124 . 443 "));
    // Mixed families name no connection.
    assert_eq!(
        ruleset::block_tcp(sock("10.10.4.21:1"), sock("[2001:db8::1]:443"), 1),
        ""
    );
    let table = ruleset::build(&p, &settings(), &State::default());
    let refused = table
        .find("tcp sport . tcp dport @tcp_block_v4 counter reject with tcp reset")
        .unwrap();
    let est = table
        .find("ct state established,related counter accept")
        .unwrap();
    assert!(refused < est, "a refused connection is established");
    kernel_accepts(&format!("{table}{v4}{v6}"));
}

/// A pupil's PC, a Year 6 group from the directory, and 6B's exception for video.
const PEOPLE: &str = "version: 1
school: { name: T, timezone: Europe/London }
categories: { video: { domains: [youtube.com] }, social: { domains: [facebook.com] } }
groups:
  pupils: { networks: [10.10.0.0/16] }
  year6: { directory: [Year 6] }
rules:
  - { name: No video, groups: [pupils, year6], block: [video] }
exceptions:
  - { name: 6B film, classes: [6b], allow: [video], from: 2026-11-24T09:00, to: 2026-11-24T15:00, approved_by: J. Director }
";

#[test]
fn signed_in_people_get_a_chain_of_their_own_and_move_between_them_in_place() {
    use schoolgate_engine::{Client, PersonView};
    use schoolgate_gateway::firewall::learned::Learned;
    let p = Policy::from_yaml(PEOPLE, Path::new("t.yaml"), &|_: &Path| {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    })
    .unwrap();
    let groups = ["Year 6".to_owned()];
    let signed_in = |addr: &str, class: &str| {
        let c = Client::new(ip(addr), None);
        let mut id = p.identify(&c);
        id.person = Some(p.identify_person(&PersonView {
            username: "pupil",
            class: Some(class),
            groups: &groups,
        }));
        (id, c)
    };
    let placed = Placed::new(
        &p,
        [signed_in("10.10.4.21", "6B"), signed_in("10.10.4.22", "6A")],
    );
    assert_eq!(placed.profiles.len(), 2);
    // youtube.com's address, learned from an answer during 6B's lesson.
    let lesson: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    let mut learned = Learned::default();
    learned.learn(
        "youtube.com",
        [(ip("198.51.100.80"), 300)],
        lesson.as_millisecond(),
    );
    let wanted = learned.enforce(&p, &placed, lesson);
    let six_b = Scope::Placed(placed.at[&ip("10.10.4.21")]);
    let six_a = Scope::Placed(placed.at[&ip("10.10.4.22")]);
    let holds = |s: Scope| {
        wanted
            .blocked
            .get(&s)
            .is_some_and(|l| l.iter().any(|(a, _)| *a == ip("198.51.100.80")))
    };
    assert!(holds(Scope::Group(Some(group(&p, "pupils")))), "{wanted:?}");
    assert!(holds(six_a), "6A is refused: {wanted:?}");
    assert!(!holds(six_b), "6B may reach it in the lesson: {wanted:?}");

    let state = State {
        blocked: wanted.blocked.clone(),
        placed: placed.clone(),
        ..State::default()
    };
    let table = ruleset::build(&p, &settings(), &state);
    let n = |a: &str| placed.at[&ip(a)];
    assert!(table.contains(&format!(
        "map who_v4 {{ type ipv4_addr : verdict; elements = {{ 10.10.4.21 : goto placed_{}, 10.10.4.22 : goto placed_{} }}; }}",
        n("10.10.4.21"),
        n("10.10.4.22")
    )));
    assert!(table.contains(&format!(
        "ip daddr @blocked_placed_{}_v4 counter goto refuse",
        n("10.10.4.22")
    )));
    // Signed in before the jump by group, after quarantine and established connections.
    let who = table.find("ip saddr vmap @who_v4").unwrap();
    assert!(table.find("goto quarantined").unwrap() < who);
    assert!(who < table.find("ether saddr vmap @group_mac").unwrap());

    // A second 6B pupil signs in, the 6A pupil signs out: addresses move, no reload.
    let later = Placed::new(
        &p,
        [signed_in("10.10.4.21", "6B"), signed_in("10.10.4.23", "6b")],
    );
    assert!(!later.same_profiles(&placed), "6A's profile is gone");
    let again = Placed::new(
        &p,
        [
            signed_in("10.10.4.21", "6B"),
            signed_in("10.10.4.22", "6A"),
            signed_in("10.10.4.23", "6b"),
        ],
    );
    assert!(again.same_profiles(&placed));
    let moved = ruleset::replace(&placed, &again);
    assert_eq!(
        moved,
        format!(
            "add element inet schoolgate who_v4 {{ 10.10.4.23 : goto placed_{} }}\n",
            n("10.10.4.21")
        )
    );
    let back = ruleset::replace(&again, &placed);
    assert_eq!(
        back,
        "delete element inet schoolgate who_v4 { 10.10.4.23 }\n"
    );
    kernel_accepts(&format!("{table}{moved}"));
}

#[test]
fn listed_addresses_are_refused_per_group_and_follow_the_schedule() {
    let yaml = "version: 1
school: { name: T, timezone: Europe/London }
calendar: { terms: [{ name: Autumn, from: 2026-09-03, to: 2026-12-18 }] }
schedules:
  school_day: { days: [mon, tue, wed, thu, fri], times: [\"08:30-15:30\"], term_time: true }
categories:
  resolvers: { domains: [dns.example, 192.0.2.53, \"2001:db8:53::53\"] }
  tor: { lists: [tor.txt] }
  vle: { domains: [vle.example, 192.0.2.80] }
groups:
  pupils: { networks: [10.10.0.0/16] }
  staff: { networks: [10.20.0.0/16] }
rules:
  - { name: No resolvers, groups: [pupils], block: [resolvers] }
  - { name: No Tor in the day, groups: [pupils, staff], block: [tor], when: school_day }
bypass: { quarantine_allow: [vle] }
";
    let p = Policy::from_yaml(yaml, Path::new("/p/t.yaml"), &|_: &Path| {
        Ok("# relays\n198.51.100.0/30\n198.51.100.9\n".to_owned())
    })
    .unwrap();
    let at = |t: &str| schoolgate_engine::instant::parse_instant(t, p.timezone()).unwrap();
    let day = listed::enforce(&p, &Placed::default(), at("2026-11-24T10:00"));
    let evening = listed::enforce(&p, &Placed::default(), at("2026-11-24T15:30"));
    let state = State {
        listed: day.clone(),
        ..State::default()
    };
    let text = ruleset::build(&p, &settings(), &state);
    for want in [
        "set listed_group_pupils_v4 { type ipv4_addr; flags interval; elements = { 192.0.2.53, 198.51.100.0/30, 198.51.100.9 }; }",
        "set listed_group_pupils_v6 { type ipv6_addr; flags interval; elements = { 2001:db8:53::53 }; }",
        "set listed_group_staff_v4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/30, 198.51.100.9 }; }",
        "set listed_no_group_v4 { type ipv4_addr; flags interval; }",
        "set listed_quarantine_allow_v4 { type ipv4_addr; flags interval; elements = { 192.0.2.80 }; }",
        "ip daddr @listed_group_staff_v4 counter goto refuse comment \"listed_address\"",
        "ip daddr @listed_quarantine_allow_v4 counter accept comment \"quarantine_allow_listed\"",
    ] {
        assert!(text.contains(want), "{want}\nnot in\n{text}");
    }
    // At 15:30 the Tor block ends: only the sets that change are flushed and filled again.
    let relist = ruleset::relist(&p, &Placed::default(), &day, &evening);
    assert_eq!(
        relist,
        "flush set inet schoolgate listed_group_pupils_v4\n\
         add element inet schoolgate listed_group_pupils_v4 { 192.0.2.53 }\n\
         flush set inet schoolgate listed_group_staff_v4\n"
    );
    assert_eq!(
        ruleset::relist(&p, &Placed::default(), &evening, &evening),
        ""
    );
    kernel_accepts(&format!("{text}{relist}"));
}

#[test]
fn dns_goes_to_the_resolver_whatever_address_was_asked() {
    let p = small("  pupils: { networks: [10.10.0.0/16] }\n");
    let text = ruleset::build(&p, &settings(), &State::default());
    for want in [
        "iifname { \"lan0\" } meta nfproto ipv4 udp dport 53 counter dnat ip to 10.0.0.1:53",
        "iifname { \"lan0\" } meta nfproto ipv4 tcp dport 53 counter dnat ip to 10.0.0.1:53",
        "iifname { \"lan0\" } meta nfproto ipv6 udp dport 53 counter dnat ip6 to [fd00::1]:53",
    ] {
        assert!(text.contains(want), "{want}");
    }
    // Listening on every address: the interface's own; no IPv6 listener: port 53 anyway.
    let any = Settings::new(vec!["lan0".into()], &["0.0.0.0:5353".parse().unwrap()]);
    let text = ruleset::build(&p, &any, &State::default());
    assert!(text.contains("meta nfproto ipv4 udp dport 53 counter redirect to :5353"));
    assert!(text.contains("meta nfproto ipv6 udp dport 53 counter redirect to :53"));
}

#[test]
fn removal_touches_only_the_agents_table() {
    assert_eq!(
        ruleset::removal(),
        "table inet schoolgate {}\ndelete table inet schoolgate\n"
    );
}

/// Lets the kernel check `text` (`nft -c`) inside a network namespace of its own, so nothing
/// on this machine changes. Skipped, saying why, where that cannot be done.
#[allow(clippy::print_stderr, reason = "a skipped check says why")]
fn kernel_accepts(text: &str) {
    let ok = Command::new("unshare")
        .args(["--net", "nft", "-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        });
    match ok {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("Operation not permitted") && std::env::var_os("CI").is_none() {
                eprintln!("skipped the kernel check (not root): {err}");
            } else {
                panic!("nft refused the table:\n{err}\n{text}");
            }
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped the kernel check (no unshare/nft): {e}");
        }
        Err(e) => panic!("CI must run the kernel check: {e}"),
    }
}

//! The daemon on a gateway built from network namespaces: pupils, staff, a school computer,
//! a pupil's phone and an outsider ask it with `dig` and `curl`; a fake resolver and fake web
//! sites play the internet.
//!
//! Time-dependent cases are set up by writing policies whose schedules cover the moment the
//! test runs (today's weekday, all day, in a term around today) or exclude it (tomorrow's
//! weekday), and editing the file on disk while the daemon runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan, tz::TimeZone};
use schoolgate_tests::lab::{
    self, Dig, GATEWAY, GATEWAY6, Lab, OUTSIDER, PHONE, PUPIL, SAFE_WEB, SCHOOL, STAFF, WEB,
    eventually,
};
use schoolgate_tests::require_lab;

const PUPILS_RULE: &str = "Pupils keep off social networking in the school day";
const SCHOOL_RULE: &str = "School computers never reach social networking";
const STAFF_RULE: &str = "No personal social networking in lessons";

/// The lab's policy. `in_school` puts now inside the school day and lessons (today's weekday)
/// or outside them (tomorrow's).
fn policy(lab: &Lab, in_school: bool) -> String {
    let now = Timestamp::now().to_zoned(TimeZone::UTC);
    let day = if in_school {
        now.clone()
    } else {
        now.checked_add(1.day()).unwrap()
    };
    let weekday = day.strftime("%a").to_string().to_lowercase();
    let (from, to) = (
        now.date().checked_sub(30.days()).unwrap(),
        now.date().checked_add(30.days()).unwrap(),
    );
    let (ex_from, ex_to) = (
        now.checked_sub(1.hour())
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M"),
        now.checked_add(1.hour())
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M"),
    );
    let state = lab.path("state");
    let leases = lab.path("dnsmasq.leases");
    format!(
        r#"version: 1
school: {{ name: Lab Primary School, timezone: UTC }}
calendar:
  terms:
    - {{ name: This term, from: {from}, to: {to} }}
schedules:
  school_day: {{ days: [{weekday}], times: ["00:00-23:59"], term_time: true, label: in the school day }}
  lessons: {{ days: [{weekday}], times: ["00:00-23:59"], term_time: true, label: in lesson time }}
categories:
  social_networking: {{ label: social networking, domains: [instagram.com, tiktok.com] }}
  youtube: {{ label: YouTube, domains: [youtube.com] }}
  vle: {{ label: the VLE, domains: [dbprimary.com] }}
groups:
  school_computers:
    devices:
      - {{ mac: "{school_mac}", name: ICT-Suite-01 }}
  pupils:
    networks: [10.77.0.0/28, "2001:db8:77::100/120"]
    safe_search: true
  pupil_wifi:
    networks: [10.77.0.32/28]
    report_presence: school_day
  staff:
    networks: [10.77.0.16/28, "2001:db8:77::200/120"]
    audience: staff
rules:
  - {{ name: VLE always reachable, groups: [all], allow: [vle] }}
  - {{ name: {SCHOOL_RULE}, groups: [school_computers], block: [social_networking], when: always }}
  - {{ name: {PUPILS_RULE}, groups: [pupils, pupil_wifi], block: [social_networking, youtube], when: school_day }}
  - {{ name: {STAFF_RULE}, groups: [staff], block: [social_networking], when: lessons }}
exceptions:
  - name: Year 6 media lesson
    groups: [pupils]
    allow: [youtube]
    from: {ex_from}
    to: {ex_to}
    approved_by: Head of Computing
    reason: Evaluating online video adverts
gateway:
  lan_interfaces: [lan0]
  dns:
    listen: ["{GATEWAY}:53", "[{GATEWAY6}]:53"]
    upstreams: ["{resolver}"]
    block_response: sinkhole
  block_page: {{ listen: "{GATEWAY}:80", listen_v6: "[{GATEWAY6}]:80" }}
  metrics: {{ listen: "127.0.0.1:9153" }}
  state_dir: {state}
  dhcp_leases:
    - {{ path: {leases}, format: dnsmasq }}
"#,
        school_mac = SCHOOL.mac,
        resolver = lab::RESOLVER,
        state = state.display(),
        leases = leases.display(),
    )
}

/// Writes `text` to `path` the way editors do: a new file renamed over the old.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn a(lab: &Lab, host: &str, name: &str) -> Dig {
    lab.dig(host, GATEWAY, name, "A", &[])
}

/// The value of the metric line starting with `prefix`, 0 if absent.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn gateway_dns_end_to_end() {
    require_lab!();
    // A day boundary between writing the policy and asking would flip which weekday is "now".
    let now = Timestamp::now().to_zoned(TimeZone::UTC);
    if now.hour() == 23 && now.minute() >= 58 {
        std::thread::sleep(Duration::from_secs(150));
    }
    let mut lab = Lab::up();
    let policy_path = lab.path("policy.yaml");
    save(&policy_path, &policy(&lab, true));
    // The pupil's laptop has a lease; the phone's arrives while the daemon runs.
    let leases = lab.path("dnsmasq.leases");
    std::fs::write(
        &leases,
        format!("0 {} {} pupil-laptop *\n", PUPIL.mac, PUPIL.ip),
    )
    .unwrap();
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let peer = peer.to_str().unwrap();
    lab.spawn(
        "inet",
        "resolver",
        &[peer, "dns", "198.51.100.53:53", "[2001:db8:100::53]:53"],
    );
    lab.spawn(
        "inet",
        "web",
        &[peer, "http", "198.51.100.10:80", "198.51.100.11:80"],
    );
    lab.spawn_agent("agent", &policy_path, &["--no-firewall", "--no-inspection"]);
    assert!(
        eventually(15, || a(&lab, PUPIL.name, "www.bbc.co.uk").first("A")
            == Some(WEB)),
        "the daemon never answered: {}",
        lab.log("agent")
    );
    std::fs::write(
        &leases,
        format!(
            "0 {} {} pupil-laptop *\n0 {} {} pupil-phone *\n",
            PUPIL.mac, PUPIL.ip, PHONE.mac, PHONE.ip
        ),
    )
    .unwrap();
    assert!(
        eventually(10, || lab.log("agent").matches("DHCP leases read").count()
            >= 2),
        "the lease file change was not seen: {}",
        lab.log("agent")
    );

    // In the school day: the pupil is blocked from Instagram, with the rule named in an
    // Extended DNS Error, and sent to the block page.
    let d = a(&lab, PUPIL.name, "www.instagram.com");
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    let ede = d.ede.clone().unwrap_or_default();
    assert!(
        ede.starts_with("15 (Blocked)") && ede.contains(PUPILS_RULE),
        "{}",
        d.raw
    );
    // AAAA over IPv6 points at the block page's IPv6 address.
    let d6 = lab.dig(PUPIL.name, GATEWAY6, "instagram.com", "AAAA", &["+tcp"]);
    assert_eq!(d6.first("AAAA"), Some(GATEWAY6), "{}", d6.raw);
    // Other types get NODATA.
    let mx = lab.dig(PUPIL.name, GATEWAY, "instagram.com", "MX", &[]);
    assert_eq!(
        (mx.status.as_str(), mx.answers.len()),
        ("NOERROR", 0),
        "{}",
        mx.raw
    );

    // The school computer is on the pupils' network, but its MAC makes it a school computer.
    let d = a(&lab, SCHOOL.name, "www.tiktok.com");
    assert!(
        d.ede.as_deref().unwrap_or_default().contains(SCHOOL_RULE),
        "{}",
        d.raw
    );
    // Staff in a lesson.
    let d = a(&lab, STAFF.name, "www.instagram.com");
    assert!(
        d.ede.as_deref().unwrap_or_default().contains(STAFF_RULE),
        "{}",
        d.raw
    );
    // The exception lets pupils (not the pupils' phones) use YouTube now; safe search still
    // applies, so it comes as restricted mode.
    let d = a(&lab, PUPIL.name, "www.youtube.com");
    assert_eq!(d.first("CNAME"), Some("restrict.youtube.com."), "{}", d.raw);
    assert_eq!(d.first("A"), Some(SAFE_WEB), "{}", d.raw);
    let d = a(&lab, PHONE.name, "www.youtube.com");
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    // The VLE, always.
    for h in [PUPIL, SCHOOL, STAFF, PHONE] {
        assert_eq!(
            a(&lab, h.name, "www.dbprimary.com").first("A"),
            Some(WEB),
            "{}",
            h.name
        );
    }
    // Outsiders are refused, over IPv4 and IPv6.
    assert_eq!(a(&lab, OUTSIDER.name, "www.bbc.co.uk").status, "REFUSED");
    assert_eq!(
        lab.dig(OUTSIDER.name, GATEWAY6, "www.bbc.co.uk", "A", &[])
            .status,
        "REFUSED"
    );

    // The four built-in defences, and ECH stripped for a filtered group.
    assert_eq!(
        a(&lab, STAFF.name, "use-application-dns.net").status,
        "NXDOMAIN"
    );
    assert_eq!(a(&lab, PUPIL.name, "mask.icloud.com").status, "NXDOMAIN");
    assert_eq!(
        lab.dig(PUPIL.name, GATEWAY, "mask-h2.icloud.com", "AAAA", &[])
            .status,
        "NXDOMAIN"
    );
    let ddr = lab.dig(PUPIL.name, GATEWAY, "_dns.resolver.arpa", "SVCB", &[]);
    assert_eq!(
        (ddr.status.as_str(), ddr.answers.len()),
        ("NOERROR", 0),
        "{}",
        ddr.raw
    );
    let direct = lab.dig("gw", lab::RESOLVER, "ech.lab", "HTTPS", &[]);
    assert!(
        direct.first("HTTPS").unwrap_or_default().contains("ech="),
        "{}",
        direct.raw
    );
    let https = lab.dig(PUPIL.name, GATEWAY, "ech.lab", "HTTPS", &[]);
    let record = https.first("HTTPS").unwrap_or_default();
    assert!(
        record.contains("alpn=") && !record.contains("ech="),
        "{}",
        https.raw
    );

    // Safe search for pupils: a CNAME to the safe host and its address; staff unchanged.
    let d = a(&lab, PUPIL.name, "www.google.com");
    assert_eq!(
        d.first("CNAME"),
        Some("forcesafesearch.google.com."),
        "{}",
        d.raw
    );
    assert_eq!(d.first("A"), Some(SAFE_WEB), "{}", d.raw);
    assert_eq!(a(&lab, STAFF.name, "www.google.com").first("A"), Some(WEB));

    // The block page: plain words for the pupil, the rule's name for staff.
    let curl = |host: &str, url: &str| {
        let out = lab.exec(
            host,
            &["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", url],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = curl(PUPIL.name, "http://www.instagram.com/");
    assert!(page.ends_with("\n403"), "{page}");
    assert!(
        page.contains("ask your teacher") && page.contains("www.instagram.com"),
        "{page}"
    );
    assert!(
        page.contains("social networking in the school day"),
        "{page}"
    );
    let page = curl(STAFF.name, "http://www.instagram.com/");
    assert!(
        page.contains(STAFF_RULE) && page.contains("listed as instagram.com"),
        "{page}"
    );
    // Hostile Host headers are escaped.
    let out = lab.exec(
        PUPIL.name,
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "-H",
            "Host: <script>x</script>",
            "http://10.77.0.1/",
        ],
    );
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        !page.contains("<script>x") && page.contains("&#60;script&#62;"),
        "{page}"
    );
    // HTTPS to a blocked name fails at once rather than hanging.
    let started = Instant::now();
    let out = lab.exec(
        PUPIL.name,
        &[
            "curl",
            "-s",
            "--max-time",
            "10",
            "https://www.instagram.com/",
        ],
    );
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(
        took < Duration::from_secs(2),
        "TLS to the sinkhole took {took:?}"
    );
    // Allowed names reach the site.
    assert_eq!(
        curl(PUPIL.name, "http://www.bbc.co.uk/"),
        "fake site www.bbc.co.uk\n\n200"
    );

    // The phone is reported present (its lease, read after the daemon started, names it).
    for _ in 0..3 {
        a(&lab, PHONE.name, "www.bbc.co.uk");
    }
    a(&lab, PUPIL.name, "www.instagram.com");

    // A broken edit leaves the last good policy in force.
    save(&policy_path, "version: 1\nschool: {");
    assert!(eventually(10, || metric(
        &lab.metrics(),
        "schoolgate_policy_reloads_total{outcome=\"rejected\"}"
    ) >= 1.0));
    assert_eq!(
        a(&lab, PUPIL.name, "www.instagram.com").first("A"),
        Some(GATEWAY)
    );

    // After the school day (a policy whose schedules exclude now): pupils and staff are
    // allowed; the school computer still is not.
    save(&policy_path, &policy(&lab, false));
    assert!(
        eventually(10, || a(&lab, PUPIL.name, "www.instagram.com").first("A")
            == Some(WEB)),
        "the edit was not applied: {}",
        lab.log("agent")
    );
    assert_eq!(
        a(&lab, STAFF.name, "www.instagram.com").first("A"),
        Some(WEB)
    );
    let d = a(&lab, SCHOOL.name, "www.tiktok.com");
    assert_eq!(d.first("A"), Some(GATEWAY), "{}", d.raw);
    assert_eq!(
        a(&lab, PUPIL.name, "www.google.com").first("A"),
        Some(SAFE_WEB)
    );

    // SIGHUP reloads (the files are unchanged, so the reload says so).
    let before = metric(
        &lab.metrics(),
        "schoolgate_policy_reloads_total{outcome=\"unchanged\"}",
    );
    lab.signal("agent", "HUP");
    assert!(eventually(5, || metric(
        &lab.metrics(),
        "schoolgate_policy_reloads_total{outcome=\"unchanged\"}"
    ) > before));

    // Metrics count what happened.
    let m = lab.metrics();
    assert!(
        metric(
            &m,
            &format!("schoolgate_dns_blocked_total{{rule=\"{PUPILS_RULE}\"}}")
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, "schoolgate_dns_queries_total{result=\"forwarded\"}") >= 5.0,
        "{m}"
    );
    assert!(metric(&m, "schoolgate_dns_cache_hits_total") >= 1.0, "{m}");
    assert!(
        metric(&m, "schoolgate_dns_upstream_latency_seconds_count") >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "schoolgate_block_page_tls_resets_total") >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "schoolgate_policy_reloads_total{outcome=\"applied\"}") >= 1.0,
        "{m}"
    );

    // A clean stop writes the aggregated events, then `agent_stopped`.
    lab.stop_cleanly("agent");
    let events = lab.events();
    let text = format!("{events:#?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"agent_started"), "{text}");
    assert_eq!(kinds.last(), Some(&"agent_stopped"), "{text}");
    assert!(
        kinds.contains(&"policy_rejected") && kinds.contains(&"policy_reloaded"),
        "{text}"
    );
    // A later record with an id already seen supersedes it (a follow-up's running count).
    let blocked = |ip: &str, name: &str| {
        let mut latest: Vec<&serde_json::Value> = Vec::new();
        for e in events
            .iter()
            .filter(|e| e["kind"] == "blocked" && e["device"]["ip"] == ip && e["name"] == name)
        {
            latest.retain(|l| l["id"] != e["id"]);
            latest.push(e);
        }
        latest
    };
    let pupil = blocked(PUPIL.ip, "www.instagram.com");
    // Five asks of one name by one device inside one window: the first sighting at once,
    // the repeats in one follow-up.
    assert_eq!(pupil.len(), 2, "{text}");
    assert_eq!(pupil[0]["count"], 1, "{text}");
    let asked: u64 = pupil.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert!(asked >= 4, "{text}");
    assert_eq!(pupil[0]["device"]["name"], "pupil-laptop");
    assert_eq!(pupil[0]["device"]["mac"], PUPIL.mac);
    assert_eq!(pupil[0]["group"], "pupils");
    assert_eq!(pupil[0]["rule"], PUPILS_RULE);
    let school = blocked(SCHOOL.ip, "www.tiktok.com");
    assert!(!school.is_empty(), "{text}");
    assert_eq!(school[0]["device"]["name"], "ICT-Suite-01");
    assert_eq!(school[0]["group"], "school_computers");
    let presence: Vec<_> = events.iter().filter(|e| e["kind"] == "presence").collect();
    assert_eq!(presence.len(), 1, "one report per device per day: {text}");
    assert_eq!(presence[0]["device"]["ip"], PHONE.ip);
    assert_eq!(
        presence[0]["device"]["name"],
        "pupil-phone",
        "{}",
        lab.log("agent")
    );
}

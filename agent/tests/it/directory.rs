//! The directory from a real slapd: read over LDAPS and StartTLS into pupils, staff and
//! classes; refused with a wrong password, an untrusted certificate or no server; and in the
//! daemon, read on start and on SIGHUP beside the roster, each read reported.

use std::path::Path;
use std::process::Command;

use schoolgate_agent::people::ldap::{LdapReadError, read};
use schoolgate_engine::policy::gateway::{DEFAULT_LDAP_FILTER, DEFAULT_LDAP_GROUPS_FILTER, Ldap};
use schoolgate_people::Role;

use crate::run::{Daemon, FakeUpstream, eventually, free_port, journaled};
use crate::slapd::{BIND_DN, SUFFIX, Slapd};

fn config(slapd: &Slapd, dir: &Path, url: &str, start_tls: bool) -> Ldap {
    Ldap {
        url: url.to_owned(),
        start_tls,
        ca_file: Some(slapd.ca_file()),
        bind_dn: BIND_DN.to_owned(),
        password_file: slapd.password_file(dir),
        base_dn: SUFFIX.to_owned(),
        filter: DEFAULT_LDAP_FILTER.to_owned(),
        groups_base_dn: format!("ou=groups,{SUFFIX}"),
        groups_filter: DEFAULT_LDAP_GROUPS_FILTER.to_owned(),
        username: "uid".to_owned(),
        display_name: "displayName".to_owned(),
        class: Some("departmentNumber".to_owned()),
        year: None,
        pupils: vec![format!("ou=pupils,ou=people,{SUFFIX}")],
        staff: vec!["staff".to_owned(), "Directors".to_owned()],
        sync_minutes: 15,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_directory_is_read_into_pupils_staff_and_classes_over_ldaps_and_starttls() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    for (url, start_tls) in [(slapd.ldaps.clone(), false), (slapd.ldap.clone(), true)] {
        let read = rt
            .block_on(read(&config(&slapd, dir.path(), &url, start_tls)))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let d = &read.directory;
        assert_eq!(d.len(), 4, "{url}");
        let amira = d.find("AMIRA.K").unwrap();
        assert_eq!(amira.role, Role::Pupil);
        assert_eq!(amira.display_name, "Amira Khan");
        assert_eq!(amira.class.as_deref(), Some("6B"));
        // 6B from the group's member and from memberOf alike; Year 6 through 6B.
        assert_eq!(amira.groups, ["Pupils", "6B", "Year 6"]);
        let ben = d.find("ben.t").unwrap();
        assert_eq!(ben.display_name, "Ben Taylor");
        assert_eq!(ben.groups, ["Pupils", "6A", "Year 6"]);
        let grace = d.find("grace.o").unwrap();
        assert_eq!(grace.role, Role::Staff);
        assert_eq!(grace.display_name, "Mrs Okafor");
        // From memberUid on a posixGroup.
        assert!(grace.in_group("staff"));
        let dan = d.find("dan.d").unwrap();
        assert_eq!(dan.role, Role::Staff);
        assert!(dan.in_group("Directors") && dan.in_group("staff"));
        // The service accounts: one without a uid, one in no role.
        let skipped = &read.skipped;
        assert_eq!((skipped.no_username, skipped.no_role), (1, 1), "{url}");
        assert!(d.find("backup").is_none());
    }
}

#[test]
fn a_wrong_password_an_untrusted_server_or_no_server_is_refused() {
    let mut slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut wrong = config(&slapd, dir.path(), &slapd.ldaps, false);
    wrong.password_file = dir.path().join("wrong");
    std::fs::write(&wrong.password_file, "not-the-password\n").unwrap();
    let e = rt.block_on(read(&wrong)).unwrap_err();
    assert!(matches!(e, LdapReadError::Bind { .. }), "{e}");
    assert!(e.to_string().contains(BIND_DN), "{e}");

    // A certificate the agent was not told to trust.
    let mut untrusted = config(&slapd, dir.path(), &slapd.ldaps, false);
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    untrusted.ca_file = Some(dir.path().join("other.pem"));
    std::fs::write(untrusted.ca_file.as_ref().unwrap(), other.cert.pem()).unwrap();
    let e = rt.block_on(read(&untrusted)).unwrap_err();
    assert!(matches!(e, LdapReadError::Connect { .. }), "{e}");

    // A filter that finds nobody in a role: refused, not an empty school.
    let mut nobody = config(&slapd, dir.path(), &slapd.ldaps, false);
    nobody.base_dn = format!("ou=service,{SUFFIX}");
    let e = rt.block_on(read(&nobody)).unwrap_err();
    assert!(matches!(e, LdapReadError::Map(_)), "{e}");

    slapd.stop();
    let e = rt
        .block_on(read(&config(&slapd, dir.path(), &slapd.ldaps, false)))
        .unwrap_err();
    assert!(matches!(e, LdapReadError::Connect { .. }), "{e}");
}

#[test]
fn the_daemon_reads_the_directory_beside_the_roster_and_keeps_it_through_an_outage() {
    let mut slapd = Slapd::start();
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let state = dir.path().join("state");
    slapd.password_file(dir.path());
    std::fs::write(
        dir.path().join("roster.csv"),
        "Username,Role,Class\namira.k,Pupil,6C\n",
    )
    .unwrap();
    // Paths relative to the policy's directory, as a school writes them.
    std::fs::write(
        &policy,
        format!(
            "version: 1\nschool: {{ name: Loopback School, timezone: Europe/London }}\n\
             groups:\n  pupils: {{ directory: [Pupils] }}\n\
             gateway:\n  dns: {{ block_response: nxdomain }}\n  roster: roster.csv\n  ldap:\n\
             \x20   url: {url}\n    ca_file: {ca}\n    bind_dn: \"{BIND_DN}\"\n\
             \x20   password_file: ldap.password\n    base_dn: \"{SUFFIX}\"\n\
             \x20   attributes: {{ username: uid, class: departmentNumber }}\n\
             \x20   pupils: [\"6A\", \"6B\"]\n    staff: [staff]\n",
            url = slapd.ldaps,
            ca = slapd.ca_file().display(),
        ),
    )
    .unwrap();
    let server = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::loopback(&policy, &server, upstream.addr, &state, &[]);
    let pid = daemon.0.id().to_string();
    let from_ldap = |e: &serde_json::Value| {
        e["evidence"]
            .as_str()
            .is_some_and(|t| t.starts_with("ldap "))
    };
    assert!(
        eventually(30, || journaled(&policy, &state, "directory_loaded")
            .iter()
            .any(from_ldap)),
        "the directory was never reported read"
    );
    let loaded = journaled(&policy, &state, "directory_loaded");
    let ldap = loaded.iter().find(|e| from_ldap(e)).unwrap();
    // amira.k, ben.t, grace.o, dan.d (staff by memberUid); the service accounts skipped.
    assert_eq!(ldap["count"], 4, "{ldap}");
    assert!(
        ldap["evidence"]
            .as_str()
            .unwrap()
            .ends_with("2 entries were not pupils or staff"),
        "{ldap}"
    );
    assert!(
        loaded
            .iter()
            .any(|e| e["evidence"] == "roster" && e["count"] == 1)
    );

    // The server goes away; SIGHUP asks at once: refused and reported, nothing else changes.
    slapd.stop();
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    hup();
    assert!(
        eventually(30, || !journaled(&policy, &state, "directory_rejected")
            .is_empty()),
        "the outage was never reported"
    );
    let rejected = &journaled(&policy, &state, "directory_rejected")[0];
    assert!(
        rejected["evidence"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot connect to {}", slapd.ldaps)),
        "{rejected}"
    );
    // Back: read again on the next asking.
    slapd.restart();
    hup();
    assert!(
        eventually(30, || journaled(&policy, &state, "directory_loaded")
            .iter()
            .filter(|e| from_ldap(e))
            .count()
            == 2),
        "the directory was never read again"
    );
}

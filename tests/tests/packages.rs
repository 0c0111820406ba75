//! The Debian packages, as a network admin installs them: built with cargo-deb from this
//! workspace's binaries, installed into a throwaway root with `dpkg --root` (maintainer
//! scripts run outside a chroot, with `DPKG_ROOT` set), checked there — files, conffiles,
//! users, the shipped policy valid where it lands, both units passing `systemd-analyze
//! verify` — and removed and purged again. The agent's postinst is then run against a
//! stand-in systemd (in a private mount namespace, so nothing outside the test changes) to
//! show that an upgrade restarts a running agent only when the policy passes `check`.
//!
//! Skipped, saying so, without cargo-deb, dpkg, systemd-analyze, systemd-sysusers or
//! unshare (`.ci/run` installs them); under CI that is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use schoolgate_tests::lab::workspace_bin;

const PACKAGES: [&str; 2] = ["schoolgate-agent", "schoolgate-console"];

fn missing_tool() -> Option<String> {
    let tools = [
        "dpkg",
        "dpkg-query",
        "systemd-analyze",
        "systemd-sysusers",
        "unshare",
    ];
    if let Some(tool) = schoolgate_tests::lab::missing_tool(&tools) {
        return Some(tool.to_owned());
    }
    if !cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("cargo-deb".to_owned());
    }
    None
}

macro_rules! require_tools {
    () => {
        schoolgate_tests::require_tools!(missing_tool());
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !root {
            eprintln!("skipping: not root (dpkg and unshare need it)");
            return;
        }
    };
}

fn sh(script: &str) -> Output {
    Command::new("sh").args(["-c", script]).output().unwrap()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace());
    c
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Asserts `out` succeeded, showing its output if not; its stdout.
fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds both packages from the binaries the tests run (the profile this test was built
/// with), into `dir`.
fn build_packages(dir: &Path) -> Vec<PathBuf> {
    let profile_dir = workspace_bin("schoolgate-agent")
        .parent()
        .unwrap()
        .to_owned();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "release",
    };
    PACKAGES
        .iter()
        .map(|p| {
            let out = cargo()
                .args([
                    "deb",
                    "-p",
                    p,
                    "--no-build",
                    "--fast",
                    "--profile",
                    profile,
                    "-o",
                ])
                .arg(dir)
                .output()
                .unwrap();
            let stdout = ok(&format!("cargo deb -p {p}"), &out);
            PathBuf::from(stdout.lines().last().unwrap().trim())
        })
        .collect()
}

/// An empty root with just what dpkg needs to keep its database there.
fn empty_root(root: &Path) {
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args)
        .output()
        .unwrap();
    ok(&format!("dpkg {args:?}"), &out)
}

#[test]
fn the_packages_install_into_a_fresh_root_and_their_units_verify() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let debs = build_packages(dir.path());
    let root = dir.path().join("root");
    empty_root(&root);
    let mut args = vec!["-i"];
    args.extend(debs.iter().map(|d| d.to_str().unwrap()));
    dpkg(&root, &args);

    // The files, where an admin expects them.
    for file in [
        "usr/bin/schoolgate-agent",
        "usr/bin/schoolgate-console",
        "usr/lib/systemd/system/schoolgate-agent.service",
        "usr/lib/systemd/system/schoolgate-console.service",
        "etc/schoolgate/policy.yaml",
        "etc/schoolgate/lists/social_networking.txt",
        "etc/default/schoolgate-console",
        "usr/share/doc/schoolgate-agent/deploy.md",
    ] {
        assert!(root.join(file).exists(), "{file} not installed");
    }
    let mode = std::fs::metadata(root.join("usr/bin/schoolgate-agent"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // The policy and its lists are conffiles: an upgrade never overwrites a school's edits.
    let status = |p: &str| {
        ok(
            "dpkg-query",
            &Command::new("dpkg-query")
                .arg(format!("--root={}", root.display()))
                .args(["-s", p])
                .output()
                .unwrap(),
        )
    };
    let agent = status("schoolgate-agent");
    for conffile in [
        "/etc/schoolgate/policy.yaml",
        "/etc/schoolgate/lists/encrypted_dns.txt",
        "/etc/schoolgate/lists/youtube.txt",
    ] {
        assert!(
            agent.contains(&format!(" {conffile} ")),
            "{conffile} is not a conffile:\n{agent}"
        );
    }
    assert!(
        agent.contains("Depends:") && agent.contains("nftables"),
        "{agent}"
    );
    assert!(status("schoolgate-console").contains(" /etc/default/schoolgate-console "));

    // Each daemon's own user, made by the postinst (systemd-sysusers into the root).
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    for user in ["schoolgate:", "schoolgate-console:"] {
        assert!(
            passwd
                .lines()
                .any(|l| l.starts_with(user) && l.ends_with("/usr/sbin/nologin")),
            "no {user} user:\n{passwd}"
        );
    }

    // The policy the package ships is valid where it lands (its lists beside it).
    ok(
        "check the installed policy",
        &Command::new(root.join("usr/bin/schoolgate-agent"))
            .args(["check", "--policy"])
            .arg(root.join("etc/schoolgate/policy.yaml"))
            .output()
            .unwrap(),
    );

    // Both units verify against the root, with the host's systemd units (targets) beside
    // them and `kill` where the agent's ExecReload names it; a warning is a failure too.
    let units = root.join("usr/lib/systemd/system");
    ok(
        "copy the host's units",
        &sh(&format!(
            "cp -an /usr/lib/systemd/system/. {u}/ && mkdir -p {r}/bin && cp /bin/kill {r}/bin/kill",
            u = units.display(),
            r = root.display()
        )),
    );
    for p in PACKAGES {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(format!("/usr/lib/systemd/system/{p}.service"))
            .output()
            .unwrap();
        ok(&format!("systemd-analyze verify {p}"), &out);
        assert!(
            out.stderr.is_empty(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let unit = std::fs::read_to_string(units.join("schoolgate-agent.service")).unwrap();
    assert!(
        unit.contains("\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE\n")
    );
    assert!(unit.contains("\nUser=schoolgate\n"));

    // Removing keeps the conffiles and the state; purging takes both.
    std::fs::create_dir_all(root.join("var/lib/schoolgate/journal")).unwrap();
    dpkg(&root, &["-r", "schoolgate-agent"]);
    assert!(!root.join("usr/bin/schoolgate-agent").exists());
    assert!(root.join("etc/schoolgate/policy.yaml").exists());
    assert!(root.join("var/lib/schoolgate/journal").exists());
    dpkg(&root, &["-P", "schoolgate-agent"]);
    assert!(!root.join("etc/schoolgate/policy.yaml").exists());
    assert!(!root.join("var/lib/schoolgate").exists());
}

/// Runs the agent's postinst as dpkg does on a live system, against stand-ins: `systemctl`
/// logs what it is asked and says the agent is running, `systemd-sysusers` does nothing,
/// and `schoolgate-agent` checks `policy` with the real binary. `/run/systemd/system` is
/// made in a private mount namespace. Gives the log and the script's stderr.
fn postinst(dir: &Path, policy: &Path, args: &[&str]) -> (String, String) {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.join("systemctl.log");
    let _ = std::fs::remove_file(&log);
    let stub = |name: &str, body: String| {
        let path = stubs.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub(
        "systemctl",
        format!("echo \"$*\" >> {}\nexit 0", log.display()),
    );
    stub("systemd-sysusers", "exit 0".into());
    stub(
        "schoolgate-agent",
        format!(
            "exec {} check --policy {}",
            workspace_bin("schoolgate-agent").display(),
            policy.display()
        ),
    );
    let script = workspace().join("agent/debian/postinst");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && \
             PATH={}:$PATH exec sh {} \"$@\"",
            stubs.display(),
            script.display()
        ))
        .arg("postinst")
        .args(args)
        .output()
        .unwrap();
    ok("postinst", &out);
    (
        std::fs::read_to_string(&log).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_upgrade_restarts_the_agent_only_when_the_policy_passes_check() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let good = workspace().join("policy.yaml");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&good).unwrap();
    std::fs::write(
        &bad,
        text.replace("block: [social_networking]", "block: [social_netwrking]"),
    )
    .unwrap();

    let (log, _) = postinst(dir.path(), &good, &["configure", "0.0.9"]);
    assert!(
        log.contains("restart schoolgate-agent.service"),
        "a valid policy: {log}"
    );

    let (log, stderr) = postinst(dir.path(), &bad, &["configure", "0.0.9"]);
    assert!(log.contains("is-active"), "{log}");
    assert!(
        !log.contains("restart"),
        "restarted with a bad policy: {log}"
    );
    assert!(stderr.contains("left running"), "{stderr}");

    // A first installation starts nothing: the policy must be edited for this gateway.
    let (log, _) = postinst(dir.path(), &good, &["configure"]);
    assert!(!log.contains("restart") && !log.contains("start "), "{log}");
}

//! The README's two commands set up what they need through `scripts/setup`: it refuses
//! clearly (its message and exit status) when it cannot work, and a second run on a machine
//! that has everything is quick and fetches nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use schoolgate_tests::lab::is_root;

fn setup() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `scripts/setup` run after `mounts` (shell commands) in a mount namespace of its own
/// (and a network namespace with nothing in it, with `no_network`), so what the mounts
/// change is seen by that run alone; the status it exits with is asserted to be `status`,
/// and its output is returned.
fn setup_after(mounts: &str, no_network: bool, status: i32) -> String {
    let mut unshare = Command::new("unshare");
    unshare.arg("-m");
    if no_network {
        unshare.arg("-n");
    }
    let out = unshare
        .args(["--propagation", "private", "sh", "-c"])
        .arg(format!("{mounts} && exec bash {}", setup().display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(status), "{}", text(&out));
    text(&out)
}

fn skip_without_root() -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root: these tests must run there"
    );
    eprintln!("skipping: needs root");
    true
}

#[test]
fn setup_refuses_a_user_who_is_not_root() {
    if skip_without_root() {
        return;
    }
    // A copy the other user can read: the checkout may be where only root can (under
    // /root, say, which is 0700 on a new Debian).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("setup");
    std::fs::copy(setup(), &copy).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"])
        .arg(&copy)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("run it as root"), "{}", text(&out));
}

#[test]
fn setup_refuses_a_system_it_does_not_support() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("os-release");
    std::fs::write(
        &fake,
        "ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n",
    )
    .unwrap();
    // The fake release file is bound over the real one for that run only: the machine's
    // stays as it is.
    let out = setup_after(
        &format!("mount --bind {} /etc/os-release", fake.display()),
        false,
        2,
    );
    assert!(
        out.contains("needs Debian 12 or 13; this is Ubuntu 24.04 LTS"),
        "{out}"
    );
}

#[test]
fn setup_again_on_a_ready_machine_is_quick() {
    if skip_without_root() {
        return;
    }
    // Ready means set up once already (as CI and the README's commands do first).
    let ready = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/lab-venv/bin/pip");
    if !ready.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs scripts/setup before the tests"
        );
        eprintln!("skipping: scripts/setup has not been run here");
        return;
    }
    let start = Instant::now();
    let out = Command::new("bash").arg(setup()).output().unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).trim(),
        "scripts/setup: ready",
        "fetched something"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn setup_says_when_it_cannot_download() {
    if skip_without_root() {
        return;
    }
    // A machine that lacks one package and has no network: in a mount and network namespace
    // of this command's own, the package database seen is a copy without microsocks, and
    // apt's package lists and downloaded packages are empty, so nothing can be fetched or
    // installed and the machine's own apt and dpkg state are never touched.
    let dir = tempfile::tempdir().unwrap();
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let without: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| !stanza.starts_with("Package: microsocks\n"))
        .collect();
    assert!(
        without.len() < status.split("\n\n").count(),
        "microsocks is not installed"
    );
    let copy = dir.path().join("status");
    std::fs::write(&copy, without.join("\n\n")).unwrap();
    let out = setup_after(
        &format!(
            "mount --bind -o ro {} /var/lib/dpkg/status \
             && mount -t tmpfs none /var/lib/apt/lists && mkdir /var/lib/apt/lists/partial \
             && mount -t tmpfs none /var/cache/apt/archives \
             && mkdir /var/cache/apt/archives/partial",
            copy.display()
        ),
        true,
        3,
    );
    assert!(
        out.contains("cannot install microsocks from the Debian package mirrors"),
        "{out}"
    );
}

//! The demonstration in its check mode, as CI runs it: the whole scripted day against the
//! real agent and console, every step judged by what the device got back, the release done
//! through the console, and the alerts read back from the console as the DSL sees them.
//! Skipped, saying so, without root or the lab's tools (`scripts/setup` installs them);
//! under CI that is a failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use schoolgate_lab::require_lab;

#[test]
fn the_scripted_day_reaches_the_console() {
    require_lab!();
    if let Some(tool) =
        schoolgate_lab::missing_tool(&["openvpn", "openssl", "tinyproxy", "sqlite3"])
    {
        if std::env::var_os("CI").is_some() {
            panic!("`{tool}` is not installed (see scripts/setup)");
        }
        eprintln!("skipping: `{tool}` is not installed (see scripts/setup)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_schoolgate-demo"))
        .args(["--check", "--no-build", "--listen", "127.0.0.1:0"])
        // Started by `cargo test`, the demonstration must not start a build of its own.
        .env_remove("CARGO")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the demonstration's check failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The check's own verdict, and the incidents it read from the console, each titled in
    // words with the techniques' names after it.
    assert!(stdout.contains("Check passed"), "{stdout}");
    for (technique, words) in [
        ("dns_over_https", "used DNS over HTTPS"),
        ("openvpn", "a VPN (OpenVPN)"),
        ("http_proxy", "a web proxy"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(words) && l.contains(technique)),
            "{technique} not listed:\n{stdout}"
        );
    }
}

#[test]
fn without_root_it_says_why_and_changes_nothing() {
    // Dropping to `nobody` needs root (and setpriv, from util-linux) to begin with.
    if !schoolgate_lab::is_root() {
        eprintln!("skipping: not root, so there is no root to drop");
        return;
    }
    // A copy where `nobody` may run it: the checkout may be under a private home.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo = dir.path().join("schoolgate-demo");
    std::fs::copy(env!("CARGO_BIN_EXE_schoolgate-demo"), &demo).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&demo)
        .arg("--no-build")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("this needs root"), "{stderr}");
    assert!(
        stderr.contains("cargo run --release -p schoolgate-demo"),
        "{stderr}"
    );
}

//! The console's command line as an admin uses it: users and agents added to a fresh data
//! directory, the agent's token shown once and only its hash kept.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::process::Command;

fn console(args: &[&str], data: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_schoolgate-console"))
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn users_and_agents_are_added_with_only_hashes_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "a long enough password\n").unwrap();
    let out = console(
        &[
            "user",
            "add",
            "dsl",
            "--role",
            "dsl",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = console(
        &[
            "user",
            "add",
            "x",
            "--role",
            "governor",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"governor\" is not dsl or it"));
    std::fs::write(&pw, "short\n").unwrap();
    let short = console(
        &[
            "user",
            "add",
            "it",
            "--role",
            "it",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!short.status.success());

    let totp = console(&["user", "totp", "dsl"], dir.path());
    assert!(totp.status.success());
    let shown = String::from_utf8(totp.stdout).unwrap();
    assert!(
        shown.contains("otpauth://totp/schoolgate:dsl?secret="),
        "{shown}"
    );
    assert!(
        !console(&["user", "totp", "nobody"], dir.path())
            .status
            .success()
    );
    let off = console(&["user", "totp", "dsl", "--disable"], dir.path());
    assert!(String::from_utf8_lossy(&off.stdout).contains("dsl signs in without a code"));

    let out = console(&["agent", "add", "gw1"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("sga_") && token.len() == 68, "{stdout}");
    let again = console(&["agent", "add", "gw1"], dir.path());
    assert!(!again.status.success(), "a name is taken once");

    // Neither the password nor the token is in the database file.
    let db = std::fs::read(dir.path().join("console.db")).unwrap();
    let wal = std::fs::read(dir.path().join("console.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(token) && !text.contains("a long enough password"));
    }
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&db),
        String::from_utf8_lossy(&wal)
    );
    assert!(all.contains("$argon2id$"), "the password's hash is kept");
}

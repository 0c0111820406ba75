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
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("\"governor\" is not dsl, it, teacher, approver or admin")
    );
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
    // The secret is sealed in the database with a key only the console's user reads.
    let secret = shown
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    let db_bytes = std::fs::read(dir.path().join("console.db")).unwrap();
    let wal = std::fs::read(dir.path().join("console.db-wal")).unwrap_or_default();
    for bytes in [&db_bytes, &wal] {
        assert!(!String::from_utf8_lossy(bytes).contains(&secret));
    }
    use std::os::unix::fs::PermissionsExt;
    for file in ["console.db", "secrets.key"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is {mode:o}");
    }
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

/// `console` with `input` on standard input (not a terminal: one line per prompt).
fn console_with_input(args: &[&str], data: &std::path::Path, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_schoolgate-console"))
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A session for `name` made as the console makes them; its token.
async fn session(db: &schoolgate_console::db::Db, name: &str) -> String {
    let user = db.user_by_name(name).await.unwrap().unwrap();
    let token = schoolgate_console::auth::random_token().unwrap();
    db.add_session(
        &schoolgate_console::auth::token_hash(&token),
        user.id,
        "csrf",
        now(),
        now() + 3_600_000,
    )
    .await
    .unwrap();
    token
}

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn live(db: &schoolgate_console::db::Db, token: &str) -> bool {
    db.session(
        &schoolgate_console::auth::token_hash(token),
        now(),
        3_600_000,
    )
    .await
    .unwrap()
    .is_some()
}

#[tokio::test]
async fn accounts_change_end_their_sessions_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Guessable passwords are refused, typed ones are not echoed (here: piped).
    for weak in ["aaaaaaaaaaaa", "password1234"] {
        let out = console_with_input(
            &["user", "add", "dsl", "--role", "dsl"],
            data,
            &format!("{weak}\n{weak}\n"),
        );
        assert!(!out.status.success(), "{weak}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("too easy to guess"));
    }
    let differ = console_with_input(
        &["user", "add", "dsl", "--role", "dsl"],
        data,
        "plum vessel gravity lantern\nplum vessel gravity lanterns\n",
    );
    assert!(String::from_utf8_lossy(&differ.stderr).contains("the passwords differ"));
    let pw = "plum vessel gravity lantern\n".repeat(2);
    ok(&console_with_input(
        &["user", "add", "dsl", "--role", "dsl"],
        data,
        &pw,
    ));
    ok(&console_with_input(
        &["user", "add", "it", "--role", "it"],
        data,
        &pw,
    ));
    ok(&console_with_input(
        &["user", "add", "bob", "--role", "it"],
        data,
        &pw,
    ));
    let agent = ok(&console(&["agent", "add", "gw1"], data));
    let old_token = agent.lines().last().unwrap().to_owned();

    let url = schoolgate_console::db::sqlite_url(data).unwrap();
    let db = schoolgate_console::db::Db::open(&url).await.unwrap();
    let hash = |t: &str| schoolgate_console::auth::token_hash(t);

    // Each change ends that user's sessions, and only theirs.
    let (dsl, it) = (session(&db, "dsl").await, session(&db, "it").await);
    ok(&console_with_input(
        &["user", "passwd", "dsl"],
        data,
        &"another fine passphrase here\n".repeat(2),
    ));
    assert!(!live(&db, &dsl).await && live(&db, &it).await);
    let dsl = session(&db, "dsl").await;
    ok(&console(&["user", "role", "it", "dsl"], data));
    assert!(!live(&db, &it).await && live(&db, &dsl).await);
    assert_eq!(
        db.user_by_name("it").await.unwrap().unwrap().role,
        schoolgate_console::auth::Role::Dsl
    );
    ok(&console(&["user", "totp", "dsl"], data));
    assert!(!live(&db, &dsl).await);
    let bob = session(&db, "bob").await;
    ok(&console(&["user", "disable", "bob"], data));
    assert!(!live(&db, &bob).await);
    let bob = session(&db, "bob").await;
    assert!(
        !live(&db, &bob).await,
        "a disabled user's session is not taken"
    );
    let list = ok(&console(&["user", "list"], data));
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob") && l.contains("disabled")),
        "{list}"
    );
    ok(&console(&["user", "disable", "bob", "--enable"], data));
    let bob = session(&db, "bob").await;
    assert!(live(&db, &bob).await);
    ok(&console(&["user", "remove", "bob"], data));
    assert!(db.user_by_name("bob").await.unwrap().is_none());
    let (a, b) = (session(&db, "dsl").await, session(&db, "it").await);
    ok(&console(&["user", "logout", "--all"], data));
    assert!(!live(&db, &a).await && !live(&db, &b).await);
    assert!(
        !console(
            &["user", "passwd", "nobody", "--password-file", "/dev/null"],
            data
        )
        .status
        .success()
    );

    // An agent's token is rotated (the old one stops) and revoked.
    assert_eq!(
        db.agent_by_token(&hash(&old_token))
            .await
            .unwrap()
            .as_deref(),
        Some("gw1")
    );
    let rotated = ok(&console(&["agent", "rotate", "gw1"], data));
    let new_token = rotated.lines().last().unwrap().to_owned();
    assert!(
        db.agent_by_token(&hash(&old_token))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.agent_by_token(&hash(&new_token))
            .await
            .unwrap()
            .as_deref(),
        Some("gw1")
    );
    ok(&console(&["agent", "revoke", "gw1"], data));
    assert!(
        db.agent_by_token(&hash(&new_token))
            .await
            .unwrap()
            .is_none()
    );

    // Every change is in the audit log, by the command line.
    let mut log = db
        .audit_log(&schoolgate_console::db::Scope::Trust, 100, 0)
        .await
        .unwrap();
    log.reverse();
    let actions: Vec<(String, String)> = log
        .iter()
        .map(|e| (e.action.clone(), e.target.clone().unwrap_or_default()))
        .collect();
    let expected = [
        ("user_add", "dsl"),
        ("user_add", "it"),
        ("user_add", "bob"),
        ("agent_add", "gw1"),
        ("user_password", "dsl"),
        ("user_role", "it"),
        ("user_totp_on", "dsl"),
        ("user_disable", "bob"),
        ("user_enable", "bob"),
        ("user_remove", "bob"),
        ("sessions_end", "(everyone)"),
        ("agent_rotate", "gw1"),
        ("agent_revoke", "gw1"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect();
    assert_eq!(actions, expected);
    assert!(log.iter().all(|e| e.who.starts_with("cli:")));
}

/// In a trust, accounts and agents are put in the schools `console.yaml` lists, and only
/// those: a mistyped school is refused, naming the ones there are.
#[tokio::test]
async fn accounts_and_agents_go_in_the_schools_console_yaml_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("console.yaml"),
        "schools:\n  - { id: oak, name: Oak Primary }\n  - { id: elm, name: Elm Academy }\n",
    )
    .unwrap();
    let pw = "plum vessel gravity lantern\n".repeat(2);
    ok(&console_with_input(
        &["user", "add", "dsl-oak", "--role", "dsl", "--school", "oak"],
        data,
        &pw,
    ));
    let typo = console(&["agent", "add", "gw-oak", "--school", "oka"], data);
    assert!(!typo.status.success());
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains("no school \"oka\"") && said.contains("there are: oak, elm"),
        "{said}"
    );
    ok(&console(
        &["agent", "add", "gw-oak", "--school", "oak"],
        data,
    ));
    let two = console(&["agent", "add", "gw-two", "--school", "oak,elm"], data);
    assert!(String::from_utf8_lossy(&two.stderr).contains("an agent serves one school"));
    ok(&console_with_input(
        &[
            "user", "add", "dsl-two", "--role", "dsl", "--school", "oak,elm",
        ],
        data,
        &pw,
    ));
    ok(&console(&["agent", "add", "gw-hq"], data));
    ok(&console(&["agent", "school", "gw-hq", "elm"], data));
    let list = ok(&console(&["user", "list"], data));
    assert!(
        list.lines()
            .any(|l| l.starts_with("dsl-oak") && l.ends_with("oak")),
        "{list}"
    );

    let url = schoolgate_console::db::sqlite_url(data).unwrap();
    let db = schoolgate_console::db::Db::open(&url).await.unwrap();
    let oak = schoolgate_console::db::Scope::school("oak");
    let agents: Vec<String> = db
        .agents(&oak)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(agents, ["gw-oak"]);
    let two = db.user_by_name("dsl-two").await.unwrap().unwrap();
    assert_eq!(two.scope().schools(), ["oak", "elm"]);
    let before = session(&db, "dsl-oak").await;
    ok(&console(&["user", "school", "dsl-oak"], data));
    assert!(
        !live(&db, &before).await,
        "moving a user ends their sessions"
    );
    let user = db.user_by_name("dsl-oak").await.unwrap().unwrap();
    assert_eq!(user.school, None, "no school: the whole trust");
    let log = db
        .audit_log(&schoolgate_console::db::Scope::Trust, 100, 0)
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "agent_school" && e.detail.as_deref() == Some("school elm")),
        "{log:?}"
    );
}

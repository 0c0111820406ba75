//! The `schoolgate-console` binary: command-line glue.
// A command-line program reports on standard output and error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use schoolgate_console::auth::{Role, agent_name, random_token, token_hash, user_name};
use schoolgate_console::config::Config;
use schoolgate_console::db::{Db, sqlite_url};
use schoolgate_console::mail;
use schoolgate_console::web::{self, App};

use cli::{AgentCommand, Cli, Command, Store, UserCommand};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(store: &Store) -> anyhow::Result<Db> {
    schoolgate_console::files::prepare(&store.data, store.database_url.is_none())?;
    let url = match &store.database_url {
        Some(u) => u.clone(),
        None => sqlite_url(&store.data)?,
    };
    Ok(Db::open(&url).await?)
}

/// Purges what is past its retention period at start and then once a day.
async fn purge_daily(
    db: Db,
    retention: schoolgate_console::config::Retention,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = web::now_ms();
        match db.purge(&retention, now).await {
            Ok(p) => {
                tracing::info!(
                    incidents = p.incidents,
                    alerts = p.alerts,
                    events = p.events,
                    audit = p.audit,
                    commands = p.commands,
                    sessions = p.sessions,
                    "records past their retention period purged"
                );
                let entry = schoolgate_console::db::audit::Entry {
                    time_ms: now,
                    who: "console".into(),
                    action: "purge".into(),
                    target: None,
                    detail: Some(format!(
                        "{} resolved incidents, {} alerts, {} other events, {} audit entries",
                        p.incidents, p.alerts, p.events, p.audit
                    )),
                    address: None,
                    school: None,
                };
                if let Err(e) = db.audit(&entry).await {
                    tracing::warn!(error = %e, "cannot audit the purge");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot purge old records; trying again tomorrow"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            store,
            tls_cert,
            tls_key,
        } => {
            let config = Config::load(&store.data)?;
            let db = open(&store).await?;
            if db.roll_up_in(&config.time_zone).await? {
                tracing::info!(
                    zone = config.time_zone.name(),
                    "report sums built from the events"
                );
            }
            let tls = match (tls_cert, tls_key, &config.tls) {
                (Some(c), Some(k), _) => Some(web::tls_config(&c, &k)?),
                (_, _, Some(t)) => Some(web::tls_config(&t.cert, &t.key)?),
                _ => None,
            };
            if tls.is_none() {
                tracing::warn!(
                    "serving plain HTTP: agents need HTTPS, so put a TLS proxy in front or give --tls-cert and --tls-key"
                );
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let local = listener.local_addr()?;
            let sealer = schoolgate_console::files::sealer(&store.data)?;
            let sealed = db.seal_totp_secrets(&sealer).await?;
            if sealed > 0 {
                tracing::info!(
                    users = sealed,
                    "TOTP secrets sealed with the data directory's key"
                );
            }
            let reports = &config.reports;
            if config.smtp.is_none() && (reports.weekly.is_some() || reports.governors.is_some()) {
                anyhow::bail!("console.yaml: `reports` are e-mailed: they need `smtp` settings");
            }
            let app = Arc::new(App::new(db, config, tls.is_some()).with_sealer(sealer));
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(address = %local, "console listening");
            println!("listening on {scheme}://{local}");
            std::io::stdout().flush().ok();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mut tasks = vec![tokio::spawn(purge_daily(
                app.db.clone(),
                app.config.retention,
                stopped.clone(),
            ))];
            if let Some(smtp) = &app.config.smtp {
                let mailer = mail::Mailer::new(
                    smtp,
                    app.config.public_url.as_deref(),
                    app.config.time_zone.clone(),
                )
                .and_then(|m| m.with_reports(&app.config.reports))
                .and_then(|m| m.with_schools(&app.config.schools))
                .context("console.yaml's smtp settings")?;
                tasks.push(tokio::spawn(mailer.run(
                    app.db.clone(),
                    mail::TICK,
                    stopped,
                )));
            }
            // On PostgreSQL, the incidents every console stores are announced on this one.
            let following = web::live::follow(Arc::clone(&app));
            let router = web::router(Arc::clone(&app));
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let limits = web::Limits {
                connections: app.config.connections.max.max(1),
                per_address: app.config.connections.per_address.max(1),
                ..web::Limits::default()
            };
            let trusted = app.config.trusted_proxies.clone().into();
            web::serve(listener, router, tls, limits, trusted, async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await;
            stop.send(true).ok();
            if let Some(f) = following {
                f.abort();
            }
            for t in tasks {
                t.await.ok();
            }
            Ok(())
        }
        Command::User { command } => user(command).await,
        Command::Agent { command } => agent(command).await,
    }
}

/// Writes a change made at the command line to the audit log, as `cli:` and the system
/// user who made it.
async fn audit(db: &Db, action: &str, target: &str, detail: Option<String>) -> anyhow::Result<()> {
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    db.audit(&schoolgate_console::db::audit::Entry {
        time_ms: web::now_ms(),
        who: schoolgate_contract::text::bounded_to(&format!("cli:{by}"), 64),
        action: action.to_owned(),
        target: Some(target.to_owned()),
        detail,
        address: None,
        school: None,
    })
    .await
    .context("cannot write the audit log, so the change is not reported as made")?;
    Ok(())
}

/// A new password for `name`, from a file's first line or asked for, checked and hashed.
async fn new_password(name: &str, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let password = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => prompt_password()?,
    };
    Ok(schoolgate_console::auth::hash_new_password(password, name).await?)
}

/// The school(s) `asked` names (ids separated by commas), checked against the data
/// directory's console.yaml: the ids joined by commas, or `None` for none asked.
fn school(store: &Store, asked: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(asked) = asked else {
        return Ok(None);
    };
    let config = Config::load(&store.data)?;
    let mut ids = Vec::new();
    for one in asked.split(',') {
        if let Some(s) = config.school_named(one)? {
            ids.push(s.id.to_string());
        }
    }
    Ok(Some(ids.join(",")).filter(|s| !s.is_empty()))
}

/// The one school an agent serves, as [`school`] reads it.
fn one_school(store: &Store, asked: Option<&str>) -> anyhow::Result<Option<String>> {
    let school = school(store, asked)?;
    if school.as_deref().is_some_and(|s| s.contains(',')) {
        bail!("an agent serves one school");
    }
    Ok(school)
}

/// Ends `name`'s sessions after a change to their account, and says so.
async fn end_sessions(db: &Db, name: &str) -> anyhow::Result<()> {
    let n = db.end_sessions_of(name).await?;
    if n > 0 {
        println!("ended {n} session(s) of {name}");
    }
    Ok(())
}

async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_file,
            school: asked,
            store,
        } => {
            let role: Role = role.parse()?;
            let name = user_name(&name)?;
            let school = school(&store, asked.as_deref())?;
            let hash = new_password(&name, password_file.as_deref()).await?;
            let db = open(&store).await?;
            let new = db.put_user(&name, role, &hash, web::now_ms()).await?;
            if !new {
                end_sessions(&db, &name).await?;
            }
            if new || school.is_some() {
                db.set_user_school(&name, school.as_deref()).await?;
            }
            let action = if new { "user_add" } else { "user_update" };
            let detail = match &school {
                Some(s) => format!("role {role}, school {s}"),
                None => format!("role {role}"),
            };
            audit(&db, action, &name, Some(detail.clone())).await?;
            println!(
                "{} user {name} ({detail})",
                if new { "added" } else { "updated" }
            );
        }
        UserCommand::School {
            name,
            school: asked,
            store,
        } => {
            let school = school(&store, asked.as_deref())?;
            let db = open(&store).await?;
            if !db.set_user_school(&name, school.as_deref()).await? {
                bail!("there is no user {name:?}");
            }
            end_sessions(&db, &name).await?;
            let detail = school
                .as_ref()
                .map_or("the whole trust".to_owned(), |s| format!("school {s}"));
            audit(&db, "user_school", &name, Some(detail.clone())).await?;
            println!("{name} now sees {detail}'s records");
        }
        UserCommand::Passwd {
            name,
            password_file,
            store,
        } => {
            let hash = new_password(&name, password_file.as_deref()).await?;
            let db = open(&store).await?;
            if !db.set_password(&name, &hash).await? {
                bail!("there is no user {name:?}");
            }
            end_sessions(&db, &name).await?;
            audit(&db, "user_password", &name, None).await?;
            println!("set the password of {name}");
        }
        UserCommand::Role { name, role, store } => {
            let role: Role = role.parse()?;
            let db = open(&store).await?;
            if !db.set_role(&name, role).await? {
                bail!("there is no user {name:?}");
            }
            end_sessions(&db, &name).await?;
            audit(&db, "user_role", &name, Some(format!("role {role}"))).await?;
            println!("{name} is now {role}");
        }
        UserCommand::Disable {
            name,
            enable,
            store,
        } => {
            let db = open(&store).await?;
            if !db.set_disabled(&name, !enable).await? {
                bail!("there is no user {name:?}");
            }
            end_sessions(&db, &name).await?;
            let action = if enable {
                "user_enable"
            } else {
                "user_disable"
            };
            audit(&db, action, &name, None).await?;
            println!(
                "{name} {}",
                if enable {
                    "may sign in again"
                } else {
                    "can no longer sign in"
                }
            );
        }
        UserCommand::Remove { name, store } => {
            let db = open(&store).await?;
            end_sessions(&db, &name).await?;
            if !db.remove_user(&name).await? {
                bail!("there is no user {name:?}");
            }
            audit(&db, "user_remove", &name, None).await?;
            println!("removed user {name}");
        }
        UserCommand::Logout { name, all, store } => {
            let db = open(&store).await?;
            let (n, target) = match name {
                Some(name) if !all => (db.end_sessions_of(&name).await?, name),
                _ => (db.end_all_sessions().await?, "(everyone)".to_owned()),
            };
            audit(
                &db,
                "sessions_end",
                &target,
                Some(format!("{n} session(s)")),
            )
            .await?;
            println!("ended {n} session(s)");
        }
        UserCommand::List { store } => {
            let db = open(&store).await?;
            println!(
                "{:<24} {:<8} {:<5} {:<9} {:<8} school",
                "name", "role", "code", "state", "sessions"
            );
            let trust = schoolgate_console::db::Scope::Trust;
            for a in db.accounts(&trust, web::now_ms()).await? {
                println!(
                    "{:<24} {:<8} {:<5} {:<9} {:<8} {}",
                    a.name,
                    a.role,
                    if a.totp { "yes" } else { "no" },
                    if a.disabled { "disabled" } else { "active" },
                    a.sessions,
                    a.school.as_deref().unwrap_or("(whole trust)")
                );
            }
        }
        UserCommand::Totp {
            name,
            disable,
            store,
        } => {
            let db = open(&store).await?;
            let secret = if disable {
                None
            } else {
                Some(schoolgate_console::auth::new_totp_secret()?)
            };
            let sealed = match &secret {
                Some(s) => Some(schoolgate_console::files::sealer(&store.data)?.seal(s)?),
                None => None,
            };
            if !db.set_totp(&name, sealed.as_deref()).await? {
                bail!("there is no user {name:?}");
            }
            end_sessions(&db, &name).await?;
            let action = if disable {
                "user_totp_off"
            } else {
                "user_totp_on"
            };
            audit(&db, action, &name, None).await?;
            match secret {
                None => println!("{name} signs in without a code"),
                Some(secret) => {
                    let url = schoolgate_console::auth::totp_url(&secret, &name)
                        .context("cannot make the otpauth URL")?;
                    println!(
                        "{name} now needs a code from an authenticator app to sign in.\n\
                         Add this account to the app (shown once; keep it secret):\n\
                         secret: {secret}\n{url}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Prints an agent's new token, alone on the last line.
fn show_token(what: &str, name: &str, token: &str) {
    println!("{what} agent {name}; its token is on the next line and is not shown again:");
    println!("{token}");
}

async fn agent(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Add {
            name,
            school: asked,
            store,
        } => {
            let name = agent_name(&name)?;
            let school = one_school(&store, asked.as_deref())?;
            let db = open(&store).await?;
            let token = format!("sga_{}", random_token()?);
            if !db
                .add_agent(&name, &token_hash(&token), web::now_ms())
                .await?
            {
                bail!("there is already an agent called {name}");
            }
            db.set_agent_school(&name, school.as_deref()).await?;
            let detail = school.map(|s| format!("school {s}"));
            audit(&db, "agent_add", &name, detail).await?;
            show_token("added", &name, &token);
        }
        AgentCommand::School {
            name,
            school: asked,
            store,
        } => {
            let school = one_school(&store, asked.as_deref())?;
            let db = open(&store).await?;
            if !db.set_agent_school(&name, school.as_deref()).await? {
                bail!("there is no agent {name:?}");
            }
            let detail = school
                .as_ref()
                .map_or("no school".to_owned(), |s| format!("school {s}"));
            audit(&db, "agent_school", &name, Some(detail.clone())).await?;
            println!("agent {name} now serves {detail}");
        }
        AgentCommand::Revoke { name, store } => {
            let db = open(&store).await?;
            if !db.revoke_agent(&name, web::now_ms()).await? {
                bail!("there is no agent {name:?}");
            }
            audit(&db, "agent_revoke", &name, None).await?;
            println!("revoked agent {name}'s token; its events stay");
        }
        AgentCommand::Rotate { name, store } => {
            let db = open(&store).await?;
            let token = format!("sga_{}", random_token()?);
            if !db.set_agent_token(&name, &token_hash(&token)).await? {
                bail!("there is no agent {name:?}");
            }
            audit(&db, "agent_rotate", &name, None).await?;
            show_token("a new token for", &name, &token);
        }
    }
    Ok(())
}

/// Asks for a password twice on the terminal without showing it (standard input when it is
/// not a terminal, e.g. piped: one line each).
fn prompt_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let read = |label: &str| -> anyhow::Result<String> {
        if terminal {
            return Ok(rpassword::prompt_password(format!("{label}: "))?);
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = read("Password")?;
    let second = read("Again")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

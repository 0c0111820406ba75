//! The `schoolgate-console` binary: command-line glue.
// A command-line program reports on standard output and error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use schoolgate_console::auth::{Role, hash_password, random_token, token_hash};
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
    std::fs::create_dir_all(&store.data)
        .with_context(|| format!("cannot create {}", store.data.display()))?;
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
                        "{} alerts, {} other events, {} audit entries",
                        p.alerts, p.events, p.audit
                    )),
                    address: None,
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
            let app = Arc::new(App::new(db, config, tls.is_some()));
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
                let mailer = mail::Mailer::new(smtp, app.config.public_url.as_deref())
                    .context("console.yaml's smtp settings")?;
                tasks.push(tokio::spawn(mailer.run(
                    app.db.clone(),
                    mail::TICK,
                    stopped,
                )));
            }
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
            for t in tasks {
                t.await.ok();
            }
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Totp {
                    name,
                    disable,
                    store,
                },
        } => {
            let db = open(&store).await?;
            let secret = if disable {
                None
            } else {
                Some(schoolgate_console::auth::new_totp_secret()?)
            };
            if !db.set_totp(&name, secret.as_deref()).await? {
                bail!("there is no user {name:?}");
            }
            #[allow(clippy::print_stdout)]
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
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    role,
                    password_file,
                    store,
                },
        } => {
            let role: Role = role.parse()?;
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                bail!("a user name is 1 to 64 printable characters");
            }
            let password = match password_file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                None => prompt_password()?,
            };
            if password.chars().count() < 12 {
                bail!("a password needs at least 12 characters");
            }
            let db = open(&store).await?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            let new = db.put_user(&name, role, &hash, web::now_ms()).await?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{} user {name} ({role})",
                    if new { "added" } else { "updated" }
                );
            }
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::Add { name, store },
        } => {
            let name = name.trim().to_owned();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bail!("an agent name is 1 to 64 letters, digits, '-', '_' or '.'");
            }
            let db = open(&store).await?;
            let token = format!("sga_{}", random_token()?);
            if !db
                .add_agent(&name, &token_hash(&token), web::now_ms())
                .await?
            {
                bail!("there is already an agent called {name}");
            }
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "added agent {name}; its token is on the next line and is not shown again:"
                );
                println!("{token}");
            }
            Ok(())
        }
    }
}

/// Asks for a password twice on the terminal (echo is not turned off when stdin is not a
/// terminal, e.g. piped).
fn prompt_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let read = |label: &str| -> anyhow::Result<String> {
        eprint!("{label}: ");
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

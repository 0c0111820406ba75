//! The console's commands: every [`POLL`] the agent asks `/api/v1/commands` for its pending
//! commands (and, through [`granted`](super::granted), for its granted exceptions). A release becomes a release request in the state directory, which the daemon
//! applies as it does `schoolgate-agent release` (recording who and why in the `released`
//! event), and is then reported done.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use schoolgate_contract::status::{Commands, EXPLAIN, RELEASE};
use tracing::{debug, info, warn};

use super::quarantine::{Request, Then, request_release};
use crate::people::sessions::LiveSessions;
use crate::policy_file::ADDED_FILE;
use crate::reload::LivePolicy;
use crate::report::events::bounded;
use crate::report::shipper::{POLL, Settings};

/// Why one round of asking for commands ended early (tried again after [`POLL`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("cannot reach the console: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the console answered {status}{}", command.map(|c| format!(" to command {c}")).unwrap_or_default())]
    Refused {
        status: reqwest::StatusCode,
        command: Option<i64>,
    },
    #[error("cannot write the release request: {0}")]
    Write(#[source] std::io::Error),
    #[error("the release request's writer stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Asks the console for commands and granted exceptions every [`POLL`], and sends it each
/// new policy's text, until `stop` fires.
pub async fn take_commands(
    settings: Settings,
    client: reqwest::Client,
    state_dir: PathBuf,
    live: Arc<LivePolicy>,
    people: Arc<OnceLock<Arc<LiveSessions>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let base = settings.url.trim_end_matches('/').to_owned();
    let added = state_dir.join(ADDED_FILE);
    let mut sent = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let asked = Asked {
            live: &live,
            people: people.get().map(Arc::as_ref),
        };
        if let Err(e) = poll_once(&base, &settings.token, &client, &state_dir, &asked).await {
            debug!(error = %e, "cannot ask the console for commands");
        }
        match super::granted::send_policy(&base, &settings.token, &client, &live, sent).await {
            Ok(s) => sent = s,
            Err(e) => debug!(error = %e, "cannot send the policy to the console"),
        }
        if let Err(e) =
            super::granted::sync_once(&base, &settings.token, &client, &live, &added).await
        {
            debug!(error = %e, "cannot ask the console for granted exceptions");
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// What a question is answered from: the policy in force and the directory, once read.
struct Asked<'a> {
    live: &'a LivePolicy,
    people: Option<&'a LiveSessions>,
}

async fn poll_once(
    base: &str,
    token: &str,
    client: &reqwest::Client,
    state_dir: &Path,
    asked: &Asked<'_>,
) -> Result<(), CommandError> {
    let res = client
        .get(format!("{base}/api/v1/commands"))
        .bearer_auth(token)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(CommandError::Refused {
            status: res.status(),
            command: None,
        });
    }
    let list: Commands = res.json().await?;
    for c in list.commands {
        if let (EXPLAIN, Some(q)) = (c.kind.as_str(), &c.explain) {
            let answer = super::explain::answer(&asked.live.current(), asked.people, q);
            let sent = client
                .post(format!("{base}/api/v1/explanations/{}", q.id))
                .bearer_auth(token)
                .json(&answer)
                .send()
                .await?;
            // 404: answered already (a command sent again); done all the same.
            if !sent.status().is_success() && sent.status() != reqwest::StatusCode::NOT_FOUND {
                return Err(CommandError::Refused {
                    status: sent.status(),
                    command: Some(c.id),
                });
            }
            info!(command = c.id, "question from the console answered");
            done(base, token, client, c.id).await?;
            continue;
        }
        if c.kind != RELEASE {
            warn!(kind = %bounded(&c.kind), "the console sent a command this agent does not know");
            continue;
        }
        let request = Request {
            device: c.device,
            person: c.person,
            supervised_minutes: c.supervised_minutes,
            then: match c.then.as_deref() {
                Some("end") => Some(Then::End),
                Some(_) => Some(Then::Resume),
                None => None,
            },
            reason: c.reason,
            by: format!("{} (console)", c.by),
            time: crate::clock::now(),
        };
        let dir = state_dir.to_owned();
        tokio::task::spawn_blocking(move || request_release(&dir, &request))
            .await?
            .map_err(CommandError::Write)?;
        info!(command = c.id, "release asked for by the console");
        done(base, token, client, c.id).await?;
    }
    Ok(())
}

/// Tells the console command `id` is done.
async fn done(
    base: &str,
    token: &str,
    client: &reqwest::Client,
    id: i64,
) -> Result<(), CommandError> {
    let done = client
        .post(format!("{base}/api/v1/commands/{id}/done"))
        .bearer_auth(token)
        .send()
        .await?;
    if !done.status().is_success() {
        return Err(CommandError::Refused {
            status: done.status(),
            command: Some(id),
        });
    }
    Ok(())
}

//! The shipper: sends the journal to the console over HTTPS.
//!
//! - Events: batches of up to [`BATCH_RECORDS`] records from the journal's cursor are
//!   `POST`ed to `/api/v1/events` with the agent's bearer token. The cursor moves only when
//!   the console answers 200 (it has stored them); anything else is retried with backoff
//!   from 1 s doubling to [`MAX_BACKOFF`]. The console ignores ids it already holds, so a
//!   batch sent again after a crash or a lost answer is never stored twice.
//! - The console's commands are taken with the same settings and client by
//!   `act::commands`; while idle, that poll is how the console hears the agent is alive.
//!
//! The records are sent as the journal holds them (JSON), never parsed again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schoolgate_contract::status::{AgentStatus, Answer};
use schoolgate_contract::wire::batch_body;
use tracing::{debug, warn};

use crate::reload::LivePolicy;
use crate::report::journal::Journal;
use crate::report::metrics::Metrics;

/// Records per batch at most.
pub const BATCH_RECORDS: usize = 1000;
/// Bytes per batch, about.
const BATCH_BYTES: usize = 1 << 20;
/// The longest wait between attempts while the console cannot be reached.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often commands are asked for (and, when idle, how often the agent says it is alive).
pub const POLL: Duration = Duration::from_secs(5);

/// Where events go.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The console's base URL (`https://console.school.example:8443`).
    pub url: String,
    /// This agent's name, as `schoolgate-console agent add` was given it.
    pub name: String,
    pub token: String,
    /// PEM certificates to trust for the console.
    pub ca_file: PathBuf,
}

/// The shipper cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipperError {
    #[error("cannot read the console's token from {}: {source}", path.display())]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {} is empty", .0.display())]
    EmptyToken(PathBuf),
    #[error("the console's certificates: {0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("cannot build the HTTPS client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The system's CA bundle on Debian.
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Reads the token file (its first line).
pub fn read_token(path: &Path) -> Result<String, ShipperError> {
    let text = std::fs::read_to_string(path).map_err(|source| ShipperError::Token {
        path: path.to_owned(),
        source,
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(ShipperError::EmptyToken(path.to_owned()));
    }
    Ok(token)
}

/// The HTTPS client: trusting only the certificates in `ca_file`.
pub fn client(ca_file: &Path) -> Result<reqwest::Client, ShipperError> {
    let tls = crate::trust::only(ca_file)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// What the agent says of its health with each batch (the backlog and version are filled in
/// here).
pub type Status = Arc<dyn Fn() -> AgentStatus + Send + Sync>;

/// The agent's health as each batch reports it: the policy in force, and the counters of
/// rejected edits, lost events (`lost_to_damage` found at start) and upstream errors.
pub fn status_of(live: Arc<LivePolicy>, metrics: Arc<Metrics>, lost_to_damage: u64) -> Status {
    Arc::new(move || {
        let mut s = AgentStatus::default();
        s.policy = Some(format!("{:016x}", live.fingerprint()));
        s.policy_rejected = metrics
            .reloads
            .get_or_create(&crate::report::metrics::ReloadLabels {
                outcome: "rejected",
            })
            .get();
        s.events_dropped = metrics.events_dropped.get();
        s.events_lost_to_damage = lost_to_damage;
        s.upstream_errors = metrics.upstream_errors.get();
        s
    })
}

/// A batch's body: the records spliced in as they are.
fn body(name: &str, records: &[(u64, Vec<u8>)], backlog: u64, mut status: AgentStatus) -> Vec<u8> {
    status.backlog = backlog;
    env!("CARGO_PKG_VERSION").clone_into(&mut status.version);
    batch_body(name, &status, records.iter().map(|(_, r)| r.as_slice()))
}

/// Sends the journal to the console until `stop` fires.
pub async fn ship(
    journal: Journal,
    settings: Settings,
    client: reqwest::Client,
    status: Status,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("{}/api/v1/events", settings.url.trim_end_matches('/'));
    let mut written = journal.subscribe();
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = journal.read_unacked(BATCH_RECORDS, BATCH_BYTES);
        if batch.records.is_empty() {
            if batch.through > 0 {
                // Sequence numbers lost to damage or eviction: nothing to send for them.
                if let Err(e) = journal.acknowledge(batch.through) {
                    warn!(error = %e, "cannot move the journal's cursor");
                }
            }
            tokio::select! {
                _ = written.changed() => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        let n = batch.records.len();
        // The backlog once this batch is taken.
        let backlog = journal.backlog().saturating_sub(n as u64);
        let body = body(&settings.name, &batch.records, backlog, status());
        let sent = client
            .post(&url)
            .bearer_auth(&settings.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(res) if res.status().is_success() => {
                res.json::<Answer>().await.map_err(|e| e.to_string())
            }
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                Err(format!(
                    "console answered {status}: {}",
                    crate::report::events::bounded(&text)
                ))
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(answer) => {
                if let Err(e) = journal.acknowledge(batch.through) {
                    warn!(error = %e, "cannot move the journal's cursor");
                }
                if !answer.refused.is_empty() {
                    warn!(refused = ?answer.refused, "the console refused events");
                }
                debug!(
                    sent = n,
                    received = answer.received,
                    new = answer.new,
                    "events shipped"
                );
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                warn!(error = %e, retry_in_s = backoff.as_secs(), backlog = journal.backlog(), "cannot send events to the console");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_splices_records_as_written() {
        let records = vec![
            (1, br#"{"id":"a"}"#.to_vec()),
            (2, br#"{"id":"b"}"#.to_vec()),
        ];
        let mut status = AgentStatus::default();
        status.policy = Some("00ff".into());
        let body = body("gw\"1", &records, 7, status);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["agent"], "gw\"1");
        assert_eq!(v["events"][1]["id"], "b");
        assert_eq!(v["status"]["backlog"], 7);
        assert_eq!(v["status"]["policy"], "00ff");
        assert_eq!(v["status"]["version"], env!("CARGO_PKG_VERSION"));
    }
}

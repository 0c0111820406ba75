//! Keeping list feeds current: each feed the policy names is fetched over HTTPS when it is
//! due, checked, and stored as its category's list file in the state directory, which the
//! policy watch then reads like any other list.
//!
//! What may never happen: a refresh holding up DNS (feeds are fetched by their own task, and
//! the resolver only ever sees a whole new policy), or a bad download replacing a good copy.
//! A download is refused whole when it is larger than the feed's bound, when its SHA-256 or
//! minisign signature does not match, or when it does not read as its format; then the last
//! good copy stays and a `feed_rejected` event says why. The server's validators (ETag,
//! Last-Modified) are kept beside the copy, so an unchanged list costs a 304 and nothing else.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use schoolgate_engine::policy::feed::{Feed, Pin};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::reload::LivePolicy;
use crate::report::events::{Event, Events, Kind, Severity, bounded};

/// The most a signature file may be (minisign's are under 400 bytes).
const MAX_SIGNATURE: u64 = 4096;
/// After a failed fetch, the next try comes this much later (or at the feed's refresh, if
/// sooner), so a server that is down is not hammered and a fixed one is soon used again.
const RETRY: Duration = Duration::from_secs(15 * 60);
/// How often the task looks for feeds that are due, at most.
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// Why a fetch was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedFetchError {
    #[error("the feed's certificates: {0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("the request failed: {}", causes(.0))]
    Request(#[from] reqwest::Error),
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("it is larger than its bound of {max} bytes")]
    TooLarge { max: u64 },
    #[error("its SHA-256 is {found}, not the {expected} policy.yaml pins")]
    Digest { expected: String, found: String },
    #[error("its minisign signature does not verify: {0}")]
    Signature(minisign_verify::Error),
    #[error("it does not read as a {format} list: {source}")]
    Format {
        format: &'static str,
        #[source]
        source: schoolgate_gateway::feed::FeedError,
    },
    #[error("cannot store its copy at `{}`: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A new copy was stored, with this many entries.
    Stored(usize),
    /// The server said the copy is current (304).
    Unchanged,
}

/// What is remembered beside a feed's copy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When the copy was last stored, and when the server was last asked.
    pub stored: Option<Timestamp>,
    pub checked: Option<Timestamp>,
    pub entries: Option<usize>,
}

impl Meta {
    /// The meta of `feed`, or nothing known (a missing or damaged file: fetch afresh).
    pub fn read(feed: &Feed) -> Self {
        std::fs::read(feed.meta())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether `feed` is due at `now`: never asked, or asked `refresh` ago; and its copy
    /// missing means due too.
    pub fn due(&self, feed: &Feed, now: Timestamp) -> bool {
        let Some(checked) = self.checked else {
            return true;
        };
        !feed.cache.exists() || elapsed(checked, now) >= feed.refresh
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// The HTTPS client for `feed`: the system's CAs, and the feed's own CA file if it names one.
pub fn client(feed: &Feed) -> Result<reqwest::Client, FeedFetchError> {
    let mut roots = crate::trust::system();
    if let Some(path) = &feed.ca_file {
        crate::trust::add_file(&mut roots, path)?;
    }
    let tls = crate::trust::client_config(roots)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // A redirect may move a feed, never off HTTPS.
        .https_only(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("schoolgate/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Fetches `feed` once (conditionally, with what `meta` remembers), checks it and, if new
/// and good, stores it and its meta. On any refusal the copy and meta are untouched except
/// for when the server was last asked.
pub async fn fetch(
    feed: &Feed,
    client: &reqwest::Client,
    now: Timestamp,
) -> Result<Fetched, FeedFetchError> {
    let mut meta = Meta::read(feed);
    let mut request = client.get(&feed.url);
    if feed.cache.exists() {
        if let Some(etag) = &meta.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &meta.last_modified {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
    }
    let response = request.send().await?;
    if response.status() == StatusCode::NOT_MODIFIED && feed.cache.exists() {
        meta.checked = Some(now);
        store_meta(feed, &meta)?;
        return Ok(Fetched::Unchanged);
    }
    if response.status() != StatusCode::OK {
        return Err(FeedFetchError::Status(response.status()));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(bounded)
    };
    let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
    let body = read_bounded(response, feed.max_bytes).await?;
    match &feed.pin {
        Pin::None => {}
        Pin::Sha256(expected) => {
            let found = ring::digest::digest(&ring::digest::SHA256, &body);
            if found.as_ref() != expected {
                return Err(FeedFetchError::Digest {
                    expected: hex(expected),
                    found: hex(found.as_ref()),
                });
            }
        }
        Pin::Minisign(key) => {
            let signature_url = format!("{}.minisig", feed.url);
            let response = client.get(&signature_url).send().await?;
            if response.status() != StatusCode::OK {
                return Err(FeedFetchError::Status(response.status()));
            }
            let signature = read_bounded(response, MAX_SIGNATURE).await?;
            verify(key, &signature, &body).map_err(FeedFetchError::Signature)?;
        }
    }
    let entries = schoolgate_gateway::feed::parse(
        feed.format,
        feed.section.as_deref(),
        &body,
        feed.max_bytes,
    )
    .map_err(|source| FeedFetchError::Format {
        format: feed.format.as_str(),
        source,
    })?;
    let n = entries.lines.len();
    store(&feed.cache, entries.to_list_file(&feed.url).as_bytes())?;
    meta = Meta {
        etag,
        last_modified,
        stored: Some(now),
        checked: Some(now),
        entries: Some(n),
    };
    store_meta(feed, &meta)?;
    Ok(Fetched::Stored(n))
}

/// Checks `body` against a minisign signature file by `key` (base64).
fn verify(key: &str, signature: &[u8], body: &[u8]) -> Result<(), minisign_verify::Error> {
    let key = minisign_verify::PublicKey::from_base64(key)?;
    let text =
        std::str::from_utf8(signature).map_err(|_| minisign_verify::Error::InvalidEncoding)?;
    let signature = minisign_verify::Signature::decode(text)?;
    key.verify(body, &signature, false)
}

/// The body, refused once it passes `max` bytes (by its declared length, or as it arrives).
async fn read_bounded(
    mut response: reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, FeedFetchError> {
    if response.content_length().is_some_and(|n| n > max) {
        return Err(FeedFetchError::TooLarge { max });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(FeedFetchError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes, in one line (reqwest's own message leaves out why a connection
/// failed).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` whole or not at all: a new file beside it, then a rename.
fn store(path: &Path, bytes: &[u8]) -> Result<(), FeedFetchError> {
    let error = |source| FeedFetchError::Store {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

fn store_meta(feed: &Feed, meta: &Meta) -> Result<(), FeedFetchError> {
    let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
    store(&feed.meta(), &json)
}

/// The event for a fetch's outcome (a 304 is not reported: nothing changed).
pub fn event(
    feed: &Feed,
    outcome: &Result<Fetched, FeedFetchError>,
    now: Timestamp,
) -> Option<Event> {
    match outcome {
        Ok(Fetched::Unchanged) => None,
        Ok(Fetched::Stored(n)) => {
            let mut e = Event::new(Kind::FeedLoaded, now, Severity::Info);
            e.count = schoolgate_contract::text::count(*n as u64);
            e.category = Some(bounded(&feed.category));
            e.evidence = Some(bounded(&format!("{}: {n} entries", feed.url)));
            Some(e)
        }
        Err(error) => {
            let meta = Meta::read(feed);
            let kept = match (meta.entries, meta.stored) {
                (Some(n), Some(at)) if feed.cache.exists() => {
                    format!("the copy of {at} ({n} entries) stays")
                }
                _ => "nothing is listed from it yet".to_owned(),
            };
            let mut e = Event::new(Kind::FeedRejected, now, Severity::Medium);
            e.category = Some(bounded(&feed.category));
            e.evidence = Some(bounded(&format!("{}: {error}; {kept}", feed.url)));
            Some(e)
        }
    }
}

/// What wakes the feed keeper before its next look.
#[derive(Debug, Default)]
pub struct Wake {
    notify: tokio::sync::Notify,
    all: std::sync::atomic::AtomicBool,
}

impl Wake {
    /// A new policy is in force: it may name feeds not fetched yet.
    pub fn policy_changed(&self) {
        self.notify.notify_one();
    }

    /// Asked by the operator (SIGHUP, `systemctl reload`): every feed is asked again now,
    /// due or not (a 304 costs little).
    pub fn refresh_all(&self) {
        self.all.store(true, std::sync::atomic::Ordering::Relaxed);
        self.notify.notify_one();
    }
}

/// Keeps every feed of the policy in force current until dropped: looks each minute (and
/// when `wake` says) for feeds that are due, fetches them one at a time, and reports each
/// outcome. A stored copy is then read by the policy watch.
pub async fn keep(live: Arc<LivePolicy>, events: Arc<Events>, wake: Arc<Wake>) {
    // When each feed (by its copy's path) last failed, so it waits RETRY before the next try.
    let mut failed: std::collections::HashMap<PathBuf, Timestamp> = Default::default();
    loop {
        let policy = live.current();
        let all = wake.all.swap(false, std::sync::atomic::Ordering::Relaxed);
        for feed in policy.feeds() {
            let now = crate::clock::now();
            let waiting = failed
                .get(&feed.cache)
                .is_some_and(|at| elapsed(*at, now) < RETRY.min(feed.refresh));
            if !all && (waiting || !Meta::read(feed).due(feed, now)) {
                continue;
            }
            let outcome = match client(feed) {
                Ok(client) => fetch(feed, &client, now).await,
                Err(e) => Err(e),
            };
            match &outcome {
                Ok(Fetched::Stored(n)) => {
                    info!(url = %feed.url, entries = n, "feed stored");
                    failed.remove(&feed.cache);
                }
                Ok(Fetched::Unchanged) => {
                    failed.remove(&feed.cache);
                }
                Err(error) => {
                    warn!(url = %feed.url, %error, "feed refused; the last good copy stays");
                    failed.insert(feed.cache.clone(), now);
                }
            }
            if let Some(event) = event(feed, &outcome, now) {
                events.emit(event);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = wake.notify.notified() => {}
        }
    }
}

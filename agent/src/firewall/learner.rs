//! The thread that keeps the firewall's address sets current: it takes the resolver's answers
//! (and the names it blocked, which it resolves itself so their addresses are known), and
//! judges everything again when a schedule window opens or closes, to the second.
//!
//! The resolver never waits on it, with one exception: [`Learner`] sends into a bounded queue
//! and drops what does not fit (counted), and `nft` runs on this thread only. The exception
//! is an answer to a quarantined device ([`Learner::answered_for_quarantine`]): its firewall
//! lets it reach only the learned addresses of `quarantine_allow` names, so its answer waits
//! (at most [`QUARANTINE_WAIT`]) until they are in the set, or its first connection to the
//! VLE would be refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use tracing::{debug, warn};

use super::Firewall;
use crate::recent::Recent;
use crate::reload::LivePolicy;
use crate::upstream::Upstream;

/// Longest a quarantined device's answer waits for its addresses to reach the firewall.
pub const QUARANTINE_WAIT: Duration = Duration::from_millis(250);
/// How many messages may wait for the thread.
const QUEUE: usize = 8_192;
/// Most messages taken into one `nft` transaction.
const BATCH: usize = 1_024;
/// Expired addresses are dropped, and every address judged again, at least this often.
const SWEEP: Duration = Duration::from_secs(60);
/// A blocked name is resolved in the background at most this often.
const RESOLVE_EVERY_MS: i64 = 60_000;
/// Names waiting for a background resolution, at most.
const RESOLVING_MAX: usize = 4_096;

/// A resolver thread passes on the same blocked name at most this often.
const RESEND: Duration = Duration::from_millis(RESOLVE_EVERY_MS.unsigned_abs());
/// Blocked names a resolver thread remembers having passed on, at most.
const SENT_MAX: usize = 4_096;

thread_local! {
    /// Blocked names this thread passed on lately.
    static SENT: std::cell::RefCell<Recent<Box<str>>> =
        std::cell::RefCell::new(Recent::new(RESEND, SENT_MAX));
}

/// What the thread is told.
#[derive(Debug)]
pub enum Message {
    /// The resolver answered `name` with these addresses (and TTLs); the sender, if any, is
    /// told once they are in the firewall.
    Answered(
        Box<str>,
        Vec<(IpAddr, u32)>,
        Option<tokio::sync::oneshot::Sender<()>>,
    ),
    /// The resolver refused `name` for a device: find its addresses.
    Blocked(Box<str>),
    /// The policy changed: judge again, and look at the schedule anew.
    Reloaded,
    Stop,
}

/// The resolver's side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Learner {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Learner {
    /// Passes on the addresses in an answer to `name`.
    pub fn answered(&self, name: &Name, records: &[Record]) {
        let addresses = addresses(records);
        if !addresses.is_empty() {
            self.send(Message::Answered(name.to_ascii().into(), addresses, None));
        }
    }

    /// As [`Learner::answered`], for an answer to a quarantined device: returns once the
    /// addresses are in the firewall, or after [`QUARANTINE_WAIT`].
    pub async fn answered_for_quarantine(&self, name: &Name, records: &[Record]) {
        let addresses = addresses(records);
        if addresses.is_empty() {
            return;
        }
        let (done, applied) = tokio::sync::oneshot::channel();
        self.send(Message::Answered(
            name.to_ascii().into(),
            addresses,
            Some(done),
        ));
        let _ = tokio::time::timeout(QUARANTINE_WAIT, applied).await;
    }

    /// Says that a rule refused `name`: its addresses should be refused too. Each resolver
    /// thread says so at most once a minute per name: the thread would not resolve it more
    /// often, and a message per blocked query (a futex wake each) cost the blocked path a
    /// quarter of its rate (docs/PERFORMANCE.md).
    pub fn blocked(&self, name: &str) {
        let now = crate::clock::instant();
        let fresh = SENT.with_borrow_mut(|sent| sent.first(name, now));
        if fresh {
            self.send(Message::Blocked(name.into()));
        }
    }

    /// Says that the policy changed.
    pub fn reloaded(&self) {
        self.send(Message::Reloaded);
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, m: Message) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The addresses (and TTLs) of an answer's A and AAAA records.
fn addresses(records: &[Record]) -> Vec<(IpAddr, u32)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((IpAddr::V4(a.0), r.ttl)),
            RData::AAAA(a) => Some((IpAddr::V6(a.0), r.ttl)),
            _ => None,
        })
        .collect()
}

/// The thread, until [`Stopper::stop`].
#[derive(Debug)]
pub struct Stopper {
    tx: SyncSender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stopper {
    pub fn stop(mut self) {
        // A full queue still takes `Stop` once the thread has drained it.
        let _ = self.tx.send(Message::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The queue; the thread starts with [`spawn`] once the firewall is up.
pub fn channel() -> (Learner, Receiver<Message>) {
    let (tx, rx) = sync_channel(QUEUE);
    (
        Learner {
            tx,
            dropped: Arc::default(),
        },
        rx,
    )
}

/// Starts the thread. Background resolutions run on `runtime` through `upstream`.
pub fn spawn(
    firewall: Arc<Firewall>,
    live: Arc<LivePolicy>,
    learner: &Learner,
    rx: Receiver<Message>,
    upstream: Upstream,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<Stopper> {
    let worker = Worker {
        firewall,
        live,
        upstream,
        runtime,
        learner: learner.clone(),
        resolving: HashMap::new(),
    };
    let thread = std::thread::Builder::new()
        .name("firewall".into())
        .spawn(move || worker.run(rx))?;
    Ok(Stopper {
        tx: learner.tx.clone(),
        thread: Some(thread),
    })
}

struct Worker {
    firewall: Arc<Firewall>,
    live: Arc<LivePolicy>,
    upstream: Upstream,
    runtime: tokio::runtime::Handle,
    learner: Learner,
    /// Names resolved in the background, and when.
    resolving: HashMap<Box<str>, i64>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Message>) {
        let mut last_sweep = crate::clock::now();
        loop {
            let now = crate::clock::now();
            let sweep_at = last_sweep + SWEEP;
            let wake = self
                .firewall
                .next_change()
                .map_or(sweep_at, |t| t.min(sweep_at));
            let wait = wake
                .duration_since(now)
                .try_into()
                .unwrap_or(Duration::ZERO);
            // Messages first, whatever is waiting; then the timed work once it is due, so a
            // steady flow of answers can never hold a schedule boundary back.
            let mut reloaded = false;
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut answers = Vec::new();
                    let mut waiting = Vec::new();
                    for m in std::iter::once(first).chain(rx.try_iter().take(BATCH)) {
                        match m {
                            Message::Answered(name, addresses, done) => {
                                answers.push((name, addresses));
                                waiting.extend(done);
                            }
                            Message::Blocked(name) => self.resolve(name),
                            Message::Reloaded => reloaded = true,
                            Message::Stop => return,
                        }
                    }
                    if !answers.is_empty()
                        && let Err(e) =
                            self.firewall
                                .learn(&self.live.current(), &answers, crate::clock::now())
                    {
                        warn!(error = %e, "cannot add learned addresses to the firewall");
                    }
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = crate::clock::now();
            if now >= sweep_at {
                last_sweep = now;
                let limit = now.as_millisecond() - RESOLVE_EVERY_MS;
                self.resolving.retain(|_, at| *at > limit);
            }
            if (reloaded || now >= wake)
                && let Err(e) = self.firewall.refresh(&self.live.current(), now)
            {
                warn!(error = %e, "cannot judge learned addresses again");
            }
        }
    }

    /// Resolves a blocked name (A and AAAA) unless its addresses are known or it was asked
    /// for lately; the answers come back as [`Message::Answered`].
    fn resolve(&mut self, name: Box<str>) {
        let now = crate::clock::now();
        let now_ms = now.as_millisecond();
        if self.firewall.knows(&name, now)
            || self
                .resolving
                .get(&name)
                .is_some_and(|at| now_ms - at < RESOLVE_EVERY_MS)
            || self.resolving.len() >= RESOLVING_MAX
        {
            return;
        }
        let Ok(fqdn) = Name::from_ascii(&name) else {
            return;
        };
        self.resolving.insert(name, now_ms);
        let (upstream, learner) = (self.upstream.clone(), self.learner.clone());
        self.runtime.spawn(async move {
            for rtype in [RecordType::A, RecordType::AAAA] {
                match upstream.resolve(fqdn.clone(), rtype).await {
                    Ok(r) => learner.answered(&fqdn, &r.answers),
                    Err(e) => debug!(error = %e, "background resolution failed"),
                }
            }
        });
    }
}

//! Where events go: [`Events`] is what the services call; a writer task hands them in batches
//! to a [`Sink`], the journal in the daemon.
//!
//! The services never wait on the disk: events pass through a bounded channel, and if the
//! writer falls that far behind the newest are counted as dropped rather than blocking DNS.

use std::io;
use std::sync::Mutex;

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::warn;

use super::aggregate::{Aggregator, Presence};
use super::event::Event;
use crate::journal::{Journal, JournalError, SYNC_EVERY};

/// Events in flight between the services and the writer.
const QUEUE: usize = 65_536;

/// Somewhere events are kept.
pub trait Sink: Send + 'static {
    fn write(&mut self, batch: &[Event]) -> io::Result<()>;
    /// Makes what was written durable if it is due (or now, if `force`).
    fn sync(&mut self, force: bool) -> io::Result<()>;
}

impl Sink for Journal {
    fn write(&mut self, batch: &[Event]) -> io::Result<()> {
        self.append(batch, crate::clock::now()).map_err(io_error)
    }

    fn sync(&mut self, force: bool) -> io::Result<()> {
        self.sync_due(force).map_err(io_error)
    }
}

fn io_error(e: JournalError) -> io::Error {
    io::Error::new(e.source.kind(), e)
}

/// The services' side: record, aggregate, and pass on.
#[derive(Debug)]
pub struct Events {
    tx: mpsc::Sender<Event>,
    aggregator: Mutex<Aggregator>,
    presence: Mutex<Presence>,
    dropped: Counter,
}

impl Events {
    /// Events and the receiving end that [`write_all`] drains. `dropped` counts events lost
    /// because the writer fell behind.
    pub fn new(aggregator: Aggregator, dropped: Counter) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = Self {
            tx,
            aggregator: Mutex::new(aggregator),
            presence: Mutex::new(Presence::default()),
            dropped,
        };
        (events, rx)
    }

    /// Passes an event on now.
    pub fn emit(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
    }

    /// Adds a sighting to be aggregated (see [`Aggregator`]); an alert is passed on at once.
    pub fn sighting(&self, event: Event) {
        let now = lock(&self.aggregator).add(event);
        for e in now {
            self.emit(e);
        }
    }

    /// Whether this device should be reported present today (see [`Presence`]).
    pub fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        lock(&self.presence)
    }

    /// Passes on the aggregated events whose window has closed.
    pub fn tick(&self, now: Timestamp) {
        let due = lock(&self.aggregator).due(now);
        for e in due {
            self.emit(e);
        }
    }

    /// Passes on everything still being aggregated, at shutdown.
    pub fn flush(&self) {
        let all = lock(&self.aggregator).drain();
        for e in all {
            self.emit(e);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes events to `sink` in batches until every sender is gone or `stop` fires; on `stop`,
/// what is already queued is written before returning.
pub async fn write_all(
    mut rx: mpsc::Receiver<Event>,
    mut sink: impl Sink,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                false
            }
            () = tokio::time::sleep(SYNC_EVERY) => false,
            _ = &mut stop => {
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                }
                true
            }
        };
        let result = tokio::task::block_in_place(|| {
            if !batch.is_empty() {
                sink.write(&batch).inspect_err(|e| {
                    warn!(error = %e, lost = batch.len(), "cannot write events");
                })?;
            }
            sink.sync(stopping)
        });
        if let Err(e) = result {
            warn!(error = %e, "cannot make events durable");
        }
        batch.clear();
        if stopping {
            break;
        }
    }
    if let Err(e) = tokio::task::block_in_place(|| sink.sync(true)) {
        warn!(error = %e, "cannot make events durable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::{Kind, Severity};

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn events_reach_the_file_once_aggregated() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let (journal, _) =
            Journal::open(dir.path(), crate::journal::Limits::default(), t0).unwrap();
        let (events, rx) = Events::new(Aggregator::default(), Counter::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_all(rx, journal, stopped));
        for i in 0..3 {
            let mut e = Event::new(
                Kind::Blocked,
                t0 + jiff::SignedDuration::from_secs(i),
                Severity::Low,
            );
            e.name = Some("instagram.com".into());
            events.sighting(e);
        }
        events.emit(Event::new(Kind::AgentStarted, t0, Severity::Info));
        events.flush();
        // The events still hold a sender: stopping must not wait for it.
        stop.send(()).unwrap();
        writer.await.unwrap();
        drop(events);
        let lines: Vec<serde_json::Value> = crate::journal::read_dir(dir.path())
            .unwrap()
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["kind"], "agent_started");
        assert_eq!(lines[1]["kind"], "blocked");
        assert_eq!(lines[1]["count"], 3);
    }
}

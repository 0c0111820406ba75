//! The events queue: [`Events`] is what the services call; the writer task
//! (`report::writer`) takes them from here in batches to the journal.
//!
//! The services never block on the disk: events pass through a bounded channel, and if the
//! writer falls that far behind the newest are counted as dropped rather than blocking DNS.
//! Each event queued gets a [`Ticket`], its place in the queue; the writer advances a
//! watermark past every event it has written (or counted lost). A blocked DNS answer waits
//! on its sighting's ticket, at most [`JOURNAL_WAIT`], so an answer a pupil's device receives
//! is in the journal (the kernel's page cache: a killed agent loses nothing of it) unless the
//! disk was slower than that, which `dns_answers_before_journal` counts.
//! Every event lost, there or to a write that failed (a full disk), is counted in
//! [`Drops`]: in the `events_dropped` metric (which each batch's status carries to the
//! console) and in one `events_dropped` event written as soon as writing works again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch};

use schoolgate_contract::{Event, Kind, Severity};
use schoolgate_gateway::events::aggregate::{Aggregator, Presence, Sighting};

/// Events in flight between the services and the writer.
const QUEUE: usize = 65_536;

/// The longest a blocked answer waits for its sighting to be written. The writer normally
/// takes tens of microseconds; this bounds what a stalled disk can do to DNS.
pub const JOURNAL_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// An event's place in the queue (the first event queued is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// The writer's side of the watermark and the losses, from [`Events::writer`].
#[derive(Debug, Clone)]
pub struct Progress {
    pub(crate) drops: Arc<Drops>,
    /// How many queued events have been written or counted lost.
    pub(crate) settled: Arc<watch::Sender<u64>>,
}

/// Events lost before reaching the journal: counted at once, reported in an event later.
#[derive(Debug, Default)]
pub struct Drops {
    /// Every event lost (the `events_dropped` metric).
    counter: Counter,
    /// Lost and not yet reported in an `events_dropped` event.
    unreported: AtomicU64,
    /// The unreported count the sink last kept (see `Sink::keep_unreported`).
    kept: AtomicU64,
}

impl Drops {
    pub fn new(counter: Counter) -> Self {
        Self {
            counter,
            unreported: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        }
    }

    /// `n` events an earlier run lost and had not reported: reported with the next batch.
    pub fn carry(&self, n: u64) {
        if n > 0 {
            self.counter.inc_by(n);
            self.unreported.fetch_add(n, Ordering::Relaxed);
            self.kept.store(n, Ordering::Relaxed);
        }
    }

    /// `n` events were lost.
    pub fn lost(&self, n: u64) {
        self.counter.inc_by(n);
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    /// The losses not yet reported, as the event that reports them (taken: put back with
    /// [`Drops::unreport`] if it cannot be written).
    pub(crate) fn report(&self, now: Timestamp) -> Option<(u64, Event)> {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let mut e = Event::new(Kind::EventsDropped, now, Severity::Medium);
        e.count = schoolgate_contract::text::count(n);
        e.evidence = Some(format!(
            "{n} event(s) could not be written to the journal (the disk was full or failing, \
             or the writer fell behind) and are lost"
        ));
        Some((n, e))
    }

    pub(crate) fn unreport(&self, n: u64) {
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    /// The count lost and not yet reported, when it differs from the count the sink last
    /// kept (see `Sink::keep_unreported`); noted as kept.
    pub(crate) fn unreported_changed(&self) -> Option<u64> {
        let unreported = self.unreported.load(Ordering::Relaxed);
        (self.kept.swap(unreported, Ordering::Relaxed) != unreported).then_some(unreported)
    }

    /// Every event lost so far.
    pub fn total(&self) -> u64 {
        self.counter.get()
    }
}

/// The services' side: record, aggregate, and pass on.
#[derive(Debug)]
pub struct Events {
    tx: mpsc::Sender<Event>,
    /// How many events have been queued. Taken with the send so that the channel's order is
    /// the tickets' order.
    queued: Mutex<u64>,
    settled: Arc<watch::Sender<u64>>,
    aggregator: Mutex<Aggregator>,
    presence: Mutex<Presence>,
    drops: Arc<Drops>,
}

impl Events {
    /// Events and the receiving end the writer drains. `dropped` counts events lost
    /// (the writer fell behind, or could not write).
    pub fn new(aggregator: Aggregator, dropped: Counter) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = Self {
            tx,
            queued: Mutex::new(0),
            settled: Arc::new(watch::Sender::new(0)),
            aggregator: Mutex::new(aggregator),
            presence: Mutex::new(Presence::default()),
            drops: Arc::new(Drops::new(dropped)),
        };
        (events, rx)
    }

    /// Losses an earlier run had not reported (see [`Drops::carry`]).
    pub fn carry_losses(&self, n: u64) {
        self.drops.carry(n);
    }

    /// Where losses are counted and progress is told, for the writer.
    pub fn writer(&self) -> Progress {
        Progress {
            drops: Arc::clone(&self.drops),
            settled: Arc::clone(&self.settled),
        }
    }

    /// Passes an event on now; its ticket, unless it was lost (counted) for want of room.
    pub fn emit(&self, event: Event) -> Option<Ticket> {
        let mut queued = lock(&self.queued);
        if self.tx.try_send(event).is_err() {
            drop(queued);
            self.drops.lost(1);
            return None;
        }
        *queued += 1;
        Some(Ticket(*queued))
    }

    /// Adds a sighting to be aggregated (see [`Aggregator`]); a first sighting is passed on
    /// at once, and its ticket returned.
    pub fn sighting(&self, event: Event) -> Option<Ticket> {
        let now = lock(&self.aggregator).add(event);
        now.into_iter().filter_map(|e| self.emit(e)).max()
    }

    /// Counts a repeat of an open window from its borrowed key alone (see
    /// [`Aggregator::repeat`]); `false` if none is open, when the sighting must be built and
    /// passed to [`sighting`](Self::sighting).
    pub fn repeat(&self, sighting: &Sighting<'_>, now: Timestamp) -> bool {
        lock(&self.aggregator).repeat(sighting, now, 1)
    }

    /// Whether the event with `ticket` has been written (or counted lost).
    pub fn settled(&self, ticket: Ticket) -> bool {
        *self.settled.borrow() >= ticket.0
    }

    /// Waits until the event with `ticket` has been written (or counted lost), at most
    /// [`JOURNAL_WAIT`]; `false` if it had not been by then.
    pub async fn journaled(&self, ticket: Ticket) -> bool {
        if self.settled(ticket) {
            return true;
        }
        let mut rx = self.settled.subscribe();
        matches!(
            tokio::time::timeout(JOURNAL_WAIT, rx.wait_for(|&n| n >= ticket.0)).await,
            Ok(Ok(_))
        )
    }

    /// Whether this device should be reported present today (see [`Presence`]).
    pub fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        lock(&self.presence)
    }

    /// Passes on the follow-ups whose window has closed, and the running ones' counts so far
    /// (see [`Aggregator::checkpoint`]).
    pub fn tick(&self, now: Timestamp) {
        let due = {
            let mut a = lock(&self.aggregator);
            let mut due = a.due(now);
            due.extend(a.checkpoint());
            due
        };
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

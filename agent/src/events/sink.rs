//! Where events go: [`Events`] is what the services call; a writer task hands them in batches
//! to a [`Sink`], the journal in the daemon.
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

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::aggregate::{Aggregator, Presence};
use crate::journal::{Journal, JournalError, SYNC_EVERY, Unwritten};
use schoolgate_contract::{Event, Kind, Severity};

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
    drops: Arc<Drops>,
    /// How many queued events have been written or counted lost.
    settled: Arc<watch::Sender<u64>>,
}

/// Somewhere events are kept.
pub trait Sink: Send + 'static {
    /// Keeps `batch`; on failure, says how many of its last events were not kept.
    fn write(&mut self, batch: &[Event]) -> Result<(), Unwritten>;
    /// Makes what was written durable if it is due (or now, if `force`).
    fn sync(&mut self, force: bool) -> io::Result<()>;
    /// Keeps the count of lost events not yet reported where a crash cannot take it (and
    /// where a full disk does not refuse it).
    fn keep_unreported(&mut self, _n: u64) {}
}

impl Sink for Journal {
    fn write(&mut self, batch: &[Event]) -> Result<(), Unwritten> {
        self.append(batch, crate::clock::now())
    }

    fn sync(&mut self, force: bool) -> io::Result<()> {
        self.sync_due(force).map_err(io_error)
    }

    fn keep_unreported(&mut self, n: u64) {
        if let Err(e) = Journal::keep_unreported(self, n) {
            warn!(error = %e, "cannot keep the count of unreported losses");
        }
    }
}

fn io_error(e: JournalError) -> io::Error {
    io::Error::new(e.source.kind(), e)
}

/// Events lost before reaching the journal: counted at once, reported in an event later.
#[derive(Debug, Default)]
pub struct Drops {
    /// Every event lost (the `events_dropped` metric).
    counter: Counter,
    /// Lost and not yet reported in an `events_dropped` event.
    unreported: AtomicU64,
    /// The unreported count the sink last kept (see [`Sink::keep_unreported`]).
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
    fn report(&self, now: Timestamp) -> Option<(u64, Event)> {
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

    fn unreport(&self, n: u64) {
        self.unreported.fetch_add(n, Ordering::Relaxed);
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
    /// Events and the receiving end that [`write_all`] drains. `dropped` counts events lost
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

    /// Where losses are counted and progress is told, for [`write_all`].
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

/// Writes events to `sink` in batches until every sender is gone or `stop` fires; on `stop`,
/// what is already queued is written before returning. Events the sink could not keep are
/// counted in `progress`'s drops, and reported in an `events_dropped` event ahead of the next
/// batch. After each batch is written, before it is made durable, the watermark moves past
/// it: a killed process loses nothing the kernel has, so waiting for the disk would only
/// guard against a power cut, which [`SYNC_EVERY`] bounds instead.
pub async fn write_all(
    mut rx: mpsc::Receiver<Event>,
    mut sink: impl Sink,
    progress: Progress,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Progress { drops, settled } = progress;
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
        let received = batch.len() as u64;
        let result = tokio::task::block_in_place(|| {
            write_reporting(&mut sink, &mut batch, &drops);
            if received > 0 {
                settled.send_modify(|n| *n += received);
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

/// Writes `batch`, after the event reporting earlier losses if there were any; counts what
/// could not be written, and has the sink keep the count still unreported whenever it
/// changes, so that an agent killed before it can report a loss reports it when it starts.
fn write_reporting(sink: &mut impl Sink, batch: &mut Vec<Event>, drops: &Drops) {
    write_batch(sink, batch, drops);
    let unreported = drops.unreported.load(Ordering::Relaxed);
    if drops.kept.swap(unreported, Ordering::Relaxed) != unreported {
        sink.keep_unreported(unreported);
    }
}

fn write_batch(sink: &mut impl Sink, batch: &mut Vec<Event>, drops: &Drops) {
    let report = drops.report(crate::clock::now());
    let reported = report.as_ref().map_or(0, |(n, _)| *n);
    if let Some((_, e)) = report {
        batch.insert(0, e);
    }
    if batch.is_empty() {
        return;
    }
    if let Err(u) = sink.write(batch) {
        let count = u.count.min(batch.len());
        // The report is first: if nothing was written, it was not either.
        let report_lost = reported > 0 && count == batch.len();
        let lost = count - usize::from(report_lost);
        warn!(error = %u.source, lost, "cannot write events");
        drops.lost(lost as u64);
        if report_lost {
            drops.unreport(reported);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn events_reach_the_file_once_aggregated() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let (journal, _) =
            Journal::open(dir.path(), crate::journal::Limits::default(), t0).unwrap();
        let (events, rx) = Events::new(Aggregator::default(), Counter::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_all(rx, journal, events.writer(), stopped));
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
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["kind"], "blocked");
        assert_eq!(lines[0]["count"], 1, "the first sighting, at once");
        assert_eq!(lines[1]["kind"], "agent_started");
        assert_eq!(lines[2]["kind"], "blocked");
        assert_eq!(lines[2]["count"], 2, "the repeats");
    }

    fn blocked(name: &str) -> Event {
        let mut e = Event::new(Kind::Blocked, crate::clock::now(), Severity::Low);
        e.name = Some(name.to_owned());
        e
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sighting_is_in_the_journal_once_its_ticket_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(
            dir.path(),
            crate::journal::Limits::default(),
            crate::clock::now(),
        )
        .unwrap();
        let (events, rx) = Events::new(Aggregator::default(), Counter::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_all(rx, journal, events.writer(), stopped));
        let mut last = None;
        for i in 0..20 {
            let name = format!("n{i}.instagram.com");
            let ticket = events.sighting(blocked(&name)).expect("a first sighting");
            assert!(last < Some(ticket), "tickets in queue order");
            last = Some(ticket);
            assert!(events.journaled(ticket).await);
            let lines = crate::journal::read_dir(dir.path()).unwrap();
            assert!(
                lines
                    .iter()
                    .any(|l| String::from_utf8_lossy(l).contains(&name)),
                "{name} settled but not in the journal"
            );
        }
        assert_eq!(
            events.sighting(blocked("n0.instagram.com")),
            None,
            "a repeat is counted, not written now"
        );
        stop.send(()).unwrap();
        writer.await.unwrap();
    }

    /// A disk that does not answer.
    struct Stalled;

    impl Sink for Stalled {
        fn write(&mut self, _: &[Event]) -> Result<(), Unwritten> {
            std::thread::sleep(std::time::Duration::from_secs(1));
            Ok(())
        }

        fn sync(&mut self, _: bool) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_disk_holds_an_answer_no_longer_than_the_bound() {
        let (events, rx) = Events::new(Aggregator::default(), Counter::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_all(rx, Stalled, events.writer(), stopped));
        let ticket = events.sighting(blocked("instagram.com")).unwrap();
        let start = std::time::Instant::now();
        assert!(!events.journaled(ticket).await);
        let waited = start.elapsed();
        assert!(
            waited >= JOURNAL_WAIT && waited < JOURNAL_WAIT * 2,
            "{waited:?}"
        );
        stop.send(()).unwrap();
        writer.await.unwrap();
        assert!(events.settled(ticket), "settled once written");
    }

    /// A disk that is full for a while: what it refuses is written by nobody.
    #[derive(Default)]
    struct Disk {
        full: bool,
        kept: Vec<Event>,
        /// The unreported counts kept, in order.
        unreported: Vec<u64>,
    }

    impl Sink for Disk {
        fn write(&mut self, batch: &[Event]) -> Result<(), Unwritten> {
            if self.full {
                return Err(Unwritten {
                    count: batch.len(),
                    source: JournalError {
                        what: "write",
                        path: "journal".into(),
                        source: io::Error::from_raw_os_error(28),
                    },
                });
            }
            self.kept.extend_from_slice(batch);
            Ok(())
        }

        fn sync(&mut self, _: bool) -> io::Result<()> {
            Ok(())
        }

        fn keep_unreported(&mut self, n: u64) {
            self.unreported.push(n);
        }
    }

    #[test]
    fn every_event_a_full_disk_refused_is_counted_and_reported_when_it_has_room() {
        let drops = Drops::default();
        let mut disk = Disk {
            full: true,
            ..Disk::default()
        };
        let blocked = |n: usize| {
            (0..n)
                .map(|_| Event::new(Kind::Blocked, crate::clock::now(), Severity::Low))
                .collect::<Vec<_>>()
        };
        for n in [3, 1000, 996] {
            write_reporting(&mut disk, &mut blocked(n), &drops);
        }
        assert_eq!(
            drops.total(),
            1999,
            "counted at once (the metric the console sees)"
        );
        assert!(disk.kept.is_empty());
        assert_eq!(
            disk.unreported,
            [3, 1003, 1999],
            "kept as it grows, for a crash before the report"
        );
        disk.full = false;
        write_reporting(&mut disk, &mut blocked(1), &drops);
        assert_eq!(disk.kept.len(), 2);
        assert_eq!(disk.kept[0].kind, Kind::EventsDropped);
        assert_eq!(disk.kept[0].count, 1999);
        assert_eq!(disk.unreported, [3, 1003, 1999, 0]);
        // Reported once.
        write_reporting(&mut disk, &mut blocked(1), &drops);
        assert_eq!(disk.kept.len(), 3);
        assert_eq!(drops.total(), 1999);
        assert_eq!(disk.unreported.len(), 4, "kept again only when it changes");

        // A new run told of an earlier run's unreported losses reports them first.
        let drops = Drops::default();
        drops.carry(40);
        write_reporting(&mut disk, &mut blocked(1), &drops);
        assert_eq!(disk.kept[3].kind, Kind::EventsDropped);
        assert_eq!(disk.kept[3].count, 40);
        assert_eq!(disk.unreported[4..], [0]);
    }
}

//! The writer task: events from the queue ([`Events`](crate::report::events::Events)) to a
//! [`Sink`] in batches, the journal in the daemon; losses counted and reported in the next
//! batch, and the queue's watermark moved past every event written.

use std::io;

use tokio::sync::mpsc;
use tracing::warn;

use crate::report::events::queue::{Drops, Progress};
use crate::report::journal::{Journal, JournalError, SYNC_EVERY, Unwritten};
use schoolgate_contract::Event;

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
    if let Some(unreported) = drops.unreported_changed() {
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
    use crate::report::events::Events;
    use jiff::Timestamp;
    use prometheus_client::metrics::counter::Counter;
    use schoolgate_contract::{Kind, Severity};
    use schoolgate_gateway::events::aggregate::Aggregator;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn events_reach_the_file_once_aggregated() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let (journal, _) =
            Journal::open(dir.path(), crate::report::journal::Limits::default(), t0).unwrap();
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
        let lines: Vec<serde_json::Value> = crate::report::journal::read_dir(dir.path())
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
            crate::report::journal::Limits::default(),
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
            let lines = crate::report::journal::read_dir(dir.path()).unwrap();
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
            waited >= crate::report::events::JOURNAL_WAIT
                && waited < crate::report::events::JOURNAL_WAIT * 2,
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

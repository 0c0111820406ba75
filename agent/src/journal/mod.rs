//! The event journal: every event is appended here before anything else happens to it, and
//! the shipper sends from here to the console.
//!
//! - `state_dir/journal/` holds segment files named by the sequence number of their first
//!   record (`0000000000000001.seg`), each a run of checksummed records ([`record`]).
//! - Records are written as each batch arrives (so a killed agent loses nothing it wrote),
//!   and made durable with `fdatasync` at most [`SYNC_EVERY`] apart, and at every segment
//!   change and at stop (so a power cut loses at most that much).
//! - A segment holds up to [`Limits::segment_bytes`]; at start a new one is begun, so a
//!   damaged tail is never written after. Damage found at start (a torn last write, rotted
//!   bytes) is skipped and reported once as a `journal_damaged` event.
//! - `cursor` holds the last sequence number the console acknowledged; segments wholly
//!   acknowledged are deleted. The whole journal is bounded ([`Limits::max_bytes`]): past it
//!   the oldest segments go, acknowledged or not, and an `events_dropped` event says how many
//!   events were lost unsent.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

use crate::events::{Event, Kind, Severity};

/// The journal's directory in the state directory.
pub const DIR_NAME: &str = "journal";
/// The longest an appended record waits to be made durable.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
const CURSOR: &str = "cursor";
const SUFFIX: &str = ".seg";

/// How large the journal may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub segment_bytes: u64,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            segment_bytes: 8 << 20,
            max_bytes: 256 << 20,
        }
    }
}

/// A journal error: what was being done, to which file.
#[derive(Debug, thiserror::Error)]
#[error("journal {what} {}: {source}", path.display())]
pub struct JournalError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError {
        what,
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    path: PathBuf,
    /// Bytes written (for the active segment, bytes handed to the kernel).
    len: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    limits: Limits,
    /// Oldest first; the last is the one being written.
    segments: Vec<Segment>,
    active: Option<File>,
    next_seq: u64,
    acked: u64,
    unsynced: bool,
    last_sync: Instant,
}

/// The journal, shared by the writer (appends) and the shipper (reads and acknowledges).
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    written: watch::Sender<u64>,
}

/// Records read for shipping: their sequence numbers and payloads.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<(u64, Vec<u8>)>,
    /// The last sequence number this batch covers (records lost to damage or eviction
    /// included), to acknowledge once sent.
    pub through: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`, begins a new segment, and returns the
    /// events to record about what was found: damage skipped.
    pub fn open(
        state_dir: &Path,
        limits: Limits,
        now: Timestamp,
    ) -> Result<(Self, Vec<Event>), JournalError> {
        let dir = state_dir.join(DIR_NAME);
        fs::create_dir_all(&dir).map_err(err("create", &dir))?;
        let acked = read_cursor(&dir)?;
        let mut segments = list_segments(&dir)?;
        let mut notes = Vec::new();
        let mut next_seq = acked + 1;
        // Scan every segment: the next sequence number follows the highest seen, and damage is
        // reported once here rather than by every reader later.
        for seg in &mut segments {
            let bytes = fs::read(&seg.path).map_err(err("read", &seg.path))?;
            seg.len = bytes.len() as u64;
            let (found, damage) = record::scan(&bytes);
            if let Some(last) = found.last() {
                next_seq = next_seq.max(last.seq + 1);
            }
            next_seq = next_seq.max(seg.first);
            if !damage.is_empty() {
                notes.push(damaged(now, seg, &damage, found.len()));
            }
        }
        segments.retain(|s| {
            // An empty file is a segment begun and never written.
            if s.len == 0 {
                let _ = fs::remove_file(&s.path);
            }
            s.len > 0
        });
        let (written, _) = watch::channel(next_seq - 1);
        let journal = Self {
            inner: Arc::new(Mutex::new(Inner {
                dir,
                limits,
                segments,
                active: None,
                next_seq,
                acked,
                unsynced: false,
                last_sync: Instant::now(),
            })),
            written,
        };
        journal.lock().roll()?;
        Ok((journal, notes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `events` in order (and, if the bound forced old segments out, an
    /// `events_dropped` event after them). Written to the kernel before returning; made
    /// durable within [`SYNC_EVERY`] (see [`Journal::sync_due`]).
    pub fn append(&self, events: &[Event], now: Timestamp) -> Result<(), JournalError> {
        let last = {
            let mut inner = self.lock();
            inner.append(events)?;
            if let Some(dropped) = inner.evict(now)? {
                inner.append(std::slice::from_ref(&dropped))?;
            }
            inner.next_seq - 1
        };
        self.written.send_replace(last);
        Ok(())
    }

    /// Makes what was written durable if it has waited [`SYNC_EVERY`] (or `force`).
    pub fn sync_due(&self, force: bool) -> Result<(), JournalError> {
        let mut inner = self.lock();
        if inner.unsynced && (force || inner.last_sync.elapsed() >= SYNC_EVERY) {
            inner.sync()?;
        }
        Ok(())
    }

    /// Up to `max_records` records (and about `max_bytes`) after the acknowledged cursor.
    pub fn read_unacked(&self, max_records: usize, max_bytes: usize) -> Batch {
        let (acked, segments) = {
            let inner = self.lock();
            (inner.acked, inner.segments.clone())
        };
        let mut batch = Batch {
            records: Vec::new(),
            through: acked,
        };
        let mut bytes_taken = 0;
        for (i, seg) in segments.iter().enumerate() {
            let end = segments.get(i + 1).map_or(u64::MAX, |n| n.first);
            if end <= acked + 1 {
                continue;
            }
            // A segment evicted since the list was taken is simply gone; its loss was
            // recorded when it went.
            let Ok(bytes) = fs::read(&seg.path) else {
                batch.through = batch.through.max(end.saturating_sub(1));
                continue;
            };
            // Only what was written when the list was taken: the writer may be mid-record.
            let bytes = bytes.get(..seg.len as usize).unwrap_or(&bytes);
            let (found, _) = record::scan(bytes);
            for f in found.iter().filter(|f| f.seq > acked) {
                let payload = bytes.get(f.payload.0..f.payload.1).unwrap_or_default();
                if batch.records.len() >= max_records
                    || (bytes_taken > 0 && bytes_taken + payload.len() > max_bytes)
                {
                    return batch;
                }
                bytes_taken += payload.len();
                batch.records.push((f.seq, payload.to_vec()));
                batch.through = f.seq;
            }
            // Sequence numbers lost to damage in a finished segment are passed over too.
            if i + 1 < segments.len() {
                batch.through = batch.through.max(end - 1);
            }
        }
        batch
    }

    /// The console has stored everything through `seq`: move the cursor and delete segments
    /// wholly behind it.
    pub fn acknowledge(&self, seq: u64) -> Result<(), JournalError> {
        self.lock().acknowledge(seq)
    }

    /// Events written but not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        let inner = self.lock();
        (inner.next_seq - 1).saturating_sub(inner.acked)
    }

    /// The sequence number last written, watched by the shipper to wake when there is more.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }
}

/// Every record kept in the journal in `state_dir`, read without opening it for writing.
pub fn read_dir(state_dir: &Path) -> Result<Vec<Vec<u8>>, JournalError> {
    let dir = state_dir.join(DIR_NAME);
    let mut segments = list_segments(&dir)?;
    for s in &mut segments {
        s.len = u64::MAX;
    }
    Ok(read_segments(&segments))
}

fn read_segments(segments: &[Segment]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for seg in segments {
        let Ok(bytes) = fs::read(&seg.path) else {
            continue;
        };
        let bytes = bytes
            .get(
                ..usize::try_from(seg.len)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len()),
            )
            .unwrap_or(&bytes);
        let (found, _) = record::scan(bytes);
        out.extend(
            found
                .iter()
                .filter_map(|f| bytes.get(f.payload.0..f.payload.1))
                .map(<[u8]>::to_vec),
        );
    }
    out
}

impl Inner {
    fn append(&mut self, events: &[Event]) -> Result<(), JournalError> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for event in events {
            let payload = serde_json::to_vec(event).unwrap_or_default();
            let before = buf.len();
            record::encode(self.next_seq, &payload, &mut buf);
            self.next_seq += 1;
            let active = self.segments.last().map_or(0, |s| s.len);
            // Roll before a record that would overfill the segment (never leaving it empty).
            if active + before as u64 > 0 && active + buf.len() as u64 > self.limits.segment_bytes {
                let tail = buf.split_off(before);
                self.write(&buf)?;
                buf = tail;
                let first = self.next_seq - 1;
                self.roll_at(first)?;
            }
        }
        self.write(&buf)
    }

    fn write(&mut self, buf: &[u8]) -> Result<(), JournalError> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(seg) = self.segments.last_mut() else {
            return Ok(());
        };
        let path = seg.path.clone();
        let file = self
            .active
            .as_mut()
            .ok_or_else(|| err("write", &path)(io::ErrorKind::NotConnected.into()))?;
        file.write_all(buf).map_err(err("write", &path))?;
        seg.len += buf.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if let (Some(file), Some(seg)) = (&self.active, self.segments.last()) {
            file.sync_data().map_err(err("sync", &seg.path))?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Begins a new segment at the next sequence number.
    fn roll(&mut self) -> Result<(), JournalError> {
        self.roll_at(self.next_seq)
    }

    fn roll_at(&mut self, first: u64) -> Result<(), JournalError> {
        self.sync()?;
        let path = self.dir.join(format!("{first:016x}{SUFFIX}"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err("create", &path))?;
        sync_dir(&self.dir)?;
        self.active = Some(file);
        self.segments.push(Segment {
            first,
            path,
            len: 0,
        });
        Ok(())
    }

    fn acknowledge(&mut self, seq: u64) -> Result<(), JournalError> {
        if seq <= self.acked {
            return Ok(());
        }
        self.acked = seq.min(self.next_seq - 1);
        write_cursor(&self.dir, self.acked)?;
        // Keep the active segment; delete every other one wholly acknowledged.
        while self.segments.len() > 1 {
            let Some(next_first) = self.segments.get(1).map(|s| s.first) else {
                break;
            };
            if next_first > self.acked + 1 {
                break;
            }
            let gone = self.segments.remove(0);
            let _ = fs::remove_file(&gone.path);
        }
        Ok(())
    }

    /// Past the bound, deletes the oldest segments (never the active one) and returns the
    /// event that says how many unsent events went with them.
    fn evict(&mut self, now: Timestamp) -> Result<Option<Event>, JournalError> {
        let total: u64 = self.segments.iter().map(|s| s.len).sum();
        if total <= self.limits.max_bytes {
            return Ok(None);
        }
        let mut excess = total - self.limits.max_bytes;
        let (mut lost, mut segments) = (0u64, 0u32);
        while excess > 0 && self.segments.len() > 1 {
            let Some(next_first) = self.segments.get(1).map(|s| s.first) else {
                break;
            };
            let gone = self.segments.remove(0);
            lost += unsent(&gone, self.acked);
            let _ = fs::remove_file(&gone.path);
            excess = excess.saturating_sub(gone.len);
            segments += 1;
            // Nothing in it will be sent: the cursor moves past it.
            self.acked = self.acked.max(next_first - 1);
        }
        write_cursor(&self.dir, self.acked)?;
        if lost == 0 {
            return Ok(None);
        }
        let mut e = Event::new(Kind::EventsDropped, now, Severity::Medium);
        e.count = u32::try_from(lost).unwrap_or(u32::MAX);
        e.evidence = Some(format!(
            "the journal reached its bound of {} bytes; its {segments} oldest segment(s) \
             were deleted with {lost} event(s) the console had not received",
            self.limits.max_bytes
        ));
        Ok(Some(e))
    }
}

/// The events in `seg` after `acked` that will now never be sent. An `events_dropped` record
/// among them stands for the events it counted, so a count is carried forward, never lost.
fn unsent(seg: &Segment, acked: u64) -> u64 {
    #[derive(serde::Deserialize)]
    struct Head {
        kind: Option<String>,
        count: Option<u64>,
    }
    let Ok(bytes) = fs::read(&seg.path) else {
        return 0;
    };
    let (found, _) = record::scan(&bytes);
    found
        .iter()
        .filter(|f| f.seq > acked)
        .map(|f| {
            let head = bytes
                .get(f.payload.0..f.payload.1)
                .and_then(|p| serde_json::from_slice::<Head>(p).ok());
            match head {
                Some(Head {
                    kind: Some(k),
                    count: Some(n),
                }) if k == "events_dropped" => n,
                _ => 1,
            }
        })
        .sum()
}

fn damaged(now: Timestamp, seg: &Segment, damage: &[record::Damage], kept: usize) -> Event {
    let skipped: usize = damage.iter().map(|d| d.skipped).sum();
    let first = damage.first();
    let mut e = Event::new(Kind::JournalDamaged, now, Severity::Medium);
    e.evidence = Some(format!(
        "{} damaged stretch(es) in journal segment {} ({} bytes skipped, {kept} records \
         kept), the first at byte {}: {}",
        damage.len(),
        seg.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        skipped,
        first.map_or(0, |d| d.at),
        first.map_or_else(String::new, |d| d.why.to_string()),
    ));
    e
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err("list", dir)(e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err("list", dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        else {
            continue;
        };
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        segments.push(Segment {
            first,
            path: entry.path(),
            len,
        });
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

fn read_cursor(dir: &Path) -> Result<u64, JournalError> {
    let path = dir.join(CURSOR);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(err("read", &path)(e)),
    }
}

/// Writes the cursor by rename, so a crash leaves the old value or the new one.
fn write_cursor(dir: &Path, seq: u64) -> Result<(), JournalError> {
    let path = dir.join(CURSOR);
    let tmp = dir.join("cursor.tmp");
    let mut f = File::create(&tmp).map_err(err("write", &tmp))?;
    f.write_all(format!("{seq}\n").as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(err("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(err("rename", &path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        Timestamp::from_second(1_790_000_000).unwrap()
    }

    fn events(n: usize, tag: &str) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::new(Kind::Blocked, t0(), Severity::Low);
                e.name = Some(format!("{tag}{i}.example"));
                e
            })
            .collect()
    }

    fn names(batch: &Batch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|(_, p)| {
                let v: serde_json::Value = serde_json::from_slice(p).unwrap();
                v["name"]
                    .as_str()
                    .unwrap_or(v["kind"].as_str().unwrap())
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn written_records_are_read_until_acknowledged_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (j, notes) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        assert!(notes.is_empty());
        j.append(&events(5, "a"), t0()).unwrap();
        let batch = j.read_unacked(3, usize::MAX);
        assert_eq!(names(&batch), ["a0.example", "a1.example", "a2.example"]);
        j.acknowledge(batch.through).unwrap();
        assert_eq!(j.backlog(), 2);
        drop(j);
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        j.append(&events(1, "b"), t0()).unwrap();
        let batch = j.read_unacked(100, usize::MAX);
        assert_eq!(names(&batch), ["a3.example", "a4.example", "b0.example"]);
        assert_eq!(
            batch.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        j.acknowledge(batch.through).unwrap();
        assert_eq!(j.backlog(), 0);
        assert!(j.read_unacked(100, usize::MAX).records.is_empty());
        // Acknowledged segments are gone; the active one stays.
        let segs = list_segments(&dir.path().join(DIR_NAME)).unwrap();
        assert_eq!(segs.len(), 1, "{segs:?}");
    }

    #[test]
    fn segments_roll_at_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 1000,
            max_bytes: 1 << 20,
        };
        let (j, _) = Journal::open(dir.path(), limits, t0()).unwrap();
        for _ in 0..10 {
            j.append(&events(3, "x"), t0()).unwrap();
        }
        let segs = list_segments(&dir.path().join(DIR_NAME)).unwrap();
        assert!(segs.len() >= 6, "{} segments", segs.len());
        assert!(
            segs.iter().all(|s| s.len <= 1000 || s.len < 500),
            "{segs:?}"
        );
        assert_eq!(j.read_unacked(1000, usize::MAX).records.len(), 30);
    }

    #[test]
    fn the_bound_evicts_oldest_and_says_how_many_were_lost() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 2000,
            max_bytes: 6000,
        };
        let (j, _) = Journal::open(dir.path(), limits, t0()).unwrap();
        for i in 0..20 {
            j.append(&events(4, &format!("r{i}-")), t0()).unwrap();
        }
        let total: u64 = list_segments(&dir.path().join(DIR_NAME))
            .unwrap()
            .iter()
            .map(|s| s.len)
            .sum();
        assert!(total <= 6000 + 2000, "{total} bytes kept");
        let batch = j.read_unacked(10_000, usize::MAX);
        let kept: Vec<_> = names(&batch);
        let lost: u64 = batch
            .records
            .iter()
            .filter_map(|(_, p)| {
                let v: serde_json::Value = serde_json::from_slice(p).unwrap();
                (v["kind"] == "events_dropped").then(|| v["count"].as_u64().unwrap())
            })
            .sum();
        let blocked = kept.iter().filter(|n| n.ends_with(".example")).count() as u64;
        assert!(lost > 0);
        // Every event is either still here or counted as lost (counts of evicted
        // `events_dropped` records carried into later ones).
        assert_eq!(blocked + lost, 80, "kept {kept:?}");
        // The oldest went first: what is kept is the newest.
        assert_eq!(
            kept.iter().rev().find(|n| n.ends_with(".example")).unwrap(),
            "r19-3.example"
        );
    }

    #[test]
    fn a_damaged_tail_is_skipped_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        j.append(&events(3, "a"), t0()).unwrap();
        j.sync_due(true).unwrap();
        drop(j);
        let seg = list_segments(&dir.path().join(DIR_NAME)).unwrap().remove(0);
        // A torn last write: half a record of garbage.
        let mut f = OpenOptions::new().append(true).open(&seg.path).unwrap();
        f.write_all(b"SG\x10\x00\x00\x00garb").unwrap();
        drop(f);
        let (j, notes) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].kind, Kind::JournalDamaged);
        let evidence = notes[0].evidence.as_deref().unwrap();
        assert!(
            evidence.contains("10 bytes skipped") && evidence.contains("3 records kept"),
            "{evidence}"
        );
        j.append(&notes, t0()).unwrap();
        j.append(&events(1, "b"), t0()).unwrap();
        let batch = j.read_unacked(100, usize::MAX);
        assert_eq!(
            names(&batch),
            [
                "a0.example",
                "a1.example",
                "a2.example",
                "journal_damaged",
                "b0.example"
            ]
        );
    }

    #[test]
    fn damage_in_the_middle_costs_only_the_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        j.append(&events(3, "a"), t0()).unwrap();
        drop(j);
        let seg = list_segments(&dir.path().join(DIR_NAME)).unwrap().remove(0);
        let mut bytes = fs::read(&seg.path).unwrap();
        let (found, _) = record::scan(&bytes);
        bytes[found[1].payload.0 + 5] ^= 0xff;
        fs::write(&seg.path, &bytes).unwrap();
        let (j, notes) = Journal::open(dir.path(), Limits::default(), t0()).unwrap();
        assert_eq!(notes.len(), 1);
        let batch = j.read_unacked(100, usize::MAX);
        assert_eq!(names(&batch), ["a0.example", "a2.example"]);
        // The lost sequence number is passed over when acknowledging.
        assert_eq!(batch.through, 3);
    }
}

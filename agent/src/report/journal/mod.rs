//! The event journal: every event is appended here before anything else happens to it, and
//! the shipper sends from here to the console.
//!
//! - `state_dir/journal/` holds segment files named by the sequence number of their first
//!   record (`0000000000000001.seg`), each a run of checksummed records (`schoolgate_gateway::journal::record`).
//! - Records are written as each batch arrives (so a killed agent loses nothing it wrote),
//!   and made durable with `fdatasync` at most [`SYNC_EVERY`] apart, and at every segment
//!   change and at stop (so a power cut loses at most that much).
//! - A write that fails (a full disk) is undone: the segment is cut back to its last whole
//!   record (or, if even that fails, a new segment is begun before the next write) and the
//!   sequence numbers of the records not written are used again, so no record is hidden
//!   behind a torn one and none is skipped. The caller is told how many events were not
//!   written ([`Unwritten`]) and reports them.
//! - A segment holds up to [`Limits::segment_bytes`]; at start a new one is begun, so a
//!   damaged tail is never written after. Damage found at start (a torn last write, rotted
//!   bytes) is skipped and reported once as a `journal_damaged` event.
//! - `cursor` holds the last sequence number the console acknowledged; segments wholly
//!   acknowledged are deleted. The whole journal is bounded ([`Limits::max_bytes`]): past it
//!   the oldest segments go, acknowledged or not, and an `events_dropped` event says how many
//!   events were lost unsent.

use schoolgate_gateway::journal::record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

use schoolgate_contract::{Event, Kind, Severity};

/// The journal's directory in the state directory.
pub const DIR_NAME: &str = "journal";
/// The longest an appended record waits to be made durable.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
const CURSOR: &str = "cursor";
/// How many lost events are not yet reported, kept across a crash (see [`Journal::keep_unreported`]).
const UNREPORTED: &str = "unreported";
/// The unreported count's width in its file: written in place, always the same size, so a
/// full disk never refuses it.
const UNREPORTED_WIDTH: usize = 21;
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

/// Events an append could not write (the last `count` of those given), and why.
#[derive(Debug, thiserror::Error)]
#[error("{count} event(s) not written: {source}")]
pub struct Unwritten {
    pub count: usize,
    #[source]
    pub source: JournalError,
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
    /// A failed write could not be cut back: the active segment's file may end in a torn
    /// record, so the next write begins a new segment.
    torn: bool,
    /// The file holding the count of lost events not yet reported (`None` if it could not be
    /// made: then a crash forgets that count, as before it existed).
    unreported: Option<File>,
}

/// The journal, shared by the writer (appends) and the shipper (reads and acknowledges).
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    written: watch::Sender<u64>,
    /// Lost events an earlier run had not reported when it ended.
    carried: u64,
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
        let ends: Vec<Option<u64>> = segments
            .iter()
            .skip(1)
            .map(|s| Some(s.first))
            .chain(std::iter::once(None))
            .collect();
        for (seg, end) in segments.iter_mut().zip(ends) {
            let bytes = fs::read(&seg.path).map_err(err("read", &seg.path))?;
            seg.len = bytes.len() as u64;
            let (found, damage) = record::scan(&bytes);
            if let Some(last) = found.last() {
                next_seq = next_seq.max(last.seq + 1);
            }
            next_seq = next_seq.max(seg.first);
            if !damage.is_empty() {
                let seqs: Vec<u64> = found.iter().map(|f| f.seq).collect();
                let lost = lost_records(seg.first.max(acked + 1), end, &seqs);
                notes.push(damaged(now, seg, &damage, &lost, end.is_none()));
            }
        }
        segments.retain(|s| {
            // An empty file is a segment begun and never written.
            if s.len == 0 {
                let _ = fs::remove_file(&s.path);
            }
            s.len > 0
        });
        let (unreported, carried) = open_unreported(&dir);
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
                last_sync: crate::clock::instant(),
                torn: false,
                unreported,
            })),
            written,
            carried,
        };
        journal.lock().roll()?;
        Ok((journal, notes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `events` in order (and, if the bound forced old segments out, an
    /// `events_dropped` event after them). Written to the kernel before returning; made
    /// durable within [`SYNC_EVERY`] (see [`Journal::sync_due`]). On failure, the events
    /// before the last `count` are written and those are not.
    pub fn append(&self, events: &[Event], now: Timestamp) -> Result<(), Unwritten> {
        let (last, result) = {
            let mut inner = self.lock();
            let mut result = inner.append(events);
            if result.is_ok() {
                match inner.evict(now) {
                    Ok(Some(dropped)) => {
                        // Its count is carried by the eviction's own record; if that cannot
                        // be written the loss goes unreported only as one event more.
                        if let Err(u) = inner.append(std::slice::from_ref(&dropped)) {
                            tracing::warn!(error = %u, "cannot record events dropped at the bound");
                        }
                    }
                    Ok(None) => {}
                    Err(source) => result = Err(Unwritten { count: 0, source }),
                }
            }
            (inner.next_seq - 1, result)
        };
        self.written.send_replace(last);
        result
    }

    /// Lost events that an earlier run counted and had not reported when it ended (it was
    /// killed while the disk was full, say): to report now.
    pub fn carried_losses(&self) -> u64 {
        self.carried
    }

    /// Keeps `n`, the count of lost events not yet reported, where a crash cannot take it:
    /// written in place over bytes the file already has, so it needs no room on a full disk.
    pub fn keep_unreported(&self, n: u64) -> Result<(), JournalError> {
        let inner = self.lock();
        let Some(file) = &inner.unreported else {
            return Ok(());
        };
        use std::os::unix::fs::FileExt;
        file.write_all_at(unreported_text(n).as_bytes(), 0)
            .map_err(err("write", &inner.dir.join(UNREPORTED)))
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
            // The active segment only as far as was written when the list was taken (the
            // writer may be mid-record); a finished one whole, so that nothing in it is
            // passed over unread when the cursor moves past its end.
            let last = i + 1 == segments.len();
            let bytes = if last {
                bytes.get(..seg.len as usize).unwrap_or(&bytes)
            } else {
                bytes.as_slice()
            };
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
    /// Writes `events` as records; on failure, how many (the last ones) were not written,
    /// their sequence numbers free to use again.
    fn append(&mut self, events: &[Event]) -> Result<(), Unwritten> {
        if self.torn {
            self.roll().map_err(|source| Unwritten {
                count: events.len(),
                source,
            })?;
            self.torn = false;
        }
        let mut buf = Vec::with_capacity(events.len() * 256);
        // Events encoded in `buf`, and events written before it.
        let (mut in_buf, mut done) = (0usize, 0usize);
        for event in events {
            let payload = serde_json::to_vec(event).unwrap_or_default();
            let before = buf.len();
            record::encode(self.next_seq, &payload, &mut buf);
            self.next_seq += 1;
            in_buf += 1;
            let active = self.segments.last().map_or(0, |s| s.len);
            // Roll before a record that would overfill the segment (never leaving it empty).
            if active + before as u64 > 0 && active + buf.len() as u64 > self.limits.segment_bytes {
                let tail = buf.split_off(before);
                if let Err(source) = self.write(&buf) {
                    self.next_seq -= in_buf as u64;
                    return Err(Unwritten {
                        count: events.len() - done,
                        source,
                    });
                }
                done += in_buf - 1;
                in_buf = 1;
                buf = tail;
                let first = self.next_seq - 1;
                if let Err(source) = self.roll_at(first) {
                    self.next_seq -= 1;
                    self.torn = true;
                    return Err(Unwritten {
                        count: events.len() - done,
                        source,
                    });
                }
            }
        }
        self.write(&buf).map_err(|source| {
            self.next_seq -= in_buf as u64;
            Unwritten {
                count: events.len() - done,
                source,
            }
        })
    }

    /// Writes whole records to the active segment. A failed write is cut back to the
    /// segment's last whole record; if that fails too, the next append begins a new segment.
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
        if let Err(e) = file.write_all(buf) {
            if file.set_len(seg.len).is_err() {
                self.torn = true;
            }
            return Err(err("write", &path)(e));
        }
        seg.len += buf.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if let (Some(file), Some(seg)) = (&self.active, self.segments.last()) {
            file.sync_data().map_err(err("sync", &seg.path))?;
        }
        self.unsynced = false;
        self.last_sync = crate::clock::instant();
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
        e.count = schoolgate_contract::text::count(lost);
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
                }) if k == Kind::EventsDropped.as_str() => n,
                _ => 1,
            }
        })
        .sum()
}

/// The sequence numbers from `first` that a segment should hold (up to `end`, the next
/// segment's first, or its last good record for the segment being written) and does not:
/// ranges, first and last included.
fn lost_records(first: u64, end: Option<u64>, found: &[u64]) -> Vec<(u64, u64)> {
    let mut lost = Vec::new();
    let mut expect = first;
    for &seq in found.iter().filter(|s| **s >= first) {
        if seq > expect {
            lost.push((expect, seq - 1));
        }
        expect = expect.max(seq + 1);
    }
    if let Some(end) = end
        && end > expect
    {
        lost.push((expect, end - 1));
    }
    lost
}

/// The `journal_damaged` event: how many events were lost and which, in words; its count is
/// the events lost, a torn tail of the segment last written (a crash mid-write) counted as
/// one, since how many records it held cannot be read.
fn damaged(
    now: Timestamp,
    seg: &Segment,
    damage: &[record::Damage],
    lost: &[(u64, u64)],
    last_segment: bool,
) -> Event {
    let n: u64 = lost.iter().map(|(a, b)| b - a + 1).sum();
    let ranges = lost
        .iter()
        .take(10)
        .map(|(a, b)| {
            if a == b {
                format!("{a}")
            } else {
                format!("{a}–{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let tail = last_segment
        && damage
            .last()
            .is_some_and(|d| d.at + d.skipped >= seg.len as usize);
    let mut e = Event::new(Kind::JournalDamaged, now, Severity::Medium);
    // The events known lost, and one for a torn last write (which held at least one): never
    // 0, which the console's contract refuses.
    e.count = schoolgate_contract::text::count(n.saturating_add(u64::from(tail))).max(1);
    let name = seg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut text = if n > 0 {
        format!(
            "{n} event(s) lost to damage in journal segment {name} (sequence numbers \
             {ranges}{})",
            if lost.len() > 10 { ", …" } else { "" }
        )
    } else {
        format!("damage in journal segment {name}")
    };
    if tail {
        text.push_str(
            "; its last write was cut short (a crash or power cut): the event(s) in that \
             write are lost (at least one; how many cannot be read)",
        );
    }
    if let Some(d) = damage.first() {
        text.push_str(&format!("; first damage at byte {}: {}", d.at, d.why));
    }
    e.evidence = Some(text);
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

fn unreported_text(n: u64) -> String {
    format!("{n:<width$}\n", width = UNREPORTED_WIDTH - 1)
}

/// Opens the file of unreported losses, made at its full size if new, and the count it holds.
fn open_unreported(dir: &Path) -> (Option<File>, u64) {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let path = dir.join(UNREPORTED);
    let mut text = String::new();
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map(|mut file| {
            // Unreadable counts as empty: rewritten below as zero.
            if file.read_to_string(&mut text).is_err() {
                text.clear();
            }
            file
        });
    let carried = text.trim().parse().unwrap_or(0);
    let made = opened.and_then(|file| {
        if text.len() != UNREPORTED_WIDTH {
            // New, or not what this code wrote: the count it holds, at the fixed width (a
            // longer file is cut, which takes no room).
            file.write_all_at(unreported_text(carried).as_bytes(), 0)?;
            file.set_len(UNREPORTED_WIDTH as u64)?;
        }
        Ok(file)
    });
    match made {
        Ok(file) => (Some(file), carried),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the count of unreported losses");
            (None, carried)
        }
    }
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
    fn the_unreported_count_outlives_the_process_in_a_file_of_fixed_size() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0).unwrap();
        assert_eq!(j.carried_losses(), 0);
        let file = dir.path().join(DIR_NAME).join(UNREPORTED);
        let size = fs::metadata(&file).unwrap().len();
        assert_eq!(size, UNREPORTED_WIDTH as u64);
        j.keep_unreported(1999).unwrap();
        drop(j);
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0).unwrap();
        assert_eq!(j.carried_losses(), 1999);
        assert_eq!(fs::metadata(&file).unwrap().len(), size, "written in place");
        j.keep_unreported(0).unwrap();
        drop(j);
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0).unwrap();
        assert_eq!(j.carried_losses(), 0);
        assert!(
            read_dir(dir.path()).unwrap().is_empty(),
            "not read as a segment"
        );
        drop(j);
        // A file this code did not write is put back to the fixed width.
        fs::write(&file, "7\n and something else entirely\n").unwrap();
        let (j, _) = Journal::open(dir.path(), Limits::default(), t0).unwrap();
        assert_eq!(j.carried_losses(), 0);
        assert_eq!(fs::metadata(&file).unwrap().len(), size);
    }

    /// A full disk, as a file-size limit: a write cut short is undone, the records it held
    /// are told to the caller, and a segment begun after it hides nothing. Runs in a child
    /// process of its own, since the limit is the process's.
    #[test]
    fn a_torn_write_then_a_roll_loses_nothing_unreported() {
        const CHILD: &str = "SCHOOLGATE_JOURNAL_FSIZE_CHILD";
        let Ok(dir) = std::env::var(CHILD) else {
            let dir = tempfile::tempdir().unwrap();
            // This test's name as the harness knows it: the module path without the crate.
            let (_, module) = module_path!().split_once("::").unwrap();
            let name = format!("{module}::a_torn_write_then_a_roll_loses_nothing_unreported");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        };
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        use nix::sys::signal::{SigSet, Signal};
        // Past the limit a write fails with EFBIG instead of the signal ending the process.
        let mut xfsz = SigSet::empty();
        xfsz.add(Signal::SIGXFSZ);
        xfsz.thread_block().unwrap();
        let limits = Limits {
            segment_bytes: 20_400,
            max_bytes: 1 << 30,
        };
        let (j, _) = Journal::open(Path::new(&dir), limits, t0()).unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
        let active_len = || {
            let segs = list_segments(&Path::new(&dir).join(DIR_NAME)).unwrap();
            std::fs::metadata(&segs.last().unwrap().path).unwrap().len()
        };
        let (mut kept, mut lost, mut failures) = (Vec::new(), Vec::new(), 0);
        for round in 0..300 {
            // Every seventh batch meets a disk with 100 bytes left: it is torn.
            let full = round % 7 == 3;
            if full {
                setrlimit(Resource::RLIMIT_FSIZE, active_len() + 100, hard).unwrap();
            }
            let batch = events(5, &format!("r{round}-"));
            let names: Vec<String> = batch.iter().map(|e| e.name.clone().unwrap()).collect();
            match j.append(&batch, t0()) {
                Ok(()) => kept.extend(names),
                Err(u) => {
                    failures += 1;
                    let at = names.len() - u.count;
                    kept.extend(names[..at].iter().cloned());
                    lost.extend(names[at..].iter().cloned());
                }
            }
            if full {
                setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
            }
        }
        let segments = list_segments(&Path::new(&dir).join(DIR_NAME))
            .unwrap()
            .len();
        assert!(
            failures >= 30 && segments >= 3,
            "{failures} failures, {segments} segments"
        );
        let batch = j.read_unacked(usize::MAX, usize::MAX);
        let seqs: Vec<u64> = batch.records.iter().map(|r| r.0).collect();
        assert_eq!(
            seqs,
            (1..=kept.len() as u64).collect::<Vec<_>>(),
            "no gap, no repeat"
        );
        assert_eq!(names(&batch), kept);
        assert!(lost.iter().all(|n| !kept.contains(n)));
        drop(j);
        // Nothing torn was left behind to be found as damage.
        let (_, notes) = Journal::open(Path::new(&dir), limits, t0()).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn lost_records_are_the_gaps_in_what_a_segment_should_hold() {
        assert_eq!(lost_records(1, Some(11), &[1, 2, 3, 7, 8, 9, 10]), [(4, 6)]);
        assert_eq!(lost_records(1, Some(11), &[2, 3, 10]), [(1, 1), (4, 9)]);
        assert_eq!(lost_records(5, Some(9), &[]), [(5, 8)]);
        // The segment being written: only gaps before its last good record are known.
        assert_eq!(lost_records(1, None, &[1, 2, 5]), [(3, 4)]);
        assert!(lost_records(1, None, &[1, 2, 3]).is_empty());
        // Acknowledged records were delivered whatever happened to them since.
        assert_eq!(lost_records(4, Some(8), &[1, 2, 6]), [(4, 5), (7, 7)]);
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
            evidence.contains("its last write was cut short") && !evidence.contains("lost to"),
            "{evidence}"
        );
        assert_eq!(notes[0].count, 1, "at least the one torn record");
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
        assert_eq!(notes[0].count, 1);
        let evidence = notes[0].evidence.as_deref().unwrap();
        assert!(
            evidence.starts_with("1 event(s) lost to damage in journal segment")
                && evidence.contains("(sequence numbers 2)"),
            "{evidence}"
        );
        let batch = j.read_unacked(100, usize::MAX);
        assert_eq!(names(&batch), ["a0.example", "a2.example"]);
        // The lost sequence number is passed over when acknowledging.
        assert_eq!(batch.through, 3);
    }
}

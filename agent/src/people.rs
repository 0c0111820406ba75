//! The directory of people in force, from the school's roster export (`gateway.roster`), and
//! its reload.
//!
//! Like the policy, the directory sits behind an [`ArcSwap`]: readers take the current one
//! without locking, and a reload swaps in a directory read completely. A roster that cannot be
//! read, or has a bad line, changes nothing: the errors (each with its line and column) are
//! returned for the `directory_rejected` event and the last good directory stays. Without a
//! roster, or before the first good read, the directory is empty and every decision is the
//! device's alone.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use schoolgate_people::Directory;
use schoolgate_people::roster::{self, RosterError};
use tracing::{info, warn};

use crate::watch::{Watch, watch_files};

/// What a read of the roster did.
#[derive(Debug)]
#[non_exhaustive]
pub enum RosterRead {
    /// A new directory is in use, of this many people.
    Loaded(usize),
    /// The file says what the directory in use says.
    Unchanged,
    /// The roster could not be read or has bad lines; the last good directory stays.
    Rejected(RosterFileError),
}

/// Why a roster file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RosterFileError {
    #[error("cannot read the roster {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the roster {} is larger than {} MiB: not a roster", path.display(), roster::MAX_BYTES >> 20)]
    TooLarge { path: PathBuf },
    #[error("{}", lines(path, errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<RosterError>,
    },
}

/// Each error as `path:line[:column]: what`, one per line.
fn lines(path: &Path, errors: &[RosterError]) -> String {
    errors
        .iter()
        .map(|e| {
            let column = e.column.map(|c| format!(":{c}")).unwrap_or_default();
            format!("{}:{}{column}: {}", path.display(), e.line, e.kind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the roster at `path`, for `explain --user` and for [`LivePeople::reload`].
pub fn load(path: &Path) -> Result<Directory, RosterFileError> {
    parse(path, &read(path)?)
}

/// The file's bytes, at most [`roster::MAX_BYTES`] of them.
fn read(path: &Path) -> Result<Vec<u8>, RosterFileError> {
    let failed = |source| RosterFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(roster::MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() as u64 > roster::MAX_BYTES {
        return Err(RosterFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Directory, RosterFileError> {
    roster::parse(bytes).map_err(|errors| RosterFileError::Invalid {
        path: path.to_path_buf(),
        errors,
    })
}

/// The directory in use, and where it is read from.
#[derive(Debug)]
pub struct LivePeople {
    path: Option<PathBuf>,
    current: ArcSwap<Directory>,
    /// A hash of the bytes the directory in use was read from.
    read: Mutex<Option<u64>>,
}

impl LivePeople {
    /// An empty directory, to be read from `path` (if any) by [`LivePeople::reload`].
    pub fn new(path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            path,
            current: ArcSwap::from_pointee(Directory::default()),
            read: Mutex::new(None),
        })
    }

    /// The directory in use now.
    pub fn current(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Reads the roster again and uses it if it reads cleanly and says something new.
    /// `None` without a roster.
    pub fn reload(&self) -> Option<RosterRead> {
        let path = self.path.as_ref()?;
        let bytes = match read(path) {
            Ok(b) => b,
            Err(error) => {
                warn!(error = %error, "the last good directory stays");
                return Some(RosterRead::Rejected(error));
            }
        };
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if *read == Some(hash) {
            return Some(RosterRead::Unchanged);
        }
        match parse(path, &bytes) {
            Ok(directory) => {
                let n = directory.len();
                self.current.store(Arc::new(directory));
                *read = Some(hash);
                info!(path = %path.display(), people = n, "roster read");
                Some(RosterRead::Loaded(n))
            }
            Err(error) => {
                warn!(path = %path.display(), "roster rejected; the last good directory stays");
                for line in error.to_string().lines() {
                    warn!("{line}");
                }
                Some(RosterRead::Rejected(error))
            }
        }
    }

    /// Watches the roster and reads it again after each change, `debounce` after the last
    /// event of a burst; `on_outcome` hears every read. `None` without a roster. Watching
    /// stops when the returned [`Watch`] is dropped.
    pub fn watch(
        self: &Arc<Self>,
        debounce: Duration,
        mut on_outcome: impl FnMut(&RosterRead) + Send + 'static,
    ) -> Option<Result<Watch, notify::Error>> {
        let path = self.path.clone()?;
        let reading = Arc::clone(self);
        Some(watch_files(
            "roster-watch",
            debounce,
            move || vec![path.clone()],
            move || {
                if let Some(outcome) = reading.reload() {
                    on_outcome(&outcome);
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_bad_roster_leaves_the_last_good_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        let live = LivePeople::new(Some(path.clone()));
        assert!(matches!(
            live.reload(),
            Some(RosterRead::Rejected(RosterFileError::Read { .. }))
        ));
        assert!(live.current().is_empty());
        std::fs::write(&path, "username,role\namira.k,pupil\ngrace.o,staff\n").unwrap();
        assert!(matches!(live.reload(), Some(RosterRead::Loaded(2))));
        assert!(matches!(live.reload(), Some(RosterRead::Unchanged)));
        std::fs::write(&path, "username,role\namira.k,pupil\ngrace.o,governor\n").unwrap();
        match live.reload() {
            Some(RosterRead::Rejected(e)) => assert_eq!(
                e.to_string(),
                format!(
                    "{}:3:2: the role \"governor\" is neither pupil nor staff (pupil, student, learner; staff, teacher, employee)",
                    path.display()
                )
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            live.current().find("grace.o").is_some(),
            "the last good one stays"
        );
        // A file past the bound is not read whole (a sparse file: no disk used).
        std::fs::File::create(&path)
            .unwrap()
            .set_len(roster::MAX_BYTES + 1)
            .unwrap();
        assert!(matches!(
            live.reload(),
            Some(RosterRead::Rejected(RosterFileError::TooLarge { .. }))
        ));
        assert!(live.current().find("grace.o").is_some());
        assert!(LivePeople::new(None).reload().is_none());
    }

    #[test]
    fn a_saved_roster_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        std::fs::write(&path, "username,role\namira.k,pupil\n").unwrap();
        let live = LivePeople::new(Some(path.clone()));
        live.reload();
        let (tx, rx) = std::sync::mpsc::channel();
        let _watch = live
            .watch(Duration::from_millis(50), move |o| {
                let _ = tx.send(matches!(o, RosterRead::Loaded(_)));
            })
            .unwrap()
            .unwrap();
        // Saved as editors save: a new file renamed over the old.
        let next = dir.path().join("roster.csv.new");
        std::fs::write(&next, "username,role\namira.k,pupil\nben.t,pupil\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let loaded = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(loaded);
        assert_eq!(live.current().len(), 2);
    }
}

//! The directory of people in force, from the school's roster export (`gateway.roster`,
//! [`roster`]) and its LDAP or Active Directory (`gateway.ldap`, [`ldap`]), and its reloads.
//!
//! Like the policy, the directory sits behind an [`ArcSwap`]: readers take the current one
//! without locking, and a read swaps in a directory read completely. A roster that cannot be
//! read or has a bad line, or an LDAP read that fails, changes nothing: the error is returned
//! for the `directory_rejected` event and the last good copy of that source stays. With both
//! sources, the directory is everyone in either, the roster's entry winning for anyone in
//! both (it carries the class). Without a source, or before the first good read, the
//! directory is empty and every decision is the device's alone.

pub mod ldap;
pub mod radius;
pub mod roster;
pub mod sessions;
pub mod sign_in;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use schoolgate_people::Directory;
use tracing::{info, warn};

pub use self::roster::{RosterFileError, load};
use crate::watch::{Watch, watch_files};

/// The longest secret file read (a password, a shared secret).
const MAX_SECRET_FILE: u64 = 4096;

/// The first line of a secret's file (a bind password, a RADIUS shared secret), without its
/// line ending; `None` when that line is empty. Only the first 4 KiB are read.
pub(crate) fn first_line(path: &std::path::Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE)
        .read_to_string(&mut text)?;
    let line = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r');
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

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

/// The directory in use, and where it is read from.
#[derive(Debug)]
pub struct LivePeople {
    path: Option<PathBuf>,
    current: ArcSwap<Directory>,
    sources: Mutex<Sources>,
}

/// The last good read of each source.
#[derive(Debug, Default)]
struct Sources {
    /// The roster's directory, with a hash of the bytes it was read from.
    roster: Option<(u64, Arc<Directory>)>,
    ldap: Option<Arc<Directory>>,
}

impl Sources {
    fn merged(&self) -> Directory {
        let empty = Directory::default();
        let roster = self.roster.as_ref().map_or(&empty, |(_, d)| d);
        match &self.ldap {
            Some(ldap) if roster.is_empty() => ldap.as_ref().clone(),
            Some(ldap) => Directory::merged(roster, ldap),
            None => roster.clone(),
        }
    }
}

impl LivePeople {
    /// An empty directory, to be read from the roster at `path` (if any) by
    /// [`LivePeople::reload`] and from LDAP by [`LivePeople::use_ldap`].
    pub fn new(path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            path,
            current: ArcSwap::from_pointee(Directory::default()),
            sources: Mutex::new(Sources::default()),
        })
    }

    /// The directory in use now.
    pub fn current(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the roster again and uses it if it reads cleanly and says something new.
    /// `None` without a roster.
    pub fn reload(&self) -> Option<RosterRead> {
        let path = self.path.as_ref()?;
        let bytes = match roster::read(path) {
            Ok(b) => b,
            Err(error) => {
                warn!(error = %error, "the last good directory stays");
                return Some(RosterRead::Rejected(error));
            }
        };
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        let mut sources = self.sources();
        if sources.roster.as_ref().is_some_and(|(h, _)| *h == hash) {
            return Some(RosterRead::Unchanged);
        }
        match roster::parse(path, &bytes) {
            Ok(directory) => {
                let n = directory.len();
                sources.roster = Some((hash, Arc::new(directory)));
                self.current.store(Arc::new(sources.merged()));
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

    /// Uses what a good LDAP read found, beside the roster's people.
    pub fn use_ldap(&self, directory: Directory) {
        let mut sources = self.sources();
        sources.ldap = Some(Arc::new(directory));
        self.current.store(Arc::new(sources.merged()));
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
            .set_len(schoolgate_people::roster::MAX_BYTES + 1)
            .unwrap();
        assert!(matches!(
            live.reload(),
            Some(RosterRead::Rejected(RosterFileError::TooLarge { .. }))
        ));
        assert!(live.current().find("grace.o").is_some());
        assert!(LivePeople::new(None).reload().is_none());
    }

    #[test]
    fn the_roster_and_ldap_are_one_directory_the_rosters_entry_winning() {
        use schoolgate_people::{Person, Role, Username};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        std::fs::write(&path, "username,role,class\namira.k,pupil,6C\n").unwrap();
        let live = LivePeople::new(Some(path.clone()));
        let person = |name: &str, role: Role| Person {
            username: Username::new(name).unwrap(),
            display_name: name.to_owned(),
            role,
            class: None,
            groups: vec![role.group().to_owned()],
        };
        live.use_ldap(
            Directory::new(vec![
                person("amira.k", Role::Pupil),
                person("grace.o", Role::Staff),
            ])
            .unwrap(),
        );
        assert_eq!(live.current().len(), 2);
        assert_eq!(live.current().find("amira.k").unwrap().class, None);
        live.reload();
        let d = live.current();
        assert_eq!(d.len(), 2);
        assert_eq!(d.find("amira.k").unwrap().class.as_deref(), Some("6C"));
        assert!(d.find("grace.o").is_some());
        // A bad roster keeps both the last good roster and the directory's people.
        std::fs::write(&path, "username,role\namira.k,governor\n").unwrap();
        live.reload();
        assert_eq!(
            live.current().find("amira.k").unwrap().class.as_deref(),
            Some("6C")
        );
        assert_eq!(live.current().len(), 2);
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

//! The live policy, and hot reload.
//!
//! [`LivePolicy`] holds the policy in force behind an [`ArcSwap`]: readers (the resolver, the
//! firewall, inspection) take the current one without locking, and a reload swaps the pointer
//! in one step, so no reader ever sees half of an old policy and half of a new one.
//!
//! A reload builds the new policy completely before swapping. If the file is unreadable or
//! invalid, the errors are logged and returned and the last good policy stays in force.
//!
//! [`LivePolicy::watch`] watches the *directories* of the policy file and of its list files,
//! not the files themselves: editors save by writing a new file and renaming it over the old,
//! which replaces the inode a file watch would follow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use schoolgate_engine::Policy;
use tracing::{info, warn};

use crate::policy_file::{self, LoadError};

/// What a reload did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// A new policy is in force.
    Applied(Arc<Policy>),
    /// The files were read again but say the same as the policy in force.
    Unchanged,
    /// The files could not be read or are invalid; the previous policy stays in force.
    Rejected(LoadError),
}

#[derive(Debug)]
struct Files {
    fingerprint: u64,
    lists: Vec<PathBuf>,
}

/// The policy in force, and where it comes from.
#[derive(Debug)]
pub struct LivePolicy {
    path: PathBuf,
    current: ArcSwap<Policy>,
    files: Mutex<Files>,
}

impl LivePolicy {
    /// Loads the policy at `path`. Fails if it is unreadable or invalid: the agent does not
    /// start without a good policy.
    pub fn load(path: &Path) -> Result<Arc<Self>, LoadError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let loaded = policy_file::load(&path)?;
        let files = Files {
            fingerprint: loaded.fingerprint,
            lists: loaded.lists,
        };
        Ok(Arc::new(Self {
            path,
            current: ArcSwap::from_pointee(loaded.policy),
            files: Mutex::new(files),
        }))
    }

    /// The policy file's path, made absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Reads the files again and swaps the new policy in if it is valid and different.
    pub fn reload(&self) -> Outcome {
        let loaded = match policy_file::load(&self.path) {
            Ok(loaded) => loaded,
            Err(error) => {
                warn!(path = %self.path.display(), n_errors = error.n_errors(), "policy rejected; the previous policy stays in force");
                for line in error.to_string().lines() {
                    warn!("{line}");
                }
                return Outcome::Rejected(error);
            }
        };
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.fingerprint == loaded.fingerprint {
            return Outcome::Unchanged;
        }
        *files = Files {
            fingerprint: loaded.fingerprint,
            lists: loaded.lists,
        };
        let policy = Arc::new(loaded.policy);
        self.current.store(policy.clone());
        info!(path = %self.path.display(), n_rules = policy.rules().len(), n_domains = policy.n_domains(), "policy reloaded");
        Outcome::Applied(policy)
    }

    /// The files a change to which means a reload: the policy and its lists.
    fn watched_files(&self) -> Vec<PathBuf> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![self.path.clone()];
        out.extend(files.lists.iter().cloned());
        out
    }

    /// Watches the policy's files and reloads after each change, `debounce` after the last
    /// event of a burst (an editor's save is several events). `on_outcome` hears every reload.
    /// Watching stops when the returned [`Watch`] is dropped.
    pub fn watch(
        self: &Arc<Self>,
        debounce: Duration,
        mut on_outcome: impl FnMut(&Outcome) + Send + 'static,
    ) -> Result<Watch, notify::Error> {
        let (tx, rx) = mpsc::channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(debounce, None, tx)?;
        let mut dirs = BTreeSet::new();
        for dir in self.watched_files().iter().filter_map(|f| f.parent()) {
            if dirs.insert(dir.to_path_buf()) {
                debouncer.watch(dir, RecursiveMode::NonRecursive)?;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::clone(self);
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("policy-watch".into()).spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                let events = match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(events)) => events,
                    Ok(Err(errors)) => {
                        for e in errors {
                            warn!(error = %e, "watching the policy files");
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let wanted = live.watched_files();
                // Reading the files (as every reload does) raises access events; only a
                // change to a file can change the policy.
                let relevant = events
                    .iter()
                    .filter(|e| !matches!(e.kind, EventKind::Access(_)))
                    .flat_map(|e| e.paths.iter())
                    .any(|p| wanted.contains(p));
                if !relevant {
                    continue;
                }
                let outcome = live.reload();
                if matches!(outcome, Outcome::Applied(_)) {
                    // A new policy may name lists in directories not yet watched.
                    for dir in live.watched_files().iter().filter_map(|f| f.parent()) {
                        if dirs.insert(dir.to_path_buf())
                            && let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
                                warn!(dir = %dir.display(), error = %e, "cannot watch list directory");
                            }
                    }
                }
                on_outcome(&outcome);
            }
        })?;
        Ok(Watch {
            stop,
            thread: Some(thread),
        })
    }
}

/// A running watch; dropping it stops the watching thread.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

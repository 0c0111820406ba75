//! The live policy, and hot reload.
//!
//! [`LivePolicy`] holds the policy in force behind an [`ArcSwap`]: readers (the resolver, the
//! firewall, inspection) take the current one without locking, and a reload swaps the pointer
//! in one step, so no reader ever sees half of an old policy and half of a new one.
//!
//! A reload builds the new policy completely before swapping. If the file is unreadable or
//! invalid, the errors are logged and returned and the last good policy stays in force.
//!
//! [`LivePolicy::watch`] watches the policy file, its list files and the console's granted
//! exceptions (through their directories: see [`watch`](crate::watch)).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use schoolgate_engine::Policy;
use tracing::{info, warn};

use crate::policy_file::{self, LoadError};
pub use crate::watch::Watch;
use crate::watch::watch_files;

/// What a reload did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// A new policy is in force.
    Applied(Arc<Policy>),
    /// The files were read again but say the same as the policy in force.
    Unchanged,
    /// After a rejected edit, the files say again what the policy in force says (the edit
    /// was undone): worth reporting, since the last report was the rejection.
    Restored,
    /// The files could not be read or are invalid; the previous policy stays in force.
    Rejected(LoadError),
}

#[derive(Debug)]
struct Files {
    fingerprint: u64,
    lists: Vec<PathBuf>,
    /// The last reload was rejected.
    rejected: bool,
    /// The console's granted exceptions, once the state directory is known.
    added: Option<PathBuf>,
    /// The policy file's text in force.
    text: Arc<str>,
}

/// The policy in force, and where it comes from.
#[derive(Debug)]
pub struct LivePolicy {
    path: PathBuf,
    current: ArcSwap<Policy>,
    files: Mutex<Files>,
}

/// Logs the granted exceptions left out of a policy, each with why.
fn report_skipped(skipped: &[schoolgate_engine::PolicyError]) {
    for e in skipped {
        warn!(error = %e, "a granted exception does not fit the policy; it is left out");
    }
}

impl LivePolicy {
    /// Loads the policy at `path`. Fails if it is unreadable or invalid: the agent does not
    /// start without a good policy.
    pub fn load(path: &Path) -> Result<Arc<Self>, LoadError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let loaded = policy_file::load(&path, None)?;
        let files = Files {
            fingerprint: loaded.fingerprint,
            lists: loaded.lists,
            rejected: false,
            added: None,
            text: loaded.text.into(),
        };
        Ok(Arc::new(Self {
            path,
            current: ArcSwap::from_pointee(loaded.policy),
            files: Mutex::new(files),
        }))
    }

    /// A fingerprint of the files the policy in force was read from.
    pub fn fingerprint(&self) -> u64 {
        self.files
            .lock()
            .map_or_else(|e| e.into_inner().fingerprint, |f| f.fingerprint)
    }

    /// The policy file's path, made absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The policy file's text in force now.
    pub fn text(&self) -> Arc<str> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&files.text)
    }

    /// Adds the console's granted exceptions from `file` (in the state directory) to the
    /// policy, now and at every reload.
    pub fn add_from(&self, file: PathBuf) -> Outcome {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).added = Some(file);
        self.reload()
    }

    /// Reads the files again and swaps the new policy in if it is valid and different.
    pub fn reload(&self) -> Outcome {
        let added = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .added
            .clone();
        let loaded = match policy_file::load(&self.path, added.as_deref()) {
            Ok(loaded) => loaded,
            Err(error) => {
                warn!(path = %self.path.display(), n_errors = error.n_errors(), "policy rejected; the previous policy stays in force");
                for line in error.to_string().lines() {
                    warn!("{line}");
                }
                self.files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .rejected = true;
                return Outcome::Rejected(error);
            }
        };
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.fingerprint == loaded.fingerprint {
            if std::mem::take(&mut files.rejected) {
                info!(path = %self.path.display(), "policy file restored to the policy in force");
                return Outcome::Restored;
            }
            return Outcome::Unchanged;
        }
        report_skipped(&loaded.skipped);
        *files = Files {
            fingerprint: loaded.fingerprint,
            lists: loaded.lists,
            rejected: false,
            added,
            text: loaded.text.into(),
        };
        let policy = Arc::new(loaded.policy);
        self.current.store(policy.clone());
        info!(path = %self.path.display(), n_rules = policy.rules().len(), n_domains = policy.n_domains(), "policy reloaded");
        Outcome::Applied(policy)
    }

    /// The files a change to which means a reload: the policy, its lists and the granted
    /// exceptions.
    fn watched_files(&self) -> Vec<PathBuf> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![self.path.clone()];
        out.extend(files.lists.iter().cloned());
        out.extend(files.added.iter().cloned());
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
        let live = Arc::clone(self);
        let reloading = Arc::clone(self);
        watch_files(
            "policy-watch",
            debounce,
            move || live.watched_files(),
            move || on_outcome(&reloading.reload()),
        )
    }
}

//! Watching files for changes, by watching their directories.
//!
//! Editors save by writing a new file and renaming it over the old, which replaces the inode a
//! file watch would follow; DHCP servers rewrite lease files the same way. So the directories
//! are watched, and events are filtered down to the files wanted.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tracing::warn;

/// Watches the files `wanted()` names and calls `on_change` `debounce` after the last event of
/// a burst that touched one of them (a save is several events). `wanted` is asked again after
/// each change, so newly named files in new directories are watched too. Watching stops when
/// the returned [`Watch`] is dropped.
pub fn watch_files(
    thread_name: &str,
    debounce: Duration,
    wanted: impl Fn() -> Vec<PathBuf> + Send + 'static,
    mut on_change: impl FnMut() + Send + 'static,
) -> Result<Watch, notify::Error> {
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(debounce, None, tx)?;
    let mut dirs = BTreeSet::new();
    for dir in wanted().iter().filter_map(|f| f.parent()) {
        if dirs.insert(dir.to_path_buf()) {
            debouncer.watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                let events = match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(events)) => events,
                    Ok(Err(errors)) => {
                        for e in errors {
                            warn!(error = %e, "watching files");
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let files = wanted();
                // Reading the files (as every reload does) raises access events; only a
                // change to a file can change what it says.
                let relevant = events
                    .iter()
                    .filter(|e| !matches!(e.kind, EventKind::Access(_)))
                    .flat_map(|e| e.paths.iter())
                    .any(|p| files.contains(p));
                if !relevant {
                    continue;
                }
                on_change();
                for dir in wanted().iter().filter_map(|f| f.parent()) {
                    if dirs.insert(dir.to_path_buf())
                        && let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive)
                    {
                        warn!(dir = %dir.display(), error = %e, "cannot watch directory");
                    }
                }
            }
        })?;
    Ok(Watch {
        stop,
        thread: Some(thread),
    })
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

//! Reading a policy from disk: `policy.yaml` and the list files it names.
//!
//! The engine parses text; this module supplies the text. It also fingerprints what it read,
//! so a save that changes nothing does not count as a new policy.

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use schoolgate_engine::{Policy, PolicyErrors};

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read policy `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(PolicyErrors),
}

impl LoadError {
    /// How many problems this error reports.
    pub fn n_errors(&self) -> usize {
        match self {
            LoadError::Read { .. } => 1,
            LoadError::Invalid(errors) => errors.len(),
        }
    }
}

/// A policy as read from disk, with the files it came from.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// The list files the policy read, resolved against the policy's directory.
    pub lists: Vec<PathBuf>,
    /// A hash of the policy text and every list read, to tell real changes from touches.
    pub fingerprint: u64,
}

/// Reads and validates the policy at `path`.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = DefaultHasher::new();
    hasher.write(text.as_bytes());
    let read = RefCell::new((hasher, Vec::new()));
    let reader = |list: &Path| -> io::Result<String> {
        let content = std::fs::read_to_string(list)?;
        let mut read = read.borrow_mut();
        read.0.write(list.as_os_str().as_encoded_bytes());
        read.0.write(content.as_bytes());
        read.1.push(list.to_path_buf());
        Ok(content)
    };
    let policy = Policy::from_yaml(&text, path, &reader).map_err(LoadError::Invalid)?;
    let (hasher, lists) = read.into_inner();
    Ok(Loaded {
        policy,
        lists,
        fingerprint: hasher.finish(),
    })
}

//! Reading a policy from disk: `policy.yaml`, the list files it names, and the exceptions the
//! console granted (kept in the state directory as [`ADDED_FILE`], so a console outage ends
//! none of them early).
//!
//! The engine parses text; this module supplies the text. It also fingerprints what it read,
//! so a save that changes nothing does not count as a new policy.

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use schoolgate_engine::{Policy, PolicyError, PolicyErrors};

/// The file in the state directory holding the console's granted exceptions, as the engine
/// reads an added document (JSON, which is YAML).
pub const ADDED_FILE: &str = "console-exceptions.json";

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
    /// The list files the policy read (and feeds' copies it looked for), resolved against
    /// the policy's directory.
    pub lists: Vec<PathBuf>,
    /// A hash of the policy text, every list read and the added exceptions, to tell real
    /// changes from touches.
    pub fingerprint: u64,
    /// The policy file's text.
    pub text: String,
    /// Added exceptions left out, each with why.
    pub skipped: Vec<PolicyError>,
}

/// Reads and validates the policy at `path`, with the exceptions in `added` (a file that
/// does not exist adds none).
pub fn load(path: &Path, added: Option<&Path>) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let added_text = match added {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(t) => Some((t, file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(LoadError::Read {
                    path: file.to_path_buf(),
                    source,
                });
            }
        },
        None => None,
    };
    let mut hasher = DefaultHasher::new();
    hasher.write(text.as_bytes());
    if let Some((t, _)) = &added_text {
        hasher.write(t.as_bytes());
    }
    let read = RefCell::new((hasher, Vec::new()));
    let reader = |list: &Path| -> io::Result<String> {
        // Named before it is read: a feed's copy not fetched yet is watched all the same,
        // so its first arrival is read.
        read.borrow_mut().1.push(list.to_path_buf());
        let content = std::fs::read_to_string(list)?;
        let mut read = read.borrow_mut();
        read.0.write(list.as_os_str().as_encoded_bytes());
        read.0.write(content.as_bytes());
        Ok(content)
    };
    let (policy, skipped) = Policy::from_yaml_with(
        &text,
        path,
        &reader,
        added_text.as_ref().map(|(t, f)| (t.as_str(), *f)),
    )
    .map_err(LoadError::Invalid)?;
    let (hasher, lists) = read.into_inner();
    Ok(Loaded {
        policy,
        lists,
        fingerprint: hasher.finish(),
        text,
        skipped,
    })
}

//! The roster file (`gateway.roster`): read with a bound on its size, its errors given as
//! `path:line:column` for the log, `explain --user` and the `directory_rejected` event.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use schoolgate_people::Directory;
use schoolgate_people::roster::{self, RosterError};

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
pub(super) fn read(path: &Path) -> Result<Vec<u8>, RosterFileError> {
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

pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Directory, RosterFileError> {
    roster::parse(bytes).map_err(|errors| RosterFileError::Invalid {
        path: path.to_path_buf(),
        errors,
    })
}

//! The console's own files in its data directory, made readable by the console's user only:
//! the directory itself, the SQLite database (SQLite gives its `-wal` and `-shm` files the
//! database's mode), and `secrets.key`, the key that seals TOTP secrets in the database.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::auth::Sealer;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";

/// A file of the data directory could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Makes the data directory (mode 0750 if new) and, for SQLite, the database file with mode
/// 0600 before SQLite opens it; an existing database is given mode 0600.
pub fn prepare(data: &Path, sqlite: bool) -> Result<(), FileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(data)
        .map_err(at(data))?;
    if sqlite {
        let db = data.join("console.db");
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .map_err(at(&db))?;
        std::fs::set_permissions(&db, Permissions::from_mode(0o600)).map_err(at(&db))?;
    }
    Ok(())
}

/// The sealing key from `data/secrets.key`, made (32 random bytes, mode 0600) if there is
/// none yet.
pub fn sealer(data: &Path) -> Result<Sealer, FileError> {
    let path = data.join(KEY_FILE);
    let mut key = [0u8; 32];
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            use ring::rand::SecureRandom;
            ring::rand::SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| at(&path)(std::io::Error::other("no randomness")))?;
            f.write_all(&key)
                .and_then(|()| f.sync_all())
                .map_err(at(&path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut f = std::fs::File::open(&path).map_err(at(&path))?;
            f.read_exact(&mut key).map_err(at(&path))?;
        }
        Err(e) => return Err(at(&path)(e)),
    }
    Ok(Sealer::new(&key))
}

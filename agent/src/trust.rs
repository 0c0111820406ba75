//! Whom the agent's own TLS connections trust: the console, an LDAP directory and list feeds
//! are each reached with rustls on ring, safe protocol versions, and the certificates of a
//! CA file the operator names (a feed adds the system's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a CA file or the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("cannot read the CA file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the CA file {} holds no certificate", path.display())]
    Empty { path: PathBuf },
    #[error("TLS settings: {0}")]
    Settings(#[from] rustls::Error),
}

/// Adds the certificates of the PEM file `path` to `roots`; a file with none is refused
/// (a typo'd path to an empty file would otherwise trust nothing, or only the system).
pub fn add_file(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), TrustError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TrustError::Read {
            path: path.to_owned(),
            source,
        })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TrustError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The system's certificates; unreadable ones are passed over.
pub fn system() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// A client configuration trusting `roots`.
pub fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client configuration trusting only the certificates in `path`.
pub fn only(path: &Path) -> Result<rustls::ClientConfig, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    add_file(&mut roots, path)?;
    client_config(roots)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(only(&empty), Err(TrustError::Empty { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(only(&missing), Err(TrustError::Read { .. })));
    }
}

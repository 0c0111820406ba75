//! Reading the school's LDAP or Active Directory (`gateway.ldap`): bind with the service
//! account, search the users and the groups page by page, and hand the entries to
//! [`schoolgate_people::ldap::directory`], which makes people of them.
//!
//! Always over TLS (LDAPS or StartTLS; the policy refuses `ldap://` without StartTLS), trusting
//! the policy's `ca_file` or else the system's certificates. The whole read has a time limit,
//! and the entries it takes are bounded, so a slow or enormous directory cannot hold the agent.
//! The entries are read from the protocol's own structure without `ldap3`'s panicking
//! conversion: a server's odd answer is an error here, never a crash.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::StructureTag;
use ldap3::{LdapConnAsync, LdapConnSettings, ResultEntry, Scope};
use schoolgate_engine::policy::gateway::Ldap;
use schoolgate_people::ldap::{self as mapping, Entry, Mapping, RoleMatch, Synced};
use schoolgate_people::roster::MAX_PEOPLE;

/// How long one whole read may take: connect, bind and both searches.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries asked for in each page of a search (Active Directory's own limit is 1,000).
const PAGE_SIZE: i32 = 500;

/// Why a read of the directory failed; the last good directory stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LdapReadError {
    #[error("cannot read the LDAP password file {}: {source}", path.display())]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the LDAP password file {} is empty", path.display())]
    NoPassword { path: PathBuf },
    #[error("the LDAP server's certificates: {0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("{url} refused the bind as {dn}: {source}")]
    Bind {
        url: String,
        dn: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("the search under {base} failed: {source}")]
    Search {
        base: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("the search under {base} returned an entry that is not one")]
    Malformed { base: String },
    #[error("the search under {base} returned more than {limit} entries")]
    TooMany { base: String, limit: usize },
    #[error("no answer from {url} within {} s", READ_TIMEOUT.as_secs())]
    TimedOut { url: String },
    #[error(transparent)]
    Map(#[from] mapping::MapError),
}

/// The policy's LDAP settings as the mapping from entries to people.
pub fn mapping(config: &Ldap) -> Mapping {
    Mapping {
        username: config.username.clone(),
        display_name: config.display_name.clone(),
        class: config.class.clone(),
        year: config.year.clone(),
        pupils: config.pupils.iter().map(|p| RoleMatch::parse(p)).collect(),
        staff: config.staff.iter().map(|s| RoleMatch::parse(s)).collect(),
    }
}

/// Reads everyone from the directory, within [`READ_TIMEOUT`].
pub async fn read(config: &Ldap) -> Result<Synced, LdapReadError> {
    match tokio::time::timeout(READ_TIMEOUT, read_now(config)).await {
        Ok(read) => read,
        Err(_) => Err(LdapReadError::TimedOut {
            url: config.url.clone(),
        }),
    }
}

async fn read_now(config: &Ldap) -> Result<Synced, LdapReadError> {
    let password = password(&config.password_file)?;
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(config.start_tls);
    if let Some(ca) = &config.ca_file {
        settings = settings.set_config(tls(ca)?);
    }
    let url = config.url.clone();
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
        .await
        .map_err(|source| LdapReadError::Connect {
            url: url.clone(),
            source: Box::new(source),
        })?;
    ldap3::drive!(conn);
    ldap.simple_bind(&config.bind_dn, &password)
        .await
        .and_then(ldap3::LdapResult::success)
        .map_err(|source| LdapReadError::Bind {
            url: url.clone(),
            dn: config.bind_dn.clone(),
            source: Box::new(source),
        })?;
    let mut user_attributes = vec![
        config.username.as_str(),
        config.display_name.as_str(),
        "cn",
        "memberOf",
    ];
    user_attributes.extend(config.class.as_deref());
    user_attributes.extend(config.year.as_deref());
    let users = search(
        &mut ldap,
        &config.base_dn,
        &config.filter,
        user_attributes,
        MAX_PEOPLE,
    )
    .await?;
    let group_attributes = vec!["cn", "member", "uniqueMember", "memberUid"];
    let groups = search(
        &mut ldap,
        &config.groups_base_dn,
        &config.groups_filter,
        group_attributes,
        mapping::MAX_GROUP_ENTRIES,
    )
    .await?;
    // The answers are in hand; a failed unbind changes nothing.
    let _ = ldap.unbind().await;
    Ok(mapping::directory(&mapping(config), &users, &groups)?)
}

/// Every entry under `base` that `filter` selects, page by page, at most `limit`.
async fn search(
    ldap: &mut ldap3::Ldap,
    base: &str,
    filter: &str,
    attributes: Vec<&str>,
    limit: usize,
) -> Result<Vec<Entry>, LdapReadError> {
    let failed = |source| LdapReadError::Search {
        base: base.to_owned(),
        source: Box::new(source),
    };
    let adapters: Vec<Box<dyn Adapter<'_, _, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(PAGE_SIZE)),
    ];
    let mut stream = ldap
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attributes)
        .await
        .map_err(failed)?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await.map_err(failed)? {
        if entries.len() == limit {
            // Abandon the rest: the read is refused whole.
            let _ = stream.finish().await;
            return Err(LdapReadError::TooMany {
                base: base.to_owned(),
                limit,
            });
        }
        let entry = entry_of(entry).ok_or_else(|| LdapReadError::Malformed {
            base: base.to_owned(),
        })?;
        entries.push(entry);
    }
    stream.finish().await.success().map_err(failed)?;
    Ok(entries)
}

/// A search result entry (RFC 4511 §4.5.2: the DN, then each attribute with its values) as
/// text; values that are not UTF-8 (photos, SIDs) are left out. `None` if it is not one.
fn entry_of(entry: ResultEntry) -> Option<Entry> {
    let mut parts = entry.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attributes = Vec::new();
    for attribute in parts.next()?.expect_constructed()? {
        let mut attribute = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?;
        let values = attribute
            .next()?
            .expect_constructed()?
            .into_iter()
            .filter_map(StructureTag::expect_primitive)
            .filter_map(|v| String::from_utf8(v).ok())
            .collect();
        attributes.push((name, values));
    }
    Some(Entry { dn, attributes })
}

/// The bind password: the first line of its file.
fn password(path: &Path) -> Result<String, LdapReadError> {
    super::first_line(path)
        .map_err(|source| LdapReadError::Password {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| LdapReadError::NoPassword {
            path: path.to_owned(),
        })
}

/// TLS trusting only the certificates in `ca`.
fn tls(ca: &Path) -> Result<Arc<rustls::ClientConfig>, LdapReadError> {
    Ok(Arc::new(crate::trust::only(ca)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_password_is_the_first_line_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret pass\r\nsecond\n").unwrap();
        assert_eq!(password(&path).unwrap(), "s3cret pass");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            password(&path),
            Err(LdapReadError::NoPassword { .. })
        ));
        assert!(matches!(
            password(&dir.path().join("none")),
            Err(LdapReadError::Password { .. })
        ));
    }
}

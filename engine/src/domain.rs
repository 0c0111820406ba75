//! Domain names as the policy matches them, and the index that matches them.
//!
//! A listed domain covers itself and every subdomain on label boundaries: `facebook.com`
//! covers `m.facebook.com` but not `notfacebook.com`. Names are compared as lower-case ASCII
//! with any trailing dot removed. Listed domains written in Unicode are stored in their
//! ASCII (punycode) form, which is what appears in DNS queries and TLS SNI.
//!
//! Names asked about come from pupils' devices, so [`DomainIndex::lookup`] accepts any
//! string: a name that is too long or not ASCII simply matches nothing. It never allocates
//! for names of legal length.

use std::collections::HashMap;
use std::fmt;

use ipnet::IpNet;
use smallvec::SmallVec;

use crate::address::{AddressIndex, parse_listed_address};

/// The longest domain name in presentation form without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// What a listed domain can be rejected for. The caller adds where it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error("empty domain name")]
    Empty,
    #[error("`{value}` is longer than {MAX_NAME_LEN} characters")]
    TooLong { value: String },
    #[error("`{value}` has an empty label (two dots together, or a leading dot)")]
    EmptyLabel { value: String },
    #[error("`{value}` has a label longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong { value: String },
    #[error(
        "`{value}` has the character {ch:?}, which cannot appear in a domain name \
         (expected letters, digits, `-`, `_` and dots)"
    )]
    BadCharacter { value: String, ch: char },
    #[error("`{value}` has a label that starts or ends with `-`")]
    Hyphen { value: String },
    #[error(
        "`{value}` is a wildcard or URL; write the bare domain (`{suggestion}`): \
         a listed domain already covers all its subdomains"
    )]
    NotBare { value: String, suggestion: String },
    #[error("`{value}` is not a valid internationalised domain name")]
    Idna { value: String },
}

/// One entry of a list: a domain, or an address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Domain(Box<str>),
    /// The network, and the entry as written.
    Address(IpNet, Box<str>),
}

/// Parses a list entry as an administrator wrote it: an address or network if it reads as
/// one, else a domain ([`parse_listed`]).
pub fn parse_entry(raw: &str) -> Result<Listed, DomainError> {
    if let Some(net) = parse_listed_address(raw) {
        return Ok(Listed::Address(net, raw.trim().into()));
    }
    parse_listed(raw).map(Listed::Domain)
}

/// Parses a domain as an administrator wrote it (in `policy.yaml` or a list file) into its
/// matching form: lower-case ASCII, no trailing dot.
pub fn parse_listed(raw: &str) -> Result<Box<str>, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    if let Some(rest) = trimmed.strip_prefix("*.") {
        return Err(DomainError::NotBare {
            value: trimmed.to_owned(),
            suggestion: rest.trim_end_matches('.').to_ascii_lowercase(),
        });
    }
    if let Some((_, rest)) = trimmed.split_once("://") {
        let host = rest.split(['/', ':', '?']).next().unwrap_or(rest);
        return Err(DomainError::NotBare {
            value: trimmed.to_owned(),
            suggestion: host.to_ascii_lowercase(),
        });
    }
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let ascii: String = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(name).map_err(|_| DomainError::Idna {
            value: name.to_owned(),
        })?
    };
    validate_ascii(&ascii, trimmed)?;
    Ok(ascii.into_boxed_str())
}

fn validate_ascii(name: &str, original: &str) -> Result<(), DomainError> {
    let value = || original.to_owned();
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::TooLong { value: value() });
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel { value: value() });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong { value: value() });
        }
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            if matches!(ch, '/' | ':') {
                return Err(DomainError::NotBare {
                    value: value(),
                    suggestion: name.split(['/', ':']).next().unwrap_or(name).to_owned(),
                });
            }
            return Err(DomainError::BadCharacter { value: value(), ch });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen { value: value() });
        }
    }
    Ok(())
}

/// A name asked about, normalised into a stack buffer for lookup.
///
/// Holds at most [`MAX_NAME_LEN`] bytes; longer names have no normal form and match nothing.
pub struct QueryName {
    buf: [u8; MAX_NAME_LEN],
    len: usize,
}

impl QueryName {
    /// Normalises `name`: drops one trailing dot and lower-cases ASCII letters.
    /// Returns `None` when the result would be empty or longer than a DNS name can be.
    pub fn new(name: &str) -> Option<Self> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let dst = buf.get_mut(..bytes.len())?;
        dst.copy_from_slice(bytes);
        dst.make_ascii_lowercase();
        Some(Self {
            buf,
            len: bytes.len(),
        })
    }

    /// The normalised name. Lower-casing ASCII bytes keeps UTF-8 valid, so this never fails
    /// in practice; a failure would only mean "matches nothing".
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Debug for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueryName").field(&self.as_str()).finish()
    }
}

/// Identifies one target of `allow:`/`block:`: a category, or the domains written inline in
/// one rule, exception or `quarantine_allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u32);

/// Which targets a matched name belongs to, and the listed domain that matched each
/// (the most specific one).
pub type Matches<'a> = SmallVec<[(TargetId, &'a str); 4]>;

/// Every listed domain of every target, in one hash map, so that a lookup costs one probe per
/// label of the name asked about, however many domains and targets the policy has; and every
/// listed address, which a name that is an address literal is looked up in.
#[derive(Default)]
pub struct DomainIndex {
    pub addresses: AddressIndex,
    /// Listed domain → index into `sets`. Most domains share the same one or two target sets,
    /// so sets are stored once and referred to by number.
    map: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    sets: Vec<SmallVec<[TargetId; 2]>>,
    set_ids: HashMap<SmallVec<[TargetId; 2]>, u32, foldhash::fast::RandomState>,
    /// Listed domain or address (as matched) → the `[section]` of its list file.
    apps: HashMap<Box<str>, Box<str>, foldhash::fast::RandomState>,
}

impl fmt::Debug for DomainIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainIndex")
            .field("n_domains", &self.map.len())
            .field("n_sets", &self.sets.len())
            .field("addresses", &self.addresses)
            .finish()
    }
}

impl DomainIndex {
    /// Reserves room for `additional` more domains.
    pub fn reserve(&mut self, additional: usize) {
        self.map.reserve(additional);
    }

    /// Adds a listed domain or address to `target`.
    pub fn insert_entry(&mut self, entry: Listed, target: TargetId) {
        match entry {
            Listed::Domain(d) => self.insert(d, target),
            Listed::Address(net, text) => self.addresses.insert(net, text, target),
        }
    }

    /// Records that `entry` belongs to the app or tool `app` (its list file's section).
    pub fn set_app(&mut self, entry: &Listed, app: Box<str>) {
        let key = match entry {
            Listed::Domain(d) => d.clone(),
            Listed::Address(_, text) => text.clone(),
        };
        self.apps.insert(key, app);
    }

    /// The app or tool a listed domain or address (as a lookup returned it) belongs to.
    pub fn app(&self, listed: &str) -> Option<&str> {
        self.apps.get(listed).map(|a| &**a)
    }

    /// Adds `domain` (already in matching form) to `target`.
    pub fn insert(&mut self, domain: Box<str>, target: TargetId) {
        let current = self.map.get(&domain).copied();
        let mut set: SmallVec<[TargetId; 2]> = match current {
            Some(id) => self.sets.get(id as usize).cloned().unwrap_or_default(),
            None => SmallVec::new(),
        };
        if set.contains(&target) {
            return;
        }
        set.push(target);
        set.sort_unstable();
        let id = self.set_id(set);
        self.map.insert(domain, id);
    }

    fn set_id(&mut self, set: SmallVec<[TargetId; 2]>) -> u32 {
        if let Some(id) = self.set_ids.get(&set) {
            return *id;
        }
        let id = u32::try_from(self.sets.len()).unwrap_or(u32::MAX);
        self.sets.push(set.clone());
        self.set_ids.insert(set, id);
        id
    }

    /// How many distinct domains are listed.
    pub fn n_domains(&self) -> usize {
        self.map.len()
    }

    /// Finds every target whose listed domains cover `name`, each with the most specific
    /// listed domain that matched. `name` must already be normalised ([`QueryName`]).
    pub fn lookup<'a>(&'a self, name: &str, out: &mut Matches<'a>) {
        let mut rest = name;
        loop {
            if let Some((key, set_id)) = self.map.get_key_value(rest)
                && let Some(set) = self.sets.get(*set_id as usize)
            {
                for target in set {
                    if !out.iter().any(|(t, _)| t == target) {
                        out.push((*target, key));
                    }
                }
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, u32)]) -> DomainIndex {
        let mut idx = DomainIndex::default();
        for (d, t) in entries {
            idx.insert(parse_listed(d).unwrap(), TargetId(*t));
        }
        idx
    }

    fn find(idx: &DomainIndex, name: &str) -> Vec<(u32, String)> {
        let mut m = Matches::new();
        if let Some(q) = QueryName::new(name) {
            idx.lookup(q.as_str(), &mut m);
        }
        m.iter().map(|(t, d)| (t.0, d.to_string())).collect()
    }

    #[test]
    fn label_boundaries_case_and_trailing_dot() {
        let idx = index(&[("facebook.com", 1), ("Threads.NET.", 2)]);
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("facebook.com", &[(1, "facebook.com")]),
            ("m.facebook.com", &[(1, "facebook.com")]),
            ("a.b.c.facebook.com.", &[(1, "facebook.com")]),
            ("M.FaceBook.COM.", &[(1, "facebook.com")]),
            ("notfacebook.com", &[]),
            ("facebook.com.evil.example", &[]),
            ("facebook.co", &[]),
            ("com", &[]),
            ("threads.net", &[(2, "threads.net")]),
            ("www.threads.net", &[(2, "threads.net")]),
            ("", &[]),
            (".", &[]),
            ("..facebook.com", &[(1, "facebook.com")]),
        ];
        for (name, want) in cases {
            let want: Vec<(u32, String)> = want.iter().map(|(t, d)| (*t, d.to_string())).collect();
            assert_eq!(find(&idx, name), want, "{name}");
        }
    }

    #[test]
    fn most_specific_listed_domain_wins_per_target() {
        let idx = index(&[
            ("google.com", 1),
            ("mail.google.com", 1),
            ("mail.google.com", 2),
        ]);
        assert_eq!(
            find(&idx, "x.mail.google.com"),
            vec![(1, "mail.google.com".into()), (2, "mail.google.com".into())]
        );
        assert_eq!(find(&idx, "www.google.com"), vec![(1, "google.com".into())]);
    }

    #[test]
    fn hostile_names_match_nothing_and_do_not_panic() {
        let idx = index(&[("facebook.com", 1)]);
        let long = "a.".repeat(200) + "facebook.com";
        assert!(
            find(&idx, &long).is_empty(),
            "over-long names have no normal form"
        );
        assert!(find(&idx, "faceböok.com").is_empty());
        assert!(find(&idx, "\u{0}.facebook.com").len() == 1);
        assert!(find(&idx, "facebook\u{0}.com").is_empty());
    }

    #[test]
    fn listed_domains_are_validated() {
        let ok = [
            ("Example.COM.", "example.com"),
            ("  a-b.example  ", "a-b.example"),
            ("_dns.resolver.arpa", "_dns.resolver.arpa"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("tk", "tk"),
        ];
        for (raw, want) in ok {
            assert_eq!(&*parse_listed(raw).unwrap(), want, "{raw}");
        }
        type Check = fn(&DomainError) -> bool;
        let bad: &[(&str, Check)] = &[
            ("", |e| matches!(e, DomainError::Empty)),
            ("a..b", |e| matches!(e, DomainError::EmptyLabel { .. })),
            (".a", |e| matches!(e, DomainError::EmptyLabel { .. })),
            ("-a.com", |e| matches!(e, DomainError::Hyphen { .. })),
            ("a b.com", |e| {
                matches!(e, DomainError::BadCharacter { ch: ' ', .. })
            }),
            (
                "*.facebook.com",
                |e| matches!(e, DomainError::NotBare { suggestion, .. } if suggestion == "facebook.com"),
            ),
            (
                "https://www.facebook.com/x",
                |e| matches!(e, DomainError::NotBare { suggestion, .. } if suggestion == "www.facebook.com"),
            ),
            ("facebook.com/groups", |e| {
                matches!(e, DomainError::NotBare { .. })
            }),
        ];
        for (raw, check) in bad {
            let err = parse_listed(raw).unwrap_err();
            assert!(check(&err), "{raw}: {err}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(matches!(
            parse_listed(&long_label),
            Err(DomainError::LabelTooLong { .. })
        ));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        assert!(matches!(
            parse_listed(&long_name),
            Err(DomainError::TooLong { .. })
        ));
    }

    #[test]
    fn shared_target_sets_are_stored_once() {
        let mut idx = DomainIndex::default();
        for i in 0..1000 {
            idx.insert(format!("d{i}.example").into(), TargetId(7));
        }
        idx.insert("d1.example".into(), TargetId(3));
        assert_eq!(idx.n_domains(), 1000);
        assert_eq!(idx.sets.len(), 2);
        assert_eq!(
            find(&idx, "x.d1.example"),
            vec![(3, "d1.example".into()), (7, "d1.example".into())]
        );
    }
}

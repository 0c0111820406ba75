//! Categories and their list files, and the targets (categories and domains) rules name.

use super::*;

impl Compiler<'_> {
    pub(super) fn categories(
        &mut self,
        raw: &Ordered<S<crate::policy::raw::RawCategory>>,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> HashMap<String, TargetId> {
        let mut names = HashMap::new();
        for (key, c) in &raw.0 {
            let reserved = [(
                ALL,
                "`all` means every group; a category cannot take that name",
            )];
            if !self.key_name(key, &reserved) {
                continue;
            }
            let id = TargetId(u32::try_from(targets.len()).unwrap_or(u32::MAX));
            let mut n_domains = 0usize;
            for d in &c.value.domains {
                match parse_entry(&d.value) {
                    Ok(entry) => {
                        n_domains += usize::from(matches!(entry, Listed::Domain(_)));
                        index.insert_entry(entry, id);
                    }
                    Err(source) => self.error(d, ErrorKind::Domain { source }),
                }
            }
            for list in &c.value.lists {
                n_domains += self.list(list, id, index);
            }
            for feed in &c.value.feeds {
                n_domains += self.feed(&key.value, feed, id, index);
            }
            let technique = c.value.technique.as_ref().and_then(|t| {
                let found = Technique::from_name(t.value.trim());
                if found.is_none() {
                    self.error(
                        t,
                        ErrorKind::Technique {
                            name: t.value.clone(),
                        },
                    );
                }
                found
            });
            if c.value.lists.is_empty() && c.value.domains.is_empty() && c.value.feeds.is_empty() {
                self.error(
                    c,
                    ErrorKind::Empty {
                        what: "category",
                        name: key.value.clone(),
                        needs: "lists, feeds or domains",
                    },
                );
            }
            let label = c
                .value
                .label
                .clone()
                .unwrap_or_else(|| humanise(&key.value));
            targets.push(Target::Category {
                name: key.value.clone(),
                label,
                description: c.value.description.clone(),
                n_domains,
                technique,
            });
            if c.value.locked {
                self.locked.push((id, key.value.clone()));
            }
            names.insert(key.value.clone(), id);
        }
        names
    }

    /// The locked category `id` is, if it is one.
    fn locked_name(&self, id: TargetId) -> Option<String> {
        self.locked
            .iter()
            .find(|(l, _)| *l == id)
            .map(|(_, name)| name.clone())
    }

    /// Refuses each item of `list` (what a `what` opens) that would open a locked category:
    /// the category itself, or a domain or address it lists (found in `index`, when given).
    pub(super) fn refuse_locked(
        &mut self,
        list: &[S<String>],
        names: &Names,
        index: Option<&DomainIndex>,
        what: &'static str,
    ) {
        if self.locked.is_empty() {
            return;
        }
        for item in list {
            let value = item.value.trim();
            let category = match names.categories.get(value) {
                Some(id) => self.locked_name(*id),
                None => {
                    let mut found = crate::domain::Matches::new();
                    match (index, parse_entry(value)) {
                        (Some(index), Ok(Listed::Domain(d))) => index.lookup(&d, &mut found),
                        (Some(index), Ok(Listed::Address(net, _))) => {
                            index.addresses.lookup(net.addr(), &mut found);
                        }
                        _ => {}
                    }
                    found.iter().find_map(|(id, _)| self.locked_name(*id))
                }
            };
            if let Some(category) = category {
                self.error(
                    item,
                    ErrorKind::Locked {
                        value: value.to_owned(),
                        category,
                        what,
                    },
                );
            }
        }
    }

    /// Reads one list file (domains, addresses and networks) into the index; returns how many
    /// domains it listed.
    pub(super) fn list(
        &mut self,
        list: &S<String>,
        id: TargetId,
        index: &mut DomainIndex,
    ) -> usize {
        let path = self.base.join(list.value.trim());
        let text = match self.lists.read_list(&path) {
            Ok(text) => text,
            Err(source) => {
                self.error(list, ErrorKind::ReadList { path, source });
                return 0;
            }
        };
        self.list_text(list, &path, &text, id, index)
    }

    /// Reads a category's feed: checks what `policy.yaml` says of it, and reads its last good
    /// copy, if the agent has fetched one, as a list file.
    fn feed(
        &mut self,
        category: &str,
        raw: &S<crate::policy::raw::RawFeed>,
        id: TargetId,
        index: &mut DomainIndex,
    ) -> usize {
        use crate::policy::feed::{self as f, Feed, FeedFormat, Pin};
        let r = &raw.value;
        let url = r.url.value.trim();
        let host = url.strip_prefix("https://").and_then(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            (!host.is_empty() && !host.contains(['@', ' '])).then_some(host)
        });
        if host.is_none() {
            self.error(
                &r.url,
                ErrorKind::FeedUrl {
                    value: url.to_owned(),
                },
            );
        }
        let format = match &r.format {
            None => Some(FeedFormat::Domains),
            Some(name) => {
                let found = FeedFormat::from_name(name.value.trim());
                if found.is_none() {
                    self.error(
                        name,
                        ErrorKind::FeedFormat {
                            value: name.value.clone(),
                        },
                    );
                }
                found
            }
        };
        let section = r.section.as_ref().map(|s| s.value.trim().to_owned());
        match (format, &r.section) {
            (Some(FeedFormat::Ut1), None) => self.error(
                raw,
                ErrorKind::FeedSection {
                    problem: "a `ut1` feed needs `section`: the category directory to read (adult, gambling…)",
                },
            ),
            (Some(other), Some(s)) if other != FeedFormat::Ut1 => self.error(
                s,
                ErrorKind::FeedSection {
                    problem: "`section` is for `ut1` archives only",
                },
            ),
            _ => {}
        }
        let refresh = match &r.refresh {
            None => Some(f::DEFAULT_REFRESH),
            Some(t) => {
                let found = f::parse_refresh(&t.value).filter(|d| *d >= f::MIN_REFRESH);
                if found.is_none() {
                    self.error(
                        t,
                        ErrorKind::FeedRefresh {
                            value: t.value.clone(),
                        },
                    );
                }
                found
            }
        };
        let max_bytes = match &r.max_size {
            None => Some(f::DEFAULT_MAX_BYTES),
            Some(t) => {
                let found =
                    f::parse_size(&t.value).filter(|n| (1..=f::LARGEST_MAX_BYTES).contains(n));
                if found.is_none() {
                    self.error(
                        t,
                        ErrorKind::FeedSize {
                            value: t.value.clone(),
                        },
                    );
                }
                found
            }
        };
        let pin = match (&r.sha256, &r.minisign_key) {
            (Some(_), Some(key)) => {
                self.error(key, ErrorKind::FeedTwoPins);
                None
            }
            (Some(d), None) => match f::parse_sha256(&d.value) {
                Some(digest) => Some(Pin::Sha256(digest)),
                None => {
                    self.error(
                        d,
                        ErrorKind::FeedSha256 {
                            value: d.value.clone(),
                        },
                    );
                    None
                }
            },
            (None, Some(key)) => {
                let k = key.value.trim();
                let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
                if k.len() == 56 && k.starts_with("RW") && k.chars().all(base64) {
                    Some(Pin::Minisign(k.to_owned()))
                } else {
                    self.error(
                        key,
                        ErrorKind::FeedMinisignKey {
                            value: k.to_owned(),
                        },
                    );
                    None
                }
            }
            (None, None) => Some(Pin::None),
        };
        let (Some(format), Some(refresh), Some(max_bytes), Some(pin), Some(_)) =
            (format, refresh, max_bytes, pin, host)
        else {
            return 0;
        };
        let cache = self
            .feed_dir
            .join(f::cache_name(category, url, section.as_deref()));
        self.feeds.push(Feed {
            category: category.to_owned(),
            url: url.to_owned(),
            format,
            section,
            refresh,
            max_bytes,
            pin,
            ca_file: r.ca_file.as_ref().map(|c| PathBuf::from(c.value.trim())),
            cache: cache.clone(),
        });
        // Not fetched yet: nothing, and no error (the agent fetches it, then the policy is
        // read again).
        match self.lists.read_list(&cache) {
            Ok(text) => self.list_text(&r.url, &cache, &text, id, index),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                self.error(
                    &r.url,
                    ErrorKind::ReadList {
                        path: cache,
                        source,
                    },
                );
                0
            }
        }
    }

    /// Reads the text of the list file at `path` (named at `list` in `policy.yaml`) into the
    /// index; returns how many domains it listed.
    fn list_text<T>(
        &mut self,
        list: &S<T>,
        path: &std::path::Path,
        text: &str,
        id: TargetId,
        index: &mut DomainIndex,
    ) -> usize {
        let list_file: Arc<str> = path.display().to_string().into();
        // A rough count of lines, to size the index once rather than grow it many times.
        index.reserve(text.len() / 16);
        let mut n = 0;
        let mut n_errors = 0;
        // The `[name]` section the lines are in: the app or tool their entries belong to.
        let mut section: Option<Box<str>> = None;
        for (i, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let trimmed = content.trim();
            if trimmed.is_empty() {
                continue;
            }
            let parsed = match trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) if is_section_name(name) => {
                    section = Some(name.into());
                    continue;
                }
                Some(name) => Err(ErrorKind::Section {
                    name: name.to_owned(),
                }),
                None => parse_entry(trimmed).map_err(|source| ErrorKind::Domain { source }),
            };
            match parsed {
                Ok(entry) => {
                    n += usize::from(matches!(entry, Listed::Domain(_)));
                    if let Some(app) = &section {
                        index.set_app(&entry, app.clone());
                    }
                    index.insert_entry(entry, id);
                }
                Err(kind) => {
                    n_errors += 1;
                    if n_errors <= MAX_ERRORS_PER_LIST {
                        let column = content.len() - content.trim_start().len() + 1;
                        let at = Location {
                            file: list_file.clone(),
                            line: i as u64 + 1,
                            column: column as u64,
                        };
                        self.errors.push(PolicyError { at, kind });
                    }
                }
            }
        }
        if n_errors > MAX_ERRORS_PER_LIST {
            self.error(
                list,
                ErrorKind::TooManyListErrors {
                    path: list_file.to_string(),
                    n_more: n_errors - MAX_ERRORS_PER_LIST,
                },
            );
        }
        n
    }

    /// Resolves `allow:`/`block:` entries: category names, or domains and addresses gathered
    /// into one inline target for this entry.
    pub(super) fn targets(
        &mut self,
        list: &[S<String>],
        names: &Names,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Vec<TargetId> {
        let mut out = Vec::new();
        let mut inline: Vec<Listed> = Vec::new();
        for item in list {
            let value = item.value.trim();
            if let Some(id) = names.categories.get(value) {
                if !out.contains(id) {
                    out.push(*id);
                }
                continue;
            }
            let entry = parse_entry(value);
            let looks_like_category =
                !value.contains('.') && !matches!(entry, Ok(Listed::Address(..)));
            match entry {
                Ok(entry) if !looks_like_category => inline.push(entry),
                result => {
                    let known = one_of(&names.categories, None);
                    let kind = match result {
                        Err(source) if !looks_like_category => ErrorKind::Target {
                            value: value.to_owned(),
                            categories: known,
                            source,
                        },
                        _ => ErrorKind::Unknown {
                            what: "category",
                            name: value.to_owned(),
                            expected: format!("{known}, or a domain such as youtube.com"),
                        },
                    };
                    self.error(item, kind);
                }
            }
        }
        if !inline.is_empty() {
            let id = TargetId(u32::try_from(targets.len()).unwrap_or(u32::MAX));
            let mut domains = Vec::with_capacity(inline.len());
            for entry in inline {
                domains.push(match &entry {
                    Listed::Domain(d) => d.clone(),
                    Listed::Address(_, text) => text.clone(),
                });
                index.insert_entry(entry, id);
            }
            targets.push(Target::Domains { domains });
            out.push(id);
        }
        out
    }
}

/// A list section's name: what reports call the app or tool (`instagram`, `psiphon`).
fn is_section_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

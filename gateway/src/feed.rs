//! A list feed's bytes read into the entries of a list file: the formats public blocklists
//! are published in, each checked before it may replace the copy a school already has.
//!
//! - `domains`: one domain (or address, or network) per line, `#` comments.
//! - `hosts`: a hosts file: `0.0.0.0 name` or `127.0.0.1 name` lines, each name after the
//!   address an entry (the loopback names themselves are not).
//! - `adblock`: AdBlock-style network rules: `||domain^` blocks a domain and its
//!   subdomains. Exceptions (`@@`), cosmetic rules (`##`), comments (`!`) and rules with a
//!   path or options other than `$important`/`$all` say nothing about a whole domain and are
//!   passed over.
//! - `ut1`: the Université Toulouse Capitole (UT1) and Shallalist layout, a gzip'd tar of
//!   one directory per category, each with a `domains` file; `section` names the category.
//!
//! - `onionoo`: the Tor Project's relay details (`onionoo.torproject.org/details`, JSON):
//!   every relay's OR addresses, without their ports. (The bulk exit list,
//!   `check.torproject.org/torbulkexitlist`, is one address per line: `domains` reads it.)
//!
//! A feed that parses to nothing, or in which more than one line in ten is not an entry of
//! its format, is refused whole: a truncated download or an HTML error page must never
//! empty a category or fill it with junk.

use std::io::Read;

use schoolgate_engine::domain::{DomainError, Listed, parse_entry};
use schoolgate_engine::policy::feed::FeedFormat as Format;

/// Why a feed's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    #[error("the feed is not UTF-8 text (at byte {at})")]
    NotText { at: usize },
    #[error("the feed lists nothing")]
    Empty,
    #[error(
        "{bad} of {lines} lines are not entries of the {format} format (more than one in ten), \
         the first at line {line}, column {column}: {source}"
    )]
    TooManyBad {
        format: &'static str,
        bad: usize,
        lines: usize,
        line: usize,
        column: usize,
        #[source]
        source: DomainError,
    },
    #[error("the feed is not a gzip'd tar archive: {reason}")]
    Archive { reason: String },
    #[error("the archive has no `{section}/domains` file (its categories: {found})")]
    NoSection { section: String, found: String },
    #[error("the `ut1` format needs `section`, the category directory to read")]
    NoSectionGiven,
    #[error("the feed is not Onionoo relay details: {reason}")]
    Onionoo { reason: String },
}

/// A feed read into entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entries {
    /// Each entry as a list file line, in the feed's order, each once.
    pub lines: Vec<String>,
    /// Lines that were not entries (under the one-in-ten bound).
    pub bad: usize,
}

impl Entries {
    /// The entries as a list file, headed by where they came from (`source`).
    pub fn to_list_file(&self, source: &str) -> String {
        let mut out = format!("# {} entries from {source}\n", self.lines.len());
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Reads `bytes` in `format`; `section` is the category directory of a `ut1` archive. At
/// most `max_unpacked` bytes are read out of an archive.
pub fn parse(
    format: Format,
    section: Option<&str>,
    bytes: &[u8],
    max_unpacked: u64,
) -> Result<Entries, FeedError> {
    match format {
        Format::Ut1 => {
            let section = section.ok_or(FeedError::NoSectionGiven)?;
            let domains = ut1_domains(bytes, section, max_unpacked)?;
            lines(Format::Ut1, &domains, |l| Some((l, 0)))
        }
        Format::Domains => lines(format, bytes, |l| Some((l, 0))),
        Format::Hosts => lines(format, bytes, hosts_line),
        Format::Adblock => lines(format, bytes, adblock_line),
        Format::Onionoo => onionoo(bytes),
    }
}

/// Onionoo's relay details: `{"relays": [{"or_addresses": ["198.51.100.7:9001",
/// "[2001:db8::7]:443"]}, …]}`.
fn onionoo(bytes: &[u8]) -> Result<Entries, FeedError> {
    #[derive(serde::Deserialize)]
    struct Details {
        relays: Vec<Relay>,
    }
    #[derive(serde::Deserialize)]
    struct Relay {
        #[serde(default)]
        or_addresses: Vec<String>,
    }
    let details: Details = serde_json::from_slice(bytes).map_err(|e| FeedError::Onionoo {
        reason: e.to_string(),
    })?;
    let mut text = String::new();
    for address in details.relays.iter().flat_map(|r| &r.or_addresses) {
        // The address without its port: `[v6]:port` or `v4:port`.
        let host = match address.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => address
                .rsplit_once(':')
                .map_or(address.as_str(), |(h, _)| h),
        };
        text.push_str(host);
        text.push('\n');
    }
    lines(Format::Onionoo, text.as_bytes(), |l| Some((l, 0)))
}

/// Each non-comment line through `pick`, which gives the entry's text and its column
/// offset, or `None` for a line that says nothing (and is not an error).
fn lines(
    format: Format,
    bytes: &[u8],
    pick: impl Fn(&str) -> Option<(&str, usize)>,
) -> Result<Entries, FeedError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FeedError::NotText {
        at: e.valid_up_to(),
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let (mut bad, mut counted) = (0usize, 0usize);
    let mut first_bad = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if line.is_empty() || (format == Format::Adblock && line.starts_with('!')) {
            continue;
        }
        counted += 1;
        let Some((entry, offset)) = pick(line) else {
            continue;
        };
        match parse_entry(entry) {
            Ok(listed) => {
                let text = match listed {
                    Listed::Domain(d) => d.into_string(),
                    Listed::Address(_, written) => written.into_string(),
                };
                if seen.insert(text.clone()) {
                    out.push(text);
                }
            }
            Err(source) => {
                bad += 1;
                first_bad.get_or_insert((i + 1, indent + offset + 1, source));
            }
        }
    }
    if let Some((line, column, source)) = first_bad
        && bad * 10 > counted
    {
        return Err(FeedError::TooManyBad {
            format: format.as_str(),
            bad,
            lines: counted,
            line,
            column,
            source,
        });
    }
    if out.is_empty() {
        return Err(FeedError::Empty);
    }
    Ok(Entries { lines: out, bad })
}

/// A hosts file line: the name after a blocking address; `localhost` and its kind, and
/// lines for other addresses, say nothing.
fn hosts_line(line: &str) -> Option<(&str, usize)> {
    let mut fields = line.split_whitespace();
    let address = fields.next()?;
    if !matches!(address, "0.0.0.0" | "127.0.0.1" | "::" | "::1" | "::0") {
        // A line that is not a hosts line at all is an error, found by parsing it whole.
        return if address.parse::<std::net::IpAddr>().is_ok() {
            None
        } else {
            Some((line, 0))
        };
    }
    let name = fields.next()?;
    if matches!(
        name,
        "localhost"
            | "localhost.localdomain"
            | "local"
            | "broadcasthost"
            | "ip6-localhost"
            | "ip6-loopback"
            | "0.0.0.0"
    ) {
        return None;
    }
    let offset = line.find(name).unwrap_or(0);
    Some((name, offset))
}

/// An AdBlock network rule that blocks a whole domain: `||domain^`, optionally with
/// `$important` or `$all`.
fn adblock_line(line: &str) -> Option<(&str, usize)> {
    // Exceptions (`@@||…`) and cosmetic rules (`site##…`, cut at their `#` as a comment by
    // the time they come here) do not start with `||`.
    let rest = line.strip_prefix("||")?;
    let (rule, options) = match rest.split_once('$') {
        Some((rule, options)) => (rule, Some(options)),
        None => (rest, None),
    };
    if options.is_some_and(|o| !o.split(',').all(|o| matches!(o, "important" | "all"))) {
        return None;
    }
    let domain = rule.strip_suffix('^')?;
    // A path or a wildcard is narrower than a domain.
    if domain.contains(['/', '*', '^', '|']) {
        return None;
    }
    Some((domain, 2))
}

/// The `domains` file of `section` in a UT1/Shallalist archive (`blacklists/adult/domains`,
/// `BL/gamble/domains`), read out of its gzip'd tar.
fn ut1_domains(bytes: &[u8], section: &str, max_unpacked: u64) -> Result<Vec<u8>, FeedError> {
    let archive_error = |e: std::io::Error| FeedError::Archive {
        reason: e.to_string(),
    };
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz.take(max_unpacked));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let path = entry.path().map_err(archive_error)?.into_owned();
        let mut parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().map(String::as_str) != Some("domains") {
            continue;
        }
        parts.pop();
        let Some(dir) = parts.pop() else { continue };
        if dir == section && entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).map_err(archive_error)?;
            return Ok(out);
        }
        found.push(dir);
    }
    found.sort();
    found.dedup();
    Err(FeedError::NoSection {
        section: section.to_owned(),
        found: if found.is_empty() {
            "none".to_owned()
        } else {
            found.join(", ")
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 30;

    #[test]
    fn plain_domains_with_comments_addresses_and_repeats() {
        let feed =
            b"# a list\nbet.example\nBET.example.\n  casino.example # online\n\n198.51.100.0/24\n";
        let e = parse(Format::Domains, None, feed, MAX).unwrap();
        assert_eq!(
            e.lines,
            ["bet.example", "casino.example", "198.51.100.0/24"]
        );
        assert_eq!(e.bad, 0);
        assert_eq!(
            e.to_list_file("https://lists.example/gambling.txt"),
            "# 3 entries from https://lists.example/gambling.txt\nbet.example\ncasino.example\n198.51.100.0/24\n"
        );
    }

    #[test]
    fn a_hosts_file() {
        let feed = b"127.0.0.1 localhost\n::1 ip6-localhost\n0.0.0.0 0.0.0.0\n\
                     0.0.0.0 ads.example\n127.0.0.1\tTracker.example # tracking\n\
                     192.168.1.1 router.lan\n";
        let e = parse(Format::Hosts, None, feed, MAX).unwrap();
        assert_eq!(e.lines, ["ads.example", "tracker.example"]);
    }

    #[test]
    fn adblock_rules_that_block_whole_domains() {
        let feed = b"[Adblock Plus 2.0]\n! Title: test\n||bad.example^\n||worse.example^$important\n\
                     ||ads.example/banner^\n@@||good.example^\nexample.org##.ad\n||third.example^$script\n";
        // The header line is not a rule and not an error of the format; one bad line in
        // seven is under the bound.
        let e = parse(Format::Adblock, None, feed, MAX).unwrap();
        assert_eq!(e.lines, ["bad.example", "worse.example"]);
    }

    #[test]
    fn an_error_page_or_junk_is_refused_with_where() {
        let html =
            b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n";
        match parse(Format::Domains, None, html, MAX) {
            Err(FeedError::TooManyBad {
                line: 1,
                column: 1,
                bad: 4,
                lines: 4,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(Format::Domains, None, b"# nothing\n\n", MAX),
            Err(FeedError::Empty)
        );
        assert_eq!(
            parse(Format::Domains, None, b"ok.example\n\xff\xfe", MAX),
            Err(FeedError::NotText { at: 11 })
        );
        // One bad line in twenty passes, and is counted.
        let mut feed = String::new();
        for i in 0..19 {
            feed.push_str(&format!("site{i}.example\n"));
        }
        feed.push_str("not a domain\n");
        assert_eq!(
            parse(Format::Domains, None, feed.as_bytes(), MAX)
                .unwrap()
                .bad,
            1
        );
    }

    #[test]
    fn onionoo_relay_details() {
        let json = br#"{"version":"8.0","relays":[
            {"nickname":"a","or_addresses":["198.51.100.7:9001","[2001:db8::7]:443"]},
            {"nickname":"b","or_addresses":["203.0.113.9:443"]},
            {"nickname":"c"}],"bridges":[]}"#;
        let e = parse(Format::Onionoo, None, json, MAX).unwrap();
        assert_eq!(e.lines, ["198.51.100.7", "2001:db8::7", "203.0.113.9"]);
        assert!(matches!(
            parse(Format::Onionoo, None, b"<html>", MAX),
            Err(FeedError::Onionoo { .. })
        ));
        assert_eq!(
            parse(Format::Onionoo, None, br#"{"relays":[]}"#, MAX),
            Err(FeedError::Empty)
        );
    }

    /// A gzip'd tar in the UT1 layout.
    fn ut1(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_ut1_archive_one_category_of_it() {
        let archive = ut1(&[
            ("blacklists/README", b"UT1"),
            ("blacklists/adult/domains", b"adult.example\nporn.example\n"),
            ("blacklists/adult/urls", b"example.org/adult\n"),
            ("blacklists/gambling/domains", b"bet.example\n"),
        ]);
        let e = parse(Format::Ut1, Some("gambling"), &archive, MAX).unwrap();
        assert_eq!(e.lines, ["bet.example"]);
        match parse(Format::Ut1, Some("violence"), &archive, MAX) {
            Err(FeedError::NoSection { found, .. }) => assert_eq!(found, "adult, gambling"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(Format::Ut1, None, &archive, MAX),
            Err(FeedError::NoSectionGiven)
        );
        assert!(matches!(
            parse(Format::Ut1, Some("adult"), b"not gzip", MAX),
            Err(FeedError::Archive { .. })
        ));
        // Shallalist's directory name.
        let shalla = ut1(&[("BL/gamble/domains", b"casino.example\n")]);
        assert_eq!(
            parse(Format::Ut1, Some("gamble"), &shalla, MAX)
                .unwrap()
                .lines,
            ["casino.example"]
        );
        // An archive that unpacks past the bound is cut there, and so fails.
        assert!(parse(Format::Ut1, Some("gambling"), &archive, 600).is_err());
    }
}

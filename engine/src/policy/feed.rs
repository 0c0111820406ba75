//! A category's list feeds: a list published at an HTTPS address that the agent fetches and
//! refreshes itself (the DfE's "appropriate filtering" expects lists kept current), read
//! from `policy.yaml`.
//!
//! The policy holds what to fetch and where its last good copy lives; the agent fetches,
//! checks and stores it there, and the policy reads that copy like a list file. A feed never
//! fetched yet lists nothing, without error.

use std::path::PathBuf;
use std::time::Duration;

/// The formats a feed may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// One domain, address or network per line.
    Domains,
    /// A hosts file (`0.0.0.0 name`).
    Hosts,
    /// AdBlock-style `||domain^` rules.
    Adblock,
    /// A UT1/Shallalist archive (gzip'd tar, a directory per category).
    Ut1,
    /// The Tor Project's Onionoo relay details (JSON): every relay's OR addresses.
    Onionoo,
}

impl FeedFormat {
    /// Every format's name, as `policy.yaml` writes it.
    pub const NAMES: [&'static str; 5] = ["domains", "hosts", "adblock", "ut1", "onionoo"];

    /// The format a name in `policy.yaml` stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "domains" => Some(Self::Domains),
            "hosts" => Some(Self::Hosts),
            "adblock" => Some(Self::Adblock),
            "ut1" => Some(Self::Ut1),
            "onionoo" => Some(Self::Onionoo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domains => "domains",
            Self::Hosts => "hosts",
            Self::Adblock => "adblock",
            Self::Ut1 => "ut1",
            Self::Onionoo => "onionoo",
        }
    }
}

/// How a feed's contents are checked beyond their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Anything that parses (the HTTPS certificate is the only check).
    None,
    /// The content's SHA-256 (a fixed release).
    Sha256([u8; 32]),
    /// A minisign signature at the URL with `.minisig` added, by this public key (base64,
    /// as `minisign -G` prints it).
    Minisign(String),
}

/// One feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// The category it fills.
    pub category: String,
    /// `https://…`.
    pub url: String,
    pub format: FeedFormat,
    /// For `ut1`, the category directory to read (`adult`, `gambling`).
    pub section: Option<String>,
    /// How often it is fetched again.
    pub refresh: Duration,
    /// The most a download may be (and, for an archive, the most it may unpack to).
    pub max_bytes: u64,
    pub pin: Pin,
    /// A CA certificate file (PEM) to trust for this feed's server, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Where its last good copy is kept, as a list file (in the state directory).
    pub cache: PathBuf,
}

impl Feed {
    /// The file beside the copy that remembers the server's validators (ETag,
    /// Last-Modified) and when the copy was fetched.
    pub fn meta(&self) -> PathBuf {
        self.cache.with_extension("meta.json")
    }
}

/// The default refresh: daily.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// The shortest refresh allowed: public lists change daily at most; more often only loads
/// their servers.
pub const MIN_REFRESH: Duration = Duration::from_secs(15 * 60);
/// The default and largest download bounds.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
pub const LARGEST_MAX_BYTES: u64 = 1 << 30;

/// Reads `"30m"`, `"6h"`, `"1d"` (a number and a unit).
pub fn parse_refresh(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Reads `"50MB"`, `"512 KB"`, `"1GB"` (binary multiples, as downloads are counted).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim() {
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Reads a SHA-256 written as 64 hex digits.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The name of a feed's copy: its category and a hash of what it fetches, so reordering
/// feeds or adding one keeps every copy.
pub fn cache_name(category: &str, url: &str, section: Option<&str>) -> String {
    let hash = crate::fnv::fnv1a(
        [url, "\0", section.unwrap_or("")]
            .iter()
            .flat_map(|s| s.bytes()),
    );
    format!("{category}-{hash:016x}.list")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_and_digests() {
        assert_eq!(parse_refresh("6h"), Some(Duration::from_secs(21_600)));
        assert_eq!(parse_refresh("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_refresh(" 1d "), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_refresh("1w"), None);
        assert_eq!(parse_refresh("h"), None);
        assert_eq!(parse_refresh("99999999999999999999d"), None);
        assert_eq!(parse_size("50MB"), Some(50 << 20));
        assert_eq!(parse_size("512 KB"), Some(512 << 10));
        assert_eq!(parse_size("2TB"), None);
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(parse_sha256(hex).map(|d| d[0]), Some(0xe3));
        assert_eq!(parse_sha256(&hex[1..]), None);
        assert_eq!(parse_sha256(&hex.replace('e', "g")), None);
        assert_eq!(parse_sha256(&"é".repeat(32)), None);
        assert_ne!(
            cache_name("adult", "https://a.example/x.tar.gz", Some("adult")),
            cache_name("adult", "https://a.example/x.tar.gz", Some("porn"))
        );
    }
}

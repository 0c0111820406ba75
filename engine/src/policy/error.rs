//! Why a policy was refused, and where: every error names the file, line and column of the
//! value at fault, the value itself, and what was expected.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::DomainError;
use crate::technique::Technique;

/// A place in a policy file or list file. Lines and columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem found in a policy, at one place.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct PolicyError {
    pub at: Location,
    pub kind: ErrorKind,
}

/// What is wrong. Each variant carries the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The YAML could not be read into the policy's shape (syntax, unknown key, wrong type).
    /// Parsing stops at the first such error; the text is serde-saphyr's.
    #[error("{message}")]
    Yaml { message: String },
    #[error("cannot read list `{}`: {source}", path.display())]
    ReadList {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown technique `{name}` (expected one of: {})", Technique::ALL.map(Technique::as_str).join(", "))]
    Technique { name: String },
    #[error("`[{name}]` is not a section name (lower-case letters, digits and `_`, at most 32)")]
    Section { name: String },
    #[error("unsupported policy version {found} (expected 1)")]
    Version { found: u32 },
    #[error("unknown time zone `{value}` (expected an IANA name such as Europe/London)")]
    TimeZone { value: String },
    #[error("`{value}` is not a date (expected YYYY-MM-DD)")]
    Date { value: String },
    #[error(
        "`{value}` is not a local date and time (expected YYYY-MM-DDTHH:MM, optionally with \
         :SS and a UTC offset such as +01:00)"
    )]
    DateTime { value: String },
    #[error("`{value}` is not a time range (expected HH:MM-HH:MM, e.g. 08:30-15:30)")]
    TimeRange { value: String },
    #[error("time range `{value}` is empty: it starts and ends at the same time")]
    EmptyTimeRange { value: String },
    #[error("`{value}` is not a day (expected one of mon, tue, wed, thu, fri, sat, sun)")]
    Day { value: String },
    #[error("`{what}` starts after it ends ({from} > {to})")]
    Backwards {
        what: String,
        from: String,
        to: String,
    },
    #[error("term `{name}` lasts {days} days; a term lasts at most a year (is a year mistyped?)")]
    TermTooLong { name: String, days: i32 },
    #[error("a closure needs either `on: DATE` or `from: DATE` with `to: DATE`")]
    ClosureDates,
    #[error("term `{name}` overlaps term `{other}`")]
    TermOverlap { name: String, other: String },
    #[error("`{name}` is reserved: {why}")]
    Reserved { name: String, why: &'static str },
    #[error(
        "`{name}` is not a valid name (expected letters, digits and `_`, starting with a letter)"
    )]
    BadName { name: String },
    #[error("unknown {what} `{name}` (expected {expected})")]
    Unknown {
        what: &'static str,
        name: String,
        expected: String,
    },
    #[error("`{value}` is neither a category (expected {categories}) nor a domain: {source}")]
    Target {
        value: String,
        categories: String,
        #[source]
        source: DomainError,
    },
    #[error("{source}")]
    Domain {
        #[source]
        source: DomainError,
    },
    #[error("`{value}` is not a feed address (expected https://host/path)")]
    FeedUrl { value: String },
    #[error("unknown feed format `{value}` (expected one of: {})", crate::policy::feed::FeedFormat::NAMES.join(", "))]
    FeedFormat { value: String },
    #[error("{problem}")]
    FeedSection { problem: &'static str },
    #[error("`{value}` is not a refresh interval of at least 15 minutes (expected 30m, 6h or 1d)")]
    FeedRefresh { value: String },
    #[error("`{value}` is not a size up to 1GB (expected 50MB, 512KB or 1GB)")]
    FeedSize { value: String },
    #[error("`{value}` is not a SHA-256 (expected 64 hex digits)")]
    FeedSha256 { value: String },
    #[error(
        "`{value}` is not a minisign public key (expected the base64 line `minisign -G` writes, starting RW)"
    )]
    FeedMinisignKey { value: String },
    #[error("a feed may be pinned by `sha256` or signed with `minisign_key`, not both")]
    FeedTwoPins,
    #[error("`{value}` is in the locked category `{category}`: no {what} may open it")]
    Locked {
        value: String,
        category: String,
        what: &'static str,
    },
    #[error("`{value}` is not a network (expected a CIDR such as 10.10.0.0/16 or fd00:10::/64)")]
    Network { value: String },
    #[error("network `{value}` has host bits set (did you mean {suggestion}?)")]
    NetworkHostBits { value: String, suggestion: String },
    #[error("network {value} is in both group `{group}` and group `{other}`")]
    DuplicateNetwork {
        value: String,
        group: String,
        other: String,
    },
    #[error("`{value}` is not a MAC address (expected six hex pairs, e.g. 52:54:00:12:34:56)")]
    Mac { value: String },
    #[error("`{value}` is not an IP address")]
    Ip { value: String },
    #[error(
        "device {key} is listed twice (as `{name}` in group `{group}` and `{other}` in group `{other_group}`)"
    )]
    DuplicateDevice {
        key: String,
        name: String,
        group: String,
        other: String,
        other_group: String,
    },
    #[error(
        "`{value}` cannot be an off-site id (one DNS label: letters, digits and hyphens, at most 63, not starting or ending with a hyphen)"
    )]
    OffSiteId { value: String },
    #[error("device entry `{name}` has neither `mac`, `ip` nor `off_site_id`")]
    DeviceWithoutAddress { name: String },
    #[error("{what} `{name}` is defined twice")]
    Duplicate { what: &'static str, name: String },
    #[error("rule `{name}` needs exactly one of `allow` or `block`")]
    RuleAction { name: String },
    #[error("{what} `{name}` names no {needs}")]
    Empty {
        what: &'static str,
        name: String,
        needs: &'static str,
    },
    #[error("bypass response `{value}` is not known (expected quarantine, alert or log)")]
    Response { value: String },
    #[error(
        "`{value}` is not an address and port (expected e.g. 10.77.0.1:53 or [2001:db8::1]:53)"
    )]
    SocketAddr { value: String },
    #[error("`{value}` is not a resolver address (expected an IP address, optionally with :PORT)")]
    Upstream { value: String },
    #[error("block response `{value}` is not known (expected sinkhole or nxdomain)")]
    BlockResponse { value: String },
    #[error(
        "`block_response: sinkhole` needs `gateway.block_page.listen`: sinkholed names point at the block page"
    )]
    SinkholeWithoutBlockPage,
    #[error("`{value}` is not an IPv6 address and port")]
    NotIpv6 { value: String },
    #[error(
        "rate limit {value} would refuse every query (expected queries per second, at least 1)"
    )]
    RateLimit { value: u32 },
    #[error("{what} `{value}` is not known (expected {expected})")]
    Choice {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "`{value}` is not a directory group or class name (1 to 128 bytes, no control characters)"
    )]
    DirectoryName { value: String },
    #[error("`{value}` is not a username (1 to 128 bytes, no spaces or control characters)")]
    Username { value: String },
    #[error("`{value}` is not an interface name")]
    Interface { value: String },
    #[error(
        "the firewall needs `gateway.lan_interfaces`: it acts on traffic from the school's side only"
    )]
    FirewallWithoutLan,
    #[error("`{value}` is not a URL (expected https://host[:port])")]
    Url { value: String },
    #[error(
        "`{value}` is not a directory server URL (expected ldaps://host[:port], or ldap://host[:port] with start_tls: true)"
    )]
    LdapUrl { value: String },
    #[error(
        "`{value}` without `start_tls: true` would send the bind password in clear (use ldaps:// or StartTLS)"
    )]
    LdapInClear { value: String },
    #[error("`gateway.ldap` needs `pupils` or `staff`: the groups or units whose members they are")]
    LdapNoRoles,
    #[error("sync every {value} minutes is not between 1 and 1440")]
    SyncMinutes { value: u32 },
    #[error("an idle time of {value} minutes is not between 5 and 10080 (a week)")]
    IdleMinutes { value: u32 },
    #[error("a request of at most {value} minutes is not between 1 and 10080 (a week)")]
    RequestMinutes { value: u32 },
    #[error("`{value}` is not an address or network (expected e.g. 10.0.0.5 or 10.0.0.0/24)")]
    RadiusClient { value: String },
    #[error("`gateway.radius` needs `listen` and at least one of `clients`")]
    RadiusEmpty,
    #[error("{n_more} more errors in `{path}` not shown")]
    TooManyListErrors { path: String, n_more: usize },
}

/// Every problem found in a policy. Loading reports all of them, not just the first, except
/// that YAML shape errors stop parsing (see [`ErrorKind::Yaml`]).
#[derive(Debug, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl PolicyErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.0.iter()
    }
}

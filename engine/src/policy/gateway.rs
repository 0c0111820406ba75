//! How this gateway runs: the `gateway:` section of `policy.yaml`, so that one file describes
//! a school. Command-line flags may override these for tests and trials; the agent applies
//! them over what is here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where a packaged install keeps its state when `state_dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/schoolgate";

/// Queries a second one client may send, by default, before it is slowed down.
pub const DEFAULT_RATE_LIMIT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The interfaces facing the school's devices.
    pub lan_interfaces: Vec<String>,
    pub dns: Dns,
    pub block_page: Option<BlockPage>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    pub state_dir: PathBuf,
    pub console: Option<Console>,
    /// DHCP lease files read for device names and MACs; relative paths are resolved against
    /// the policy file's directory.
    pub dhcp_leases: Vec<LeaseFile>,
    /// The school's roster export (CSV), watched and read again on change; a relative path
    /// is resolved against the policy file's directory.
    pub roster: Option<PathBuf>,
    /// The school's LDAP or Active Directory, read on start and every `sync_every`.
    pub ldap: Option<Ldap>,
    /// RADIUS accounting: who is signed in where.
    pub radius: Option<Radius>,
    /// Minutes a sign-in lasts without word from its reporter.
    pub session_idle_minutes: u32,
    /// The HTTPS sign-in endpoint for logon scripts.
    pub sign_in: Option<SignInEndpoint>,
    /// DNS over HTTPS and over TLS for school devices away from school.
    pub off_site: Option<OffSite>,
    pub firewall: Firewall,
    /// Whether the agent watches the LAN interfaces' traffic (`gateway.inspection.enabled`,
    /// default true).
    pub inspection: bool,
}

/// Minutes between reads of an LDAP directory when the policy does not say.
pub const DEFAULT_LDAP_SYNC_MINUTES: u32 = 15;
/// What a user search reads when the policy gives no filter: people. (Active Directory also
/// files computers as people; they are in no role's groups and are skipped. A filter naming
/// an attribute or class the server does not know selects nothing on OpenLDAP, so the default
/// names only what both know.)
pub const DEFAULT_LDAP_FILTER: &str = "(objectClass=person)";
/// What a group search reads when the policy gives no filter.
pub const DEFAULT_LDAP_GROUPS_FILTER: &str = "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))";

/// Minutes a sign-in lasts without word (an interim update, a repeated logon) when the
/// policy does not say: a school day, so a lost logoff does not outlive the day.
pub const DEFAULT_SESSION_IDLE_MINUTES: u32 = 480;

/// Queries a second one device away from school may send, by default: a school day's
/// browsing asks a few names a second at most, and a burst of twice this is let through.
pub const DEFAULT_OFF_SITE_RATE_LIMIT: u32 = 20;

/// DNS for school devices away from school: `gateway.off_site`. Each device asks with its
/// own id ([`Device::off_site_id`](super::Device::off_site_id)): DNS over HTTPS at
/// `https://{server_name}/dns-query/{id}`, DNS over TLS by the name `{id}.{server_name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffSite {
    /// Lower case, without the final dot.
    pub server_name: String,
    pub doh: Vec<SocketAddr>,
    pub dot: Vec<SocketAddr>,
    /// The certificate for `server_name` and `*.{server_name}`.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Queries a second per device.
    pub rate_limit: u32,
}

/// The sign-in endpoint: `gateway.sign_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInEndpoint {
    pub listen: Vec<SocketAddr>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub tokens_file: PathBuf,
}

/// The RADIUS accounting listener: `gateway.radius`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radius {
    pub listen: Vec<SocketAddr>,
    pub clients: Vec<RadiusClient>,
}

/// A controller allowed to report sign-ins, and its shared secret's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusClient {
    pub network: ipnet::IpNet,
    pub secret_file: PathBuf,
}

/// The directory server: `gateway.ldap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ldap {
    /// `ldaps://…` or `ldap://…` (then always with StartTLS: a bind password never travels
    /// in clear).
    pub url: String,
    pub start_tls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub password_file: PathBuf,
    pub base_dn: String,
    pub filter: String,
    pub groups_base_dn: String,
    pub groups_filter: String,
    /// The attribute holding the username: `sAMAccountName` unless the policy says.
    pub username: String,
    /// `displayName` unless the policy says.
    pub display_name: String,
    pub class: Option<String>,
    pub year: Option<String>,
    /// Group names or unit DNs whose members are pupils.
    pub pupils: Vec<String>,
    /// Group names or unit DNs whose members are staff.
    pub staff: Vec<String>,
    pub sync_minutes: u32,
}

/// The agent's nftables table: `gateway.firewall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firewall {
    pub enabled: bool,
    pub on_stop: OnStop,
}

impl Default for Firewall {
    fn default() -> Self {
        Self {
            enabled: true,
            on_stop: OnStop::FailClosed,
        }
    }
}

/// What happens to the firewall when the agent stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// The table stays: DNS still goes to the gateway (where nothing answers until the agent
    /// is back) and the blocks in force stay in force. Pupils are never left unfiltered.
    FailClosed,
    /// The table is removed: the network works without filtering until the agent is back.
    FailOpen,
}

/// A DHCP server's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFile {
    pub path: PathBuf,
    pub format: LeaseFormat,
}

/// Which DHCP server wrote a lease file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseFormat {
    /// dnsmasq's `dnsmasq.leases`: `expiry mac ip hostname client-id` per line.
    Dnsmasq,
    /// ISC Kea's memfile CSV (`kea-leases4.csv`, `kea-leases6.csv`), with its header row.
    Kea,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub block_response: BlockResponse,
    /// Per-client queries per second.
    pub rate_limit: u32,
    pub defences: Defences,
}

/// How a blocked name is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockResponse {
    /// A and AAAA point at the block page; other types get an empty answer.
    Sinkhole,
    /// The name does not exist.
    Nxdomain,
}

/// The resolver's built-in defences against encrypted DNS and relays. All are on unless the
/// policy switches one off with a `danger_` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defences {
    /// `use-application-dns.net` → NXDOMAIN: Firefox then keeps to the school's resolver.
    pub firefox_canary: bool,
    /// `mask.icloud.com`, `mask-h2.icloud.com` → NXDOMAIN: iCloud Private Relay stays off.
    pub private_relay: bool,
    /// `_dns.resolver.arpa` → empty answer: devices do not discover an encrypted resolver.
    pub ddr: bool,
    /// Remove `ech` from HTTPS/SVCB answers for filtered groups, so the SNI stays visible.
    pub strip_ech: bool,
}

impl Default for Defences {
    fn default() -> Self {
        Self {
            firefox_canary: true,
            private_relay: true,
            ddr: true,
            strip_ech: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPage {
    pub listen: SocketAddr,
    pub listen_v6: Option<SocketAddr>,
}

impl BlockPage {
    /// The address sinkholed A answers point at, if the block page has an IPv4 address.
    pub fn ipv4(&self) -> Option<IpAddr> {
        [Some(self.listen), self.listen_v6]
            .into_iter()
            .flatten()
            .map(|a| a.ip())
            .find(IpAddr::is_ipv4)
    }

    /// Whether `ip` is one of the block page's addresses.
    pub fn is_at(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.listen.ip() == ip || self.listen_v6.is_some_and(|a| a.ip() == ip)
    }

    /// The address sinkholed AAAA answers point at, if the block page has an IPv6 address.
    pub fn ipv6(&self) -> Option<IpAddr> {
        [Some(self.listen), self.listen_v6]
            .into_iter()
            .flatten()
            .map(|a| a.ip())
            .find(IpAddr::is_ipv6)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    pub url: String,
    pub token_file: PathBuf,
    /// PEM certificates to trust for the console; `None`: the system's CA bundle.
    pub ca_file: Option<PathBuf>,
    /// This agent's name at the console; `None`: the host name.
    pub name: Option<String>,
}

/// Parses an upstream resolver: `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address; the
/// port defaults to 53.
pub fn parse_upstream(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// Whether `name` can be a Linux interface name.
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        let cases = [
            ("198.51.100.53", Some("198.51.100.53:53")),
            ("198.51.100.53:5353", Some("198.51.100.53:5353")),
            ("2001:db8::53", Some("[2001:db8::53]:53")),
            ("[2001:db8::53]", Some("[2001:db8::53]:53")),
            ("[2001:db8::53]:853", Some("[2001:db8::53]:853")),
            ("dns.google", None),
            ("198.51.100.53:", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_upstream(text),
                want.map(|w| w.parse().unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn block_page_addresses() {
        let v4 = BlockPage {
            listen: "10.77.0.1:80".parse().unwrap(),
            listen_v6: Some("[2001:db8:77::1]:80".parse().unwrap()),
        };
        assert_eq!(v4.ipv4(), Some("10.77.0.1".parse().unwrap()));
        assert_eq!(v4.ipv6(), Some("2001:db8:77::1".parse().unwrap()));
        let v6_only = BlockPage {
            listen: "[2001:db8:77::1]:80".parse().unwrap(),
            listen_v6: None,
        };
        assert_eq!(v6_only.ipv4(), None);
        for at in ["10.77.0.1", "2001:db8:77::1", "::ffff:10.77.0.1"] {
            assert!(v4.is_at(at.parse().unwrap()), "{at}");
        }
        for elsewhere in ["10.77.0.2", "2001:db8:77::2"] {
            assert!(!v4.is_at(elsewhere.parse().unwrap()), "{elsewhere}");
        }
        assert!(!v6_only.is_at("10.77.0.1".parse().unwrap()));
    }

    #[test]
    fn interface_names() {
        for ok in ["lan0", "eth0.10", "br-lan", "wlp2s0"] {
            assert!(is_interface_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "sixteen_chars_xx", "..", "lan 0"] {
            assert!(!is_interface_name(bad), "{bad}");
        }
    }
}

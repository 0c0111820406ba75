//! The first stage of loading: `policy.yaml` exactly as written, with the position of every
//! value kept so the second stage ([`super::compile`]) can say where a bad value is.
//!
//! Leaves that need parsing (dates, times, networks, MACs, domains) stay strings here, so that
//! the second stage can report every bad one rather than stopping at the first. Unknown keys
//! are rejected: a misspelt key must not silently leave a rule out.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

pub(crate) type S<T> = Spanned<T>;

/// A YAML mapping whose order is kept (rules and messages follow the file) and whose keys
/// carry their positions.
#[derive(Debug)]
pub(crate) struct Ordered<V>(pub(crate) Vec<(S<String>, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<S<String>, V>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub version: S<u32>,
    pub school: RawSchool,
    #[serde(default)]
    pub calendar: RawCalendar,
    #[serde(default)]
    pub schedules: Ordered<S<RawSchedule>>,
    #[serde(default)]
    pub categories: Ordered<S<RawCategory>>,
    #[serde(default)]
    pub groups: Ordered<S<RawGroup>>,
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
    #[serde(default)]
    pub exceptions: Vec<S<RawException>>,
    /// What teachers may ask the console for.
    #[serde(default)]
    pub requests: Vec<S<RawRequestRule>>,
    #[serde(default)]
    pub bypass: RawBypass,
    /// How this gateway runs; absent in policies used only with `check`/`explain`.
    #[serde(default)]
    pub gateway: Option<S<RawGateway>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchool {
    pub name: S<String>,
    pub timezone: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    #[serde(default)]
    pub terms: Vec<S<RawTerm>>,
    #[serde(default)]
    pub closures: Vec<S<RawClosure>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTerm {
    pub name: S<String>,
    pub from: S<String>,
    pub to: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClosure {
    pub name: S<String>,
    #[serde(default)]
    pub on: Option<S<String>>,
    #[serde(default)]
    pub from: Option<S<String>>,
    #[serde(default)]
    pub to: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub days: Vec<S<String>>,
    /// Absent means the whole day.
    #[serde(default)]
    pub times: Option<Vec<S<String>>>,
    #[serde(default)]
    pub term_time: bool,
    /// How explanations name this schedule ("in the school day").
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCategory {
    /// No rule, exception, request or console action may open it, for anyone at any time
    /// (illegal-content lists: the IWF's, CTIRU's).
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub lists: Vec<S<String>>,
    /// Lists the agent fetches and keeps current itself.
    #[serde(default)]
    pub feeds: Vec<S<RawFeed>>,
    #[serde(default)]
    pub domains: Vec<S<String>>,
    /// How explanations name this category ("social networking").
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The way round the filter this category's entries stand for (`dns_over_https`,
    /// `vpn_app`…): a connection to one of them is a bypass attempt.
    #[serde(default)]
    pub technique: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFeed {
    pub url: S<String>,
    /// `domains` (the default), `hosts`, `adblock` or `ut1`.
    #[serde(default)]
    pub format: Option<S<String>>,
    /// For `ut1`: the category directory to read.
    #[serde(default)]
    pub section: Option<S<String>>,
    /// `30m`, `6h`, `1d` (the default).
    #[serde(default)]
    pub refresh: Option<S<String>>,
    /// `64MB` (the default); at most `1GB`.
    #[serde(default)]
    pub max_size: Option<S<String>>,
    #[serde(default)]
    pub sha256: Option<S<String>>,
    /// A minisign public key; the signature is fetched from the URL with `.minisig` added.
    #[serde(default)]
    pub minisign_key: Option<S<String>>,
    #[serde(default)]
    pub ca_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    #[serde(default)]
    pub devices: Vec<S<RawDevice>>,
    #[serde(default)]
    pub networks: Vec<S<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// Rewrite search engines to their safe-search forms for this group.
    #[serde(default)]
    pub safe_search: bool,
    /// A schedule: report each device of this group seen on the network in it, once a day.
    #[serde(default)]
    pub report_presence: Option<S<String>>,
    /// Who uses the group's devices: `pupils` (the default) or `staff`. The block page speaks
    /// to each in its own words.
    #[serde(default)]
    pub audience: Option<S<String>>,
    /// QUIC (UDP 443) for this group: `block` or `allow`. Absent: blocked for groups with a
    /// blocking rule, so their browsers fall back to TCP where the name is visible.
    #[serde(default)]
    pub quic: Option<S<String>>,
    /// Directory groups whose members are this group's people (`Pupils`, `Year 6`, `6B`).
    #[serde(default)]
    pub directory: Vec<S<String>>,
    /// Usernames of this group's people, besides the directory groups'.
    #[serde(default)]
    pub users: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevice {
    #[serde(default)]
    pub mac: Option<S<String>>,
    #[serde(default)]
    pub ip: Option<S<String>>,
    pub name: S<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// The device's id when it is away from school (DNS over HTTPS and TLS): one DNS label.
    #[serde(default)]
    pub off_site_id: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: S<String>,
    pub groups: Vec<S<String>>,
    #[serde(default)]
    pub allow: Option<Vec<S<String>>>,
    #[serde(default)]
    pub block: Option<Vec<S<String>>>,
    /// A schedule name; absent means `always`.
    #[serde(default)]
    pub when: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawException {
    pub name: S<String>,
    #[serde(default)]
    pub groups: Vec<S<String>>,
    /// Device names from the groups' device entries.
    #[serde(default)]
    pub devices: Vec<S<String>>,
    #[serde(default)]
    pub networks: Vec<S<String>>,
    /// Classes (registration groups) whose signed-in pupils the exception covers.
    #[serde(default)]
    pub classes: Vec<S<String>>,
    /// Usernames of the people it covers, wherever they sign in.
    #[serde(default)]
    pub people: Vec<S<String>>,
    pub allow: Vec<S<String>>,
    pub from: S<String>,
    pub to: S<String>,
    pub approved_by: S<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A document of exceptions made elsewhere (the console's approved requests), added to a
/// policy's own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdded {
    #[serde(default)]
    pub exceptions: Vec<S<RawException>>,
}

/// One kind of exception teachers may ask for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequestRule {
    pub name: S<String>,
    /// Categories a request may open.
    pub allow: Vec<S<String>>,
    /// Groups a request may be for.
    #[serde(default)]
    pub groups: Vec<S<String>>,
    /// Classes a request may be for (`all`: any class).
    #[serde(default)]
    pub classes: Vec<S<String>>,
    /// Whether a request may name pupils one by one.
    #[serde(default)]
    pub people: bool,
    /// The longest a request may last, in minutes.
    pub longest_minutes: S<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBypass {
    #[serde(default)]
    pub response: Ordered<S<String>>,
    #[serde(default)]
    pub quarantine_allow: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    #[serde(default)]
    pub lan_interfaces: Vec<S<String>>,
    #[serde(default)]
    pub dns: Option<RawDns>,
    #[serde(default)]
    pub block_page: Option<RawBlockPage>,
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub state_dir: Option<S<String>>,
    #[serde(default)]
    pub console: Option<RawConsole>,
    /// DHCP lease files that name devices and give their MACs.
    #[serde(default)]
    pub dhcp_leases: Vec<S<RawLeases>>,
    /// The school's roster export: who the pupils and staff are.
    #[serde(default)]
    pub roster: Option<S<String>>,
    /// The school's LDAP or Active Directory: who the pupils and staff are.
    #[serde(default)]
    pub ldap: Option<S<RawLdap>>,
    /// RADIUS accounting from Wi-Fi controllers and switches: who is signed in where.
    #[serde(default)]
    pub radius: Option<S<RawRadius>>,
    /// How long a sign-in lasts without word from its reporter.
    #[serde(default)]
    pub sessions: Option<RawSessions>,
    /// The HTTPS endpoint logon scripts and sign-in agents report to.
    #[serde(default)]
    pub sign_in: Option<S<RawSignIn>>,
    /// DNS over HTTPS and over TLS for the school's devices away from school.
    #[serde(default)]
    pub off_site: Option<S<RawOffSite>>,
    #[serde(default)]
    pub firewall: Option<S<RawFirewall>>,
    #[serde(default)]
    pub inspection: Option<RawInspection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLdap {
    /// `ldaps://host[:port]`, or `ldap://host[:port]` with `start_tls: true`.
    pub url: S<String>,
    #[serde(default)]
    pub start_tls: bool,
    /// PEM certificates to trust for the directory server; else the system's.
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    pub bind_dn: S<String>,
    /// A file holding the bind account's password (its first line).
    pub password_file: S<String>,
    pub base_dn: S<String>,
    #[serde(default)]
    pub filter: Option<S<String>>,
    #[serde(default)]
    pub groups_base_dn: Option<S<String>>,
    #[serde(default)]
    pub groups_filter: Option<S<String>>,
    #[serde(default)]
    pub attributes: Option<RawLdapAttributes>,
    /// Groups (by name) or units (by DN) whose members are pupils.
    #[serde(default)]
    pub pupils: Vec<S<String>>,
    /// Groups or units whose members are staff.
    #[serde(default)]
    pub staff: Vec<S<String>>,
    /// Minutes between reads of the directory.
    #[serde(default)]
    pub sync_minutes: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRadius {
    /// Where accounting requests are received (UDP; 1813 is the standard port).
    pub listen: Vec<S<String>>,
    pub clients: Vec<S<RawRadiusClient>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRadiusClient {
    /// The controller's address, or a network of them.
    pub address: S<String>,
    /// A file holding the shared secret (its first line).
    pub secret_file: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignIn {
    pub listen: Vec<S<String>>,
    pub cert_file: S<String>,
    pub key_file: S<String>,
    /// One line per source: `NAME SHA256-OF-TOKEN [relay]`.
    pub tokens_file: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOffSite {
    /// The name devices ask by (`dns.school.example`).
    pub server_name: S<String>,
    /// Where DNS over HTTPS is served (TCP, usually port 443).
    #[serde(default)]
    pub doh: Vec<S<String>>,
    /// Where DNS over TLS is served (TCP, usually port 853).
    #[serde(default)]
    pub dot: Vec<S<String>>,
    pub cert_file: S<String>,
    pub key_file: S<String>,
    /// Queries a second one device may send.
    #[serde(default)]
    pub rate_limit: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    #[serde(default)]
    pub idle_minutes: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLdapAttributes {
    #[serde(default)]
    pub username: Option<S<String>>,
    #[serde(default)]
    pub display_name: Option<S<String>>,
    #[serde(default)]
    pub class: Option<S<String>>,
    #[serde(default)]
    pub year: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInspection {
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirewall {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `fail_closed` (the default) or `fail_open`.
    #[serde(default)]
    pub on_stop: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLeases {
    pub path: S<String>,
    pub format: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    #[serde(default)]
    pub listen: Vec<S<String>>,
    #[serde(default)]
    pub upstreams: Vec<S<String>>,
    #[serde(default)]
    pub block_response: Option<S<String>>,
    /// Queries a second one client may send before it is slowed down.
    #[serde(default)]
    pub rate_limit: Option<S<u32>>,
    /// Built-in defences against encrypted DNS and relays; all on unless switched off here.
    #[serde(default)]
    pub defences: Option<RawDefences>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefences {
    #[serde(default)]
    pub danger_allow_firefox_doh: bool,
    #[serde(default)]
    pub danger_allow_private_relay: bool,
    #[serde(default)]
    pub danger_allow_ddr: bool,
    #[serde(default)]
    pub danger_keep_ech: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBlockPage {
    pub listen: S<String>,
    #[serde(default)]
    pub listen_v6: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub url: S<String>,
    pub token_file: S<String>,
    /// PEM certificates to trust for the console (default: the system's CA bundle).
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    /// This agent's name at the console (default: the host name).
    #[serde(default)]
    pub name: Option<S<String>>,
}

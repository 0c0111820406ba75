//! The agent's nftables table, built from the policy and what the agent holds (learned
//! addresses, quarantined devices): pure (policy and state in, `nft -f` text out), so every
//! rule it writes is tested without a kernel.
//!
//! The table is `inet schoolgate` and nothing else is touched. It is loaded in one
//! transaction that deletes the old table and writes the new one, so no packet ever sees a
//! half-built table; connections already established stay up because conntrack, not the
//! table, keeps them, and the table's first filter rule accepts them.
//!
//! Layout:
//! - `dns` (nat, prerouting): DNS from the LAN to any address goes to the agent's resolver.
//! - `forward` (filter): traffic from the LAN. Quarantined devices first (even their
//!   established connections: a tunnel already up is cut), then established traffic, then
//!   DoT/DoQ for everyone, then a jump by group: by MAC, then by address (device entries
//!   and networks cut into disjoint ranges, most specific first, as the policy decides).
//! - One chain per group (and `no_group` for LAN devices the policy places nowhere): QUIC
//!   refused where the group blocks it, then the group's `blocked_` sets: addresses the
//!   agent learned from DNS answers for names the decision engine blocks for that group now,
//!   each with a timeout no later than the moment the block ends.
//!
//! Names in the table come from the policy's keys, reduced to `[a-z0-9_]`; addresses are
//! formatted from parsed values. Nothing a device sent is ever written here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use schoolgate_engine::policy::GroupId;
use schoolgate_engine::{MacAddr, Policy};

use super::learned::Scope;
use super::listed::{Listed, Spans};
use super::placed::Placed;
use super::ranges::{self, Piece};

/// The one table the agent owns.
pub const TABLE: &str = "schoolgate";
/// The family of [`TABLE`]: one table for IPv4 and IPv6.
pub const FAMILY: &str = "inet";
/// Most addresses one learned set holds: as many as the agent learns at most.
pub const LEARNED_MAX: usize = super::learned::MAX_ADDRESSES;

/// What the ruleset needs besides the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Interfaces facing the school's devices.
    pub lan: Vec<String>,
    /// Where redirected DNS goes, per family: the resolver's listen address. An unspecified
    /// address (`0.0.0.0`, `::`) means the receiving interface's own address; none at all,
    /// port 53 there (where nothing answers if the resolver does not listen: DNS of that
    /// family fails rather than going round the filter).
    pub dns_v4: Option<SocketAddr>,
    pub dns_v6: Option<SocketAddr>,
    /// The NFLOG group DNS to outside resolvers is logged to, for the agent to report.
    pub log_group: u16,
}

/// The NFLOG group the agent listens on unless told otherwise.
pub const LOG_GROUP: u16 = 4041;
/// The prefix the `dns` chain logs DNS to outside resolvers with: the agent reads such a
/// logged packet as an `external_dns` attempt.
pub const EXTERNAL_DNS_LOG: &str = "external_dns";

/// Most DNS packets to outside resolvers logged per second, for the whole LAN: enough to see
/// every device that tries, bounded whatever a device sends.
pub const LOG_RATE: u32 = 100;

impl Settings {
    /// The LAN interfaces, and the first IPv4 and IPv6 addresses the resolver listens on.
    pub fn new(lan: Vec<String>, dns_listen: &[SocketAddr]) -> Self {
        Self {
            lan,
            dns_v4: dns_listen.iter().copied().find(SocketAddr::is_ipv4),
            dns_v6: dns_listen.iter().copied().find(SocketAddr::is_ipv6),
            log_group: LOG_GROUP,
        }
    }
}

/// What the agent keeps in memory and puts back into each new table.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Per scope, addresses of names blocked for it now, with the milliseconds each stays.
    pub blocked: BTreeMap<Scope, Vec<(IpAddr, u64)>>,
    /// Addresses judged apart from their group, and their profiles.
    pub placed: Placed,
    /// Quarantined devices.
    pub quarantined: Quarantined,
    /// Addresses of the `quarantine_allow` names, with the milliseconds each has left.
    pub quarantine_allow: Vec<(IpAddr, u64)>,
    /// The listed addresses and networks refused per group, and those quarantine allows.
    pub listed: Listed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantined {
    pub ips: Vec<IpAddr>,
    pub macs: Vec<MacAddr>,
}

/// The transaction that removes the table (and nothing else).
pub fn removal() -> String {
    format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n")
}

/// Builds the table for `policy` holding `state`.
pub fn build(policy: &Policy, settings: &Settings, state: &State) -> String {
    let names = Names::new(policy);
    let scopes: Vec<Scope> = super::learned::scopes(policy, &state.placed)
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();

    let mut out = String::new();
    let o = &mut out;
    // Create-then-delete makes the transaction valid whether or not the table exists.
    let _ = writeln!(o, "table {FAMILY} {TABLE} {{}}");
    let _ = writeln!(o, "delete table {FAMILY} {TABLE}");
    let _ = writeln!(o, "table {FAMILY} {TABLE} {{");
    let lan = lan_set(&settings.lan);

    // Group membership.
    let by_mac: Vec<(String, String)> = policy
        .devices()
        .iter()
        .filter_map(|d| Some((d.mac?.to_string(), names.scope(Scope::Group(Some(d.group))))))
        .collect();
    let device_ips: Vec<(IpAddr, GroupId)> = policy
        .devices()
        .iter()
        .filter_map(|d| Some((d.ip?, d.group)))
        .collect();
    let networks: Vec<(ipnet::IpNet, GroupId)> = policy
        .group_ids()
        .flat_map(|g| {
            policy
                .group(g)
                .map(|grp| {
                    grp.networks
                        .iter()
                        .map(move |n| (*n, g))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    let (v4, v6) = ranges::by_address(&device_ips, &networks);
    let verdicts = |pieces: &[Piece<GroupId>], text: fn(ranges::Span) -> String| -> Vec<String> {
        pieces
            .iter()
            .map(|p| {
                let chain = names.scope(Scope::Group(Some(p.value)));
                format!("{} : goto {chain}", text(p.span))
            })
            .collect()
    };
    map(
        o,
        "group_mac",
        "ether_addr",
        false,
        &by_mac
            .iter()
            .map(|(m, g)| format!("{m} : goto {g}"))
            .collect::<Vec<_>>(),
    );
    // Addresses judged apart from their group: someone signed in, or an exception naming
    // the device or its network.
    let (mut w4, mut w6) = (Vec::new(), Vec::new());
    for (ip, n) in &state.placed.at {
        let e = format!("{ip} : goto {}", names.scope(Scope::Placed(*n)));
        if ip.is_ipv4() { w4.push(e) } else { w6.push(e) }
    }
    map(o, "who_v4", "ipv4_addr", false, &w4);
    map(o, "who_v6", "ipv6_addr", false, &w6);
    map(
        o,
        "group_v4",
        "ipv4_addr",
        true,
        &verdicts(&v4, ranges::v4_text),
    );
    map(
        o,
        "group_v6",
        "ipv6_addr",
        true,
        &verdicts(&v6, ranges::v6_text),
    );

    // Quarantine.
    let mut q4: Vec<String> = Vec::new();
    let mut q6: Vec<String> = Vec::new();
    for ip in sorted(&state.quarantined.ips) {
        if ip.is_ipv4() {
            q4.push(ip.to_string())
        } else {
            q6.push(ip.to_string())
        }
    }
    let qm: Vec<String> = sorted(&state.quarantined.macs)
        .iter()
        .map(ToString::to_string)
        .collect();
    set(o, "quarantine_mac", "ether_addr", "", &qm);
    set(o, "quarantine_v4", "ipv4_addr", "", &q4);
    set(o, "quarantine_v6", "ipv6_addr", "", &q6);
    let (a4, a6) = timed(&state.quarantine_allow);
    set(
        o,
        "quarantine_allow_v4",
        "ipv4_addr",
        "flags timeout; ",
        &a4,
    );
    set(
        o,
        "quarantine_allow_v6",
        "ipv6_addr",
        "flags timeout; ",
        &a6,
    );

    // QUIC flows inspection judged blocked: device, server and port, for a short while
    // (TCP is reset instead; a QUIC connection has no reset a middlebox can forge).
    set(
        o,
        "quic_block_v4",
        "ipv4_addr . ipv4_addr . inet_service",
        "flags timeout; ",
        &[],
    );
    set(
        o,
        "quic_block_v6",
        "ipv6_addr . ipv6_addr . inet_service",
        "flags timeout; ",
        &[],
    );

    // TCP connections inspection judged blocked: device and server, address and port. The
    // forged resets race the server's answer, and a device whose stack already took the
    // server's next bytes ignores a reset at the old sequence number; the firewall's own
    // reset, made from the device's next packet, is always in sequence.
    set(
        o,
        "tcp_block_v4",
        "ipv4_addr . ipv4_addr . inet_service . inet_service",
        "flags timeout; ",
        &[],
    );
    set(
        o,
        "tcp_block_v6",
        "ipv6_addr . ipv6_addr . inet_service . inet_service",
        "flags timeout; ",
        &[],
    );

    // Addresses blocked per group.
    for &scope in &scopes {
        let chain = names.scope(scope);
        let list = state
            .blocked
            .get(&scope)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (b4, b6) = timed(list);
        let flags = format!("flags timeout; size {LEARNED_MAX}; ");
        set(o, &format!("blocked_{chain}_v4"), "ipv4_addr", &flags, &b4);
        set(o, &format!("blocked_{chain}_v6"), "ipv6_addr", &flags, &b6);
    }

    // Listed addresses and networks: refused per group, or open to quarantined devices.
    for &scope in &scopes {
        let chain = names.scope(scope);
        let spans = state.listed.blocked.get(&scope);
        interval_sets(o, &format!("listed_{chain}"), spans);
    }
    interval_sets(
        o,
        "listed_quarantine_allow",
        Some(&state.listed.quarantine_allow),
    );

    // DNS: every query from the LAN goes to the agent's resolver. One sent to an address not
    // the gateway's own is logged first, for the agent to report (this chain sees the first
    // packet of each flow only, so one query, not its retries).
    let mut dns = vec![
        "type nat hook prerouting priority dstnat; policy accept;".to_owned(),
        format!(
            "iifname {lan} meta l4proto {{ tcp, udp }} th dport 53 fib daddr type != local limit rate {LOG_RATE}/second burst {burst} packets counter log prefix \"{EXTERNAL_DNS_LOG}\" group {group} snaplen {snaplen} comment \"external_dns_logged\"",
            burst = LOG_RATE * 2,
            group = settings.log_group,
            snaplen = super::logged::SNAPLEN,
        ),
    ];
    for proto in ["udp", "tcp"] {
        for (family, to) in [("ipv4", settings.dns_v4), ("ipv6", settings.dns_v6)] {
            let target = match to {
                Some(a) if !a.ip().is_unspecified() => {
                    let nat = if a.is_ipv4() { "ip" } else { "ip6" };
                    format!("dnat {nat} to {a}")
                }
                Some(a) => format!("redirect to :{}", a.port()),
                None => "redirect to :53".to_owned(),
            };
            dns.push(format!(
                "iifname {lan} meta nfproto {family} {proto} dport 53 counter {target} comment \"dns_redirect\""
            ));
        }
    }
    chain(o, "dns", &dns);

    // Forwarded traffic from the LAN.
    let mut forward = vec![
        "type filter hook forward priority filter; policy accept;".to_owned(),
        format!("iifname != {lan} counter accept comment \"not_from_lan\""),
    ];
    for (what, set) in [
        ("ether", "quarantine_mac"),
        ("ip", "quarantine_v4"),
        ("ip6", "quarantine_v6"),
    ] {
        forward.push(format!(
            "{what} saddr @{set} counter goto quarantined comment \"quarantine\""
        ));
    }
    forward.extend(
        [
            "ip saddr . ip daddr . udp dport @quic_block_v4 counter drop comment \"quic_blocked\"",
            "ip6 saddr . ip6 daddr . udp dport @quic_block_v6 counter drop comment \"quic_blocked\"",
            "ip saddr . ip daddr . tcp sport . tcp dport @tcp_block_v4 counter reject with tcp reset comment \"tcp_blocked\"",
            "ip6 saddr . ip6 daddr . tcp sport . tcp dport @tcp_block_v6 counter reject with tcp reset comment \"tcp_blocked\"",
            "ct state established,related counter accept comment \"established\"",
            "tcp dport 853 counter reject with tcp reset comment \"dns_over_tls\"",
            "udp dport 853 counter reject with icmpx admin-prohibited comment \"dns_over_quic\"",
            "meta nfproto ipv4 counter ip saddr vmap @who_v4 comment \"placed_v4\"",
            "meta nfproto ipv6 counter ip6 saddr vmap @who_v6 comment \"placed_v6\"",
            "counter ether saddr vmap @group_mac comment \"group_by_mac\"",
            "meta nfproto ipv4 counter ip saddr vmap @group_v4 comment \"group_by_v4\"",
            "meta nfproto ipv6 counter ip6 saddr vmap @group_v6 comment \"group_by_v6\"",
        ]
        .map(str::to_owned),
    );
    forward.push(format!(
        "counter goto {} comment \"default_group\"",
        names.scope(Scope::Group(policy.default_group()))
    ));
    chain(o, "forward", &forward);
    chain(
        o,
        "quarantined",
        &[
            "ip daddr @quarantine_allow_v4 counter accept comment \"quarantine_allow\"",
            "ip6 daddr @quarantine_allow_v6 counter accept comment \"quarantine_allow\"",
            "ip daddr @listed_quarantine_allow_v4 counter accept comment \"quarantine_allow_listed\"",
            "ip6 daddr @listed_quarantine_allow_v6 counter accept comment \"quarantine_allow_listed\"",
            "counter goto refuse comment \"quarantine_refused\"",
        ]
        .map(str::to_owned),
    );
    chain(
        o,
        "refuse",
        &[
            "meta l4proto tcp counter reject with tcp reset comment \"refused_tcp\"",
            "counter reject with icmpx admin-prohibited comment \"refused_other\"",
        ]
        .map(str::to_owned),
    );
    for &scope in &scopes {
        let name = names.scope(scope);
        let mut lines = Vec::new();
        let quic = |g: Option<GroupId>| g.is_some_and(|g| policy.blocks_quic(g));
        let blocks_quic = match scope {
            Scope::Group(g) => quic(g),
            Scope::Placed(n) => state
                .placed
                .profiles
                .get(usize::from(n))
                .is_some_and(|p| quic(p.key.group) || quic(p.key.person_group)),
        };
        if blocks_quic {
            lines.push(
                "udp dport 443 counter reject with icmpx admin-prohibited comment \"quic\""
                    .to_owned(),
            );
        }
        for (ip, family) in [("ip", "v4"), ("ip6", "v6")] {
            lines.push(format!(
                "{ip} daddr @listed_{name}_{family} counter goto refuse comment \"listed_address\""
            ));
        }
        for (ip, family) in [("ip", "v4"), ("ip6", "v6")] {
            lines.push(format!(
                "{ip} daddr @blocked_{name}_{family} counter goto refuse comment \"blocked_address\""
            ));
        }
        chain(o, &name, &lines);
    }
    let _ = writeln!(o, "}}");
    out
}

/// Addresses with milliseconds left, split by family, as timed set elements.
fn timed(list: &[(IpAddr, u64)]) -> (Vec<String>, Vec<String>) {
    let mut sorted: Vec<&(IpAddr, u64)> = list.iter().filter(|(_, ms)| *ms > 0).collect();
    sorted.sort();
    sorted.dedup_by_key(|(ip, _)| *ip);
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (ip, ms) in sorted {
        let e = format!("{ip} timeout {ms}ms");
        if ip.is_ipv4() { v4.push(e) } else { v6.push(e) }
    }
    (v4, v6)
}

/// The `<name>_v4` and `<name>_v6` interval sets holding `spans`.
fn interval_sets(o: &mut String, name: &str, spans: Option<&Spans>) {
    let (v4, v6) = span_texts(spans);
    set(
        o,
        &format!("{name}_v4"),
        "ipv4_addr",
        "flags interval; ",
        &v4,
    );
    set(
        o,
        &format!("{name}_v6"),
        "ipv6_addr",
        "flags interval; ",
        &v6,
    );
}

fn span_texts(spans: Option<&Spans>) -> (Vec<String>, Vec<String>) {
    spans
        .map(|s| {
            (
                s.v4.iter().map(|x| ranges::v4_text(*x)).collect(),
                s.v6.iter().map(|x| ranges::v6_text(*x)).collect(),
            )
        })
        .unwrap_or_default()
}

/// The transaction that brings the listed sets from `old` to `new` (empty if nothing changed):
/// each set that changed is flushed and filled again, in one transaction, so no packet sees
/// it half-filled.
pub fn relist(policy: &Policy, placed: &Placed, old: &Listed, new: &Listed) -> String {
    let names = Names::new(policy);
    let mut pairs: Vec<(String, Option<&Spans>, Option<&Spans>)> =
        super::learned::scopes(policy, placed)
            .into_iter()
            .map(|(g, _, _)| {
                (
                    format!("listed_{}", names.scope(g)),
                    old.blocked.get(&g),
                    new.blocked.get(&g),
                )
            })
            .collect();
    pairs.push((
        "listed_quarantine_allow".to_owned(),
        Some(&old.quarantine_allow),
        Some(&new.quarantine_allow),
    ));
    let mut out = String::new();
    for (name, before, after) in pairs {
        let (b4, b6) = span_texts(before);
        let (a4, a6) = span_texts(after);
        for (family, b, a) in [("v4", b4, a4), ("v6", b6, a6)] {
            if a == b {
                continue;
            }
            let _ = writeln!(out, "flush set {FAMILY} {TABLE} {name}_{family}");
            if !a.is_empty() {
                let _ = writeln!(
                    out,
                    "add element {FAMILY} {TABLE} {name}_{family} {{ {} }}",
                    a.join(", ")
                );
            }
        }
    }
    out
}

/// The transaction that adds a device to the quarantine sets (empty if there is nothing to
/// add).
pub fn quarantine(ip: Option<IpAddr>, mac: Option<MacAddr>) -> String {
    quarantine_elements("add", ip, mac)
}

/// The transaction that takes a device out of the quarantine sets. Pass only elements the
/// sets hold: deleting an absent one fails the whole transaction.
pub fn release(ip: Option<IpAddr>, mac: Option<MacAddr>) -> String {
    quarantine_elements("delete", ip, mac)
}

fn quarantine_elements(verb: &str, ip: Option<IpAddr>, mac: Option<MacAddr>) -> String {
    let mut out = String::new();
    if let Some(ip) = ip {
        let set = if ip.is_ipv4() {
            "quarantine_v4"
        } else {
            "quarantine_v6"
        };
        let _ = writeln!(out, "{verb} element {FAMILY} {TABLE} {set} {{ {ip} }}");
    }
    if let Some(mac) = mac {
        let _ = writeln!(
            out,
            "{verb} element {FAMILY} {TABLE} quarantine_mac {{ {mac} }}"
        );
    }
    out
}

/// The transaction that refuses UDP from `client` to `server` for `ttl_ms` (a QUIC
/// connection to a blocked name); nothing for mixed families.
pub fn block_quic(client: IpAddr, server: SocketAddr, ttl_ms: u64) -> String {
    let (set, c, s) = match (client.to_canonical(), server.ip().to_canonical()) {
        (IpAddr::V4(c), IpAddr::V4(s)) => ("quic_block_v4", c.to_string(), s.to_string()),
        (IpAddr::V6(c), IpAddr::V6(s)) => ("quic_block_v6", c.to_string(), s.to_string()),
        _ => return String::new(),
    };
    format!(
        "add element {FAMILY} {TABLE} {set} {{ {c} . {s} . {} timeout {ttl_ms}ms }}\n",
        server.port()
    )
}

/// The transaction that refuses the TCP connection from `client` to `server` for `ttl_ms`
/// (one inspection judged blocked), each later packet from the device answered by a reset;
/// nothing for mixed families.
pub fn block_tcp(client: SocketAddr, server: SocketAddr, ttl_ms: u64) -> String {
    let (set, c, s) = match (client.ip().to_canonical(), server.ip().to_canonical()) {
        (IpAddr::V4(c), IpAddr::V4(s)) => ("tcp_block_v4", c.to_string(), s.to_string()),
        (IpAddr::V6(c), IpAddr::V6(s)) => ("tcp_block_v6", c.to_string(), s.to_string()),
        _ => return String::new(),
    };
    format!(
        "add element {FAMILY} {TABLE} {set} {{ {c} . {s} . {} . {} timeout {ttl_ms}ms }}\n",
        client.port(),
        server.port()
    )
}

/// The transaction that moves addresses between profiles, from `old` to `new`, which must
/// have the same profiles ([`Placed::same_profiles`]); empty if nothing moved. An address
/// whose profile changed is deleted and added again in the same transaction.
pub fn replace(old: &Placed, new: &Placed) -> String {
    let mut out = String::new();
    let map_of = |ip: &IpAddr| if ip.is_ipv4() { "who_v4" } else { "who_v6" };
    for (ip, n) in &old.at {
        if new.at.get(ip) != Some(n) {
            let _ = writeln!(
                out,
                "delete element {FAMILY} {TABLE} {} {{ {ip} }}",
                map_of(ip)
            );
        }
    }
    for (ip, n) in &new.at {
        if old.at.get(ip) != Some(n) {
            let _ = writeln!(
                out,
                "add element {FAMILY} {TABLE} {} {{ {ip} : goto placed_{n} }}",
                map_of(ip)
            );
        }
    }
    out
}

/// A set the agent fills while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filled {
    /// `blocked_<scope>_v4/v6`.
    Blocked(Scope),
    /// `quarantine_allow_v4/v6`.
    QuarantineAllow,
}

/// Changes to the filled sets, made without reloading the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Elements to add, or whose timeout to set again (milliseconds from now).
    pub add: Vec<(Filled, IpAddr, u64)>,
    /// Elements to take out before their timeout. Each must be in its set: the transaction
    /// fails as a whole otherwise.
    pub remove: Vec<(Filled, IpAddr)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The transaction for `changes` (`nft -f` text): one `add element` per set, one `delete
/// element` per set. Adding an element already there sets its timeout again.
pub fn update(policy: &Policy, changes: &Changes) -> String {
    let names = Names::new(policy);
    let set_name = |f: Filled, ip: &IpAddr| {
        let family = if ip.is_ipv4() { "v4" } else { "v6" };
        match f {
            Filled::Blocked(scope) => format!("blocked_{}_{family}", names.scope(scope)),
            Filled::QuarantineAllow => format!("quarantine_allow_{family}"),
        }
    };
    let mut adds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (f, ip, ms) in &changes.add {
        adds.entry(set_name(*f, ip))
            .or_default()
            .push(format!("{ip} timeout {}ms", (*ms).max(1)));
    }
    let mut removes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (f, ip) in &changes.remove {
        removes
            .entry(set_name(*f, ip))
            .or_default()
            .push(ip.to_string());
    }
    let mut out = String::new();
    for (verb, list) in [("add", adds), ("delete", removes)] {
        for (set, elements) in list {
            let _ = writeln!(
                out,
                "{verb} element {FAMILY} {TABLE} {set} {{ {} }}",
                elements.join(", ")
            );
        }
    }
    out
}

fn sorted<T: Ord + Clone>(list: &[T]) -> Vec<T> {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v
}

fn chain(o: &mut String, name: &str, lines: &[String]) {
    let _ = writeln!(o, "\tchain {name} {{");
    for l in lines {
        let _ = writeln!(o, "\t\t{l}");
    }
    let _ = writeln!(o, "\t}}");
}

fn set(o: &mut String, name: &str, kind: &str, flags: &str, elements: &[String]) {
    let _ = write!(o, "\tset {name} {{ type {kind}; {flags}");
    if !elements.is_empty() {
        let _ = write!(o, "elements = {{ {} }}; ", elements.join(", "));
    }
    let _ = writeln!(o, "}}");
}

fn map(o: &mut String, name: &str, kind: &str, interval: bool, elements: &[String]) {
    let flags = if interval { "flags interval; " } else { "" };
    let _ = write!(o, "\tmap {name} {{ type {kind} : verdict; {flags}");
    if !elements.is_empty() {
        let _ = write!(o, "elements = {{ {} }}; ", elements.join(", "));
    }
    let _ = writeln!(o, "}}");
}

/// `{ "lan0", "lan1" }`: interface names are checked when the policy is read.
fn lan_set(lan: &[String]) -> String {
    let quoted: Vec<String> = lan.iter().map(|i| format!("\"{}\"", safe(i))).collect();
    format!("{{ {} }}", quoted.join(", "))
}

/// Keeps the characters an nftables quoted string may hold safely.
fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// Chain and set names for groups: `group_` and the policy's key reduced to `[a-z0-9_]`,
/// numbered where two would meet.
struct Names {
    groups: Vec<String>,
}

impl Names {
    fn new(policy: &Policy) -> Self {
        let mut taken = std::collections::BTreeSet::new();
        let groups = policy
            .groups()
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let base = format!("group_{}", ident(&g.name));
                if taken.insert(base.clone()) {
                    base
                } else {
                    let n = format!("group_{i}");
                    taken.insert(n.clone());
                    n
                }
            })
            .collect();
        Self { groups }
    }

    /// The chain of a scope: a group's, `no_group`, or `placed_<n>`.
    fn scope(&self, scope: Scope) -> String {
        match scope {
            Scope::Group(g) => g
                .and_then(|g| self.groups.get(g.0 as usize))
                .map_or_else(|| "no_group".to_owned(), Clone::clone),
            Scope::Placed(n) => format!("placed_{n}"),
        }
    }
}

/// `Social Networking!` → `social_networking`; at most 40 characters.
fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(40);
    out.trim_matches('_').to_owned()
}

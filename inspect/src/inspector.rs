//! The pipeline: packets in, observations out. Each flow's first packets go to the
//! classifiers that fit its protocol until one recognises it (or it has sent enough to say
//! it is none of them); the flow then yields one [`Observation`] and is ignored. DNS flows
//! yield one per new name asked, since every name matters.
//!
//! The same [`Inspector`] takes frames from a capture file (`replay`) and from the LAN
//! interface, so what the tests measure on recorded traffic is what runs live.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use schoolgate_engine::Technique;

use crate::certificate;
use crate::flow::{self, FlowKey, Table};
use crate::packet::{Packet, Transport};
use crate::tls::{self, Ech, Parsed as TlsParsed};
use crate::{dns, encrypted, gquic, http, media, quic, signature, wrapped};

mod classify;

use classify::{
    Found, call, classify_tcp, classify_udp_client, classify_udp_server,
    dnscrypt_certificate_evidence, openvpn_session, wireguard_session,
};

/// How a flow was carried, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Tcp,
    Udp,
    Quic,
    Icmp,
    Esp,
}

impl Carrier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Quic => "quic",
            Self::Icmp => "icmp",
            Self::Esp => "esp",
        }
    }
}

/// DNS over TLS's port (RFC 7858).
const DOT_PORT: u16 = 853;

/// Where a name was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// TLS server name, over TCP or in a QUIC Initial.
    Sni,
    /// HTTP `Host`, or a proxy request's target.
    Host,
    /// A DNS question.
    Dns,
    /// A SOCKS4a destination.
    Socks,
    /// The server's certificate (TLS up to 1.2), for a ClientHello without SNI.
    Certificate,
}

/// What inspection saw of one flow (or one DNS question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The capture time of the packet that completed it.
    pub time: Duration,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_mac: Option<[u8; 6]>,
    pub carrier: Carrier,
    /// The host name the client named, if it named one.
    pub name: Option<String>,
    pub name_source: Option<NameSource>,
    /// Other names the same evidence gives (a certificate's other names), bounded.
    pub also_names: Vec<String>,
    /// A way round the filter the packets themselves show (the lists may add one later).
    pub technique: Option<Technique>,
    /// What was seen, in plain words, bounded.
    pub evidence: String,
    /// The TLS client's ALPN offer and JA4, where there was a ClientHello.
    pub alpn: Vec<String>,
    pub ja4: Option<String>,
    pub ech: Option<Ech>,
    /// For TCP, where each side's sequence numbers stand after the packet that completed
    /// the observation: what a reset must carry to be accepted.
    pub resume: Option<Resume>,
}

/// The next sequence number each end of a TCP connection will send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub client: u32,
    pub server: u32,
}

impl Resume {
    /// From a segment `from_client` or not: its own next number, and the one it
    /// acknowledges (unknown without ACK).
    fn after(t: &crate::packet::Tcp<'_>, from_client: bool) -> Option<Self> {
        if !t.ack {
            return None;
        }
        let len = u32::try_from(t.payload.len()).unwrap_or(0);
        let own = t
            .seq
            .wrapping_add(len)
            .wrapping_add(u32::from(t.syn) + u32::from(t.fin));
        Some(if from_client {
            Self {
                client: own,
                server: t.ack_number,
            }
        } else {
            Self {
                client: t.ack_number,
                server: own,
            }
        })
    }
}

/// Limits and local knowledge.
#[derive(Debug, Clone)]
pub struct Config {
    /// Flows being classified at once.
    pub max_flows: usize,
    /// Classified flows remembered (so their later packets are ignored): a fingerprint of
    /// eight bytes each, in two generations.
    pub max_done: usize,
    /// A flow quiet for this long is forgotten.
    pub idle: Duration,
    /// Data-like names under one zone from one client before it is called a DNS tunnel.
    pub tunnel_names: u32,
    /// Or questions for NULL, TXT or private-use records under one zone.
    pub tunnel_records: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_flows: 65_536,
            max_done: 1 << 20,
            idle: Duration::from_secs(120),
            tunnel_names: 10,
            tunnel_records: 30,
        }
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub not_ip: u64,
    pub observations: u64,
}

/// After this many packets from the client without a verdict, a flow is given up on.
const MAX_PACKETS: u32 = 12;
/// WireGuard data messages (same index each way) before a flow is called WireGuard.
const WG_DATA: u32 = 4;
/// Datagrams from a UDP flow's client before it is given up on: every UDP classifier needs
/// fewer (a QUIC hello spans at most a few Initials; tunnels show themselves in their first
/// exchanges), and giving up is what records the flow for judging by its address.
const UDP_MAX_PACKETS: u32 = 6;
/// Echo requests followed before an ICMP flow is given up on: more than other flows get,
/// since a ping may come first and a tunnel's first exchanges after it (ICMP is little
/// traffic).
const ECHO_MAX_REQUESTS: u32 = 64;
/// DNS names reported per flow (a resolver's flow from one port carries many).
const MAX_DNS_NAMES: usize = 64;
/// Zones tracked for DNS tunnels at once.
const MAX_ZONES: usize = 4096;
/// Longest evidence text kept.
const MAX_EVIDENCE: usize = 300;

#[derive(Debug)]
struct ZoneCount {
    /// Data-like names.
    names: u32,
    /// Questions for record types tunnels carry data in.
    odd: u32,
    reported: bool,
    last: Duration,
}

/// Packets in, observations out.
#[derive(Debug)]
pub struct Inspector {
    config: Config,
    table: Table,
    zones: HashMap<(IpAddr, String), ZoneCount, foldhash::fast::RandomState>,
    pub stats: Stats,
}

impl Inspector {
    pub fn new(config: Config) -> Self {
        Self {
            table: Table::with_done(config.max_flows, config.max_done, config.idle),
            zones: HashMap::default(),
            config,
            stats: Stats::default(),
        }
    }

    /// The flow table's counters: flows refused for room, flows expired.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Takes one packet captured at `time`; pushes what it completes onto `out`.
    pub fn packet(&mut self, time: Duration, p: &Packet<'_>, out: &mut Vec<Observation>) {
        self.stats.packets += 1;
        let before = out.len();
        match p.transport {
            Transport::Tcp(t) => self.tcp(time, p, &t, out),
            Transport::Udp {
                src_port,
                dst_port,
                payload,
            } => self.udp(time, p, src_port, dst_port, payload, out),
            Transport::Echo {
                request,
                tag,
                payload,
            } => self.echo(time, p, request, tag, payload, out),
            Transport::Esp { spi } => self.esp(time, p, spi, out),
            Transport::Other { .. } => {}
        }
        self.stats.observations += (out.len() - before) as u64;
    }

    fn tcp(
        &mut self,
        time: Duration,
        p: &Packet<'_>,
        t: &crate::packet::Tcp<'_>,
        out: &mut Vec<Observation>,
    ) {
        let a = SocketAddr::new(p.src, t.src_port);
        let b = SocketAddr::new(p.dst, t.dst_port);
        // A SYN-ACK (or a segment from a server port to a high port) comes from the server.
        let server_first = (t.syn && t.ack)
            || (!t.syn && flow::server_port(t.src_port) && !flow::server_port(t.dst_port));
        let Some((f, from_client, key)) = self.table.get(flow::TCP, a, b, time, server_first)
        else {
            return;
        };
        if f.done {
            return;
        }
        f.count(from_client, p.src_mac);
        if f.wrapped.is_some() {
            follow_wrapped(f, time, &key, t, from_client, out);
            return;
        }
        // DoT refused (by the gateway's own firewall, or the server) before any hello: the
        // attempt is the connection to DNS over TLS's port.
        if t.rst && !from_client && key.server.port() == DOT_PORT && f.up.bytes.is_empty() {
            let mut found = Found::technique(Carrier::Tcp, Technique::DnsOverTls);
            found.evidence = format!(
                "TCP connection to {} (port 853, DNS over TLS) refused before its TLS hello",
                key.server
            );
            f.done = true;
            out.push(found.into_observation(time, &key, f.client_mac));
            return;
        }
        let stream = if from_client { &mut f.up } else { &mut f.down };
        if t.syn {
            stream.syn(t.seq);
        }
        let grew = stream.segment(t.seq, t.payload);
        if !grew && f.from_client < MAX_PACKETS {
            return;
        }
        let give_up = f.from_client >= MAX_PACKETS || f.up.bytes.len() >= flow::MAX_STREAM;
        let verdict = classify_tcp(f, &key, give_up);
        let found = match verdict {
            Some(o) => Some(o),
            None if give_up => Some(Found::nothing(Carrier::Tcp)),
            None => None,
        };
        if let Some(found) = found {
            // A TLS hello on a connection seen from its start is followed a little further,
            // for a handshake inside it; everything else is done.
            let tls = found.ja4.is_some() && found.technique.is_none();
            if tls && from_client && f.up.from_start() && f.down.from_start() {
                let end = t.seq.wrapping_add(t.len);
                f.wrapped = Some(Box::new(wrapped::Watch::new(time, end)));
                f.up = flow::Stream::default();
            } else {
                f.done = true;
            }
            let mut obs = found.into_observation(time, &key, f.client_mac);
            obs.resume = Resume::after(t, from_client);
            out.push(obs);
        }
    }

    fn udp(
        &mut self,
        time: Duration,
        p: &Packet<'_>,
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
        out: &mut Vec<Observation>,
    ) {
        let a = SocketAddr::new(p.src, src_port);
        let b = SocketAddr::new(p.dst, dst_port);
        let server_first = flow::server_port(src_port) && !flow::server_port(dst_port);
        let Some((f, from_client, key)) = self.table.get(flow::UDP, a, b, time, server_first)
        else {
            return;
        };
        if f.done {
            return;
        }
        f.count(from_client, p.src_mac);
        // DNS: every question counts (names to judge, and tunnels are many questions).
        if key.server.port() == 53 {
            if from_client && let Some(q) = dns::query(payload) {
                let tunnel = track_zone(&mut self.zones, &self.config, key.client.ip(), &q, time);
                // Each name once per flow (a bounded number of them), unless it completes
                // a tunnel.
                let seen = f.dns_names.contains(&q.name);
                if !tunnel && (seen || f.dns_names.len() >= MAX_DNS_NAMES) {
                    return;
                }
                if !seen && f.dns_names.len() < MAX_DNS_NAMES {
                    f.dns_names.push(q.name.clone());
                }
                let external = !flow::local(key.server.ip());
                let mut found = Found::name(Carrier::Udp, q.name.clone(), NameSource::Dns);
                found.evidence =
                    format!("DNS query {} (type {}) to {}", q.name, q.qtype, key.server);
                if signature::dnscrypt_certificate_name(&q.name) {
                    found.technique = Some(Technique::Dnscrypt);
                    found.evidence = dnscrypt_certificate_evidence(&q.name, key.server);
                } else if tunnel {
                    found.technique = Some(Technique::DnsTunnel);
                    found.evidence = format!(
                        "many questions under {} from one device carrying data (long random names or NULL/TXT records), the last {} type {}",
                        dns::zone(&q.name),
                        q.name,
                        q.qtype
                    );
                } else if external {
                    found.technique = Some(Technique::ExternalDns);
                    found.evidence = format!(
                        "DNS query {} sent to {}, not the school's resolver",
                        q.name, key.server
                    );
                }
                out.push(found.into_observation(time, &key, f.client_mac));
            }
            return;
        }
        let found = if from_client {
            classify_udp_client(f, &key, payload)
        } else {
            classify_udp_server(f, &key, payload)
        }
        .or_else(|| wireguard_session(f, from_client, payload))
        .or_else(|| openvpn_session(f, from_client, payload))
        .or_else(|| call(f, from_client, &key, payload));
        let found = match found {
            Some(found) => Some(found),
            None if f.from_client >= UDP_MAX_PACKETS => Some(Found::nothing(if f.quic.is_some() {
                Carrier::Quic
            } else {
                Carrier::Udp
            })),
            None => None,
        };
        if let Some(found) = found {
            f.done = true;
            out.push(found.into_observation(time, &key, f.client_mac));
        }
    }

    fn echo(
        &mut self,
        time: Duration,
        p: &Packet<'_>,
        request: bool,
        tag: u32,
        payload: &[u8],
        out: &mut Vec<Observation>,
    ) {
        let (a, b) = (SocketAddr::new(p.src, 0), SocketAddr::new(p.dst, 0));
        let Some((f, from_client, key)) = self.table.get(flow::ICMP, a, b, time, !request) else {
            return;
        };
        if f.done {
            return;
        }
        f.count(from_client, p.src_mac);
        let stream = f.echo.get_or_insert_with(Box::default);
        // A request from the flow's server (a ping back) is not what the stream follows.
        let tunnel = match (request, from_client) {
            (true, true) => stream.request(tag, payload),
            (false, false) => stream.reply(tag, payload),
            _ => None,
        };
        if let Some(tunnel) = tunnel {
            f.done = true;
            let mut found = Found::technique(Carrier::Icmp, Technique::IcmpTunnel);
            found.evidence = tunnel.evidence(key.server.ip());
            out.push(found.into_observation(time, &key, f.client_mac));
        } else if stream.requests() >= ECHO_MAX_REQUESTS {
            f.done = true;
        }
    }

    fn esp(&mut self, time: Duration, p: &Packet<'_>, spi: u32, out: &mut Vec<Observation>) {
        let (a, b) = (SocketAddr::new(p.src, 0), SocketAddr::new(p.dst, 0));
        let Some((f, _, key)) = self.table.get(flow::ESP, a, b, time, false) else {
            return;
        };
        if f.done {
            return;
        }
        f.done = true;
        let mut found = Found::technique(Carrier::Esp, Technique::Ipsec);
        found.evidence = format!("IPsec ESP (SPI {spi:#010x}) to {}", key.server.ip());
        out.push(found.into_observation(time, &key, p.src_mac));
    }
}

/// Counts a DNS name toward its zone's tunnel score; true the first time the zone crosses
/// the threshold for this client.
/// A packet of a TLS flow after its hello: the server's first bytes give the outer
/// records' overhead, the writes' sizes the inner handshake (see [`wrapped`]).
fn follow_wrapped(
    f: &mut flow::Flow,
    time: Duration,
    key: &FlowKey,
    t: &crate::packet::Tcp<'_>,
    from_client: bool,
    out: &mut Vec<Observation>,
) {
    let Some(watch) = f.wrapped.as_deref_mut() else {
        return;
    };
    if t.rst || t.fin {
        f.done = true;
        return;
    }
    if !from_client && watch.outer == wrapped::Outer::Incomplete {
        f.down.segment(t.seq, t.payload);
        watch.outer = wrapped::outer(&f.down.bytes);
        if watch.outer != wrapped::Outer::Incomplete {
            f.down = flow::Stream::default();
        }
    }
    match watch.segment(time, from_client, t.seq, t.len, t.psh) {
        wrapped::Step::Wait => {}
        wrapped::Step::Stop => f.done = true,
        wrapped::Step::Found(inner) => {
            f.done = true;
            let mut found = Found::technique(Carrier::Tcp, Technique::TlsProxy);
            found.evidence = format!(
                "TLS inside TLS to {}: first data {} bytes (room for a ClientHello); after the \
                 server's {} bytes, a {}-byte write: a {}-byte closing handshake flight in \
                 {}-byte records{}",
                key.server,
                inner.hello_write,
                inner.server_bytes,
                inner.finished_write,
                inner.finished,
                inner.overhead,
                match inner.framing {
                    0 => String::new(),
                    n => format!(" and {n}-byte proxy frames"),
                }
            );
            let mut obs = found.into_observation(time, key, f.client_mac);
            obs.resume = Resume::after(t, from_client);
            out.push(obs);
        }
    }
}

fn track_zone(
    zones: &mut HashMap<(IpAddr, String), ZoneCount, foldhash::fast::RandomState>,
    config: &Config,
    client: IpAddr,
    q: &dns::Query,
    now: Duration,
) -> bool {
    let name = q.name.as_str();
    let data = dns::data_like(name);
    let odd = dns::tunnel_type(q.qtype);
    if !data && !odd {
        return false;
    }
    let key = (client, dns::zone(name).to_owned());
    if !zones.contains_key(&key) && zones.len() >= MAX_ZONES {
        let idle = config.idle;
        zones.retain(|_, z| now.saturating_sub(z.last) < idle);
        if zones.len() >= MAX_ZONES {
            return false;
        }
    }
    let z = zones.entry(key).or_insert(ZoneCount {
        names: 0,
        odd: 0,
        reported: false,
        last: now,
    });
    z.names += u32::from(data);
    z.odd += u32::from(odd);
    z.last = now;
    let tunnel = z.names >= config.tunnel_names || z.odd >= config.tunnel_records;
    if tunnel && !z.reported {
        z.reported = true;
        return true;
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::classify::hello_found;
    use super::*;
    use crate::packet::{self, LinkType};
    use etherparse::PacketBuilder;

    fn segment(from_client: bool, port: u16, syn: bool, rst: bool) -> Vec<u8> {
        let (a, b, sp, dp) = if from_client {
            ([10, 77, 0, 10], [198, 51, 100, 53], 40000, port)
        } else {
            ([198, 51, 100, 53], [10, 77, 0, 10], port, 40000)
        };
        let mut t = PacketBuilder::ipv4(a, b, 64).tcp(sp, dp, 1, 1000);
        if syn {
            t = t.syn();
        }
        if rst {
            t = t.rst().ack(2);
        }
        let mut out = Vec::new();
        t.write(&mut out, &[]).unwrap();
        out
    }

    fn run(port: u16) -> Vec<Observation> {
        let mut i = Inspector::new(Config::default());
        let mut out = Vec::new();
        for (n, frame) in [
            segment(true, port, true, false),
            segment(false, port, false, true),
        ]
        .iter()
        .enumerate()
        {
            let p = packet::view(LinkType::RawIp, frame).unwrap();
            i.packet(Duration::from_secs(n as u64), &p, &mut out);
        }
        out
    }

    #[test]
    fn a_refused_connection_to_853_is_a_dot_attempt_and_elsewhere_nothing() {
        let seen = run(853);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].technique, Some(Technique::DnsOverTls));
        assert!(seen[0].evidence.contains("refused"), "{}", seen[0].evidence);
        assert!(run(443).is_empty());
    }

    fn datagram(from_client: bool, port: u16, payload: &[u8]) -> Vec<u8> {
        let (a, b, sp, dp) = if from_client {
            ([10, 77, 0, 10], [198, 51, 100, 53], 40000, port)
        } else {
            ([198, 51, 100, 53], [10, 77, 0, 10], port, 40000)
        };
        let mut out = Vec::new();
        PacketBuilder::ipv4(a, b, 64)
            .udp(sp, dp)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn inspect(frames: &[Vec<u8>]) -> Vec<Observation> {
        let mut i = Inspector::new(Config::default());
        let mut out = Vec::new();
        for (n, frame) in frames.iter().enumerate() {
            let p = packet::view(LinkType::RawIp, frame).unwrap();
            i.packet(Duration::from_millis(n as u64), &p, &mut out);
        }
        out
    }

    /// A DNS question for `name`, type TXT.
    fn question(name: &str) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(u8::try_from(label.len()).unwrap());
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 16, 0, 1]);
        m
    }

    /// A DNSCrypt exchange as a client and resolver make it: a padded query behind the
    /// certificate's client magic, and an answer behind the resolver magic, echoing the
    /// client's nonce half.
    fn dnscrypt_exchange(resolver_magic: &[u8; 8]) -> [Vec<u8>; 2] {
        let mut query: Vec<u8> = (0..1088u32).map(|i| (i * 73 % 251) as u8).collect();
        query[..8].copy_from_slice(&[0xe3, 0xc3, 0xea, 0xc4, 0x70, 0x1b, 0x47, 0xd5]);
        let mut answer = resolver_magic.to_vec();
        answer.extend_from_slice(&query[40..52]);
        answer.extend((0..220u32).map(|i| (i * 31 % 253) as u8));
        [datagram(true, 443, &query), datagram(false, 443, &answer)]
    }

    #[test]
    fn dnscrypt_is_told_by_its_answers_and_its_certificate_question() {
        let seen = inspect(&dnscrypt_exchange(b"r6fnvWj8"));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].technique, Some(Technique::Dnscrypt));
        assert_eq!(seen[0].client.port(), 40000);
        assert!(
            seen[0].evidence.contains("r6fnvWj8"),
            "{}",
            seen[0].evidence
        );
        // The same exchange with any other eight bytes in front is not DNSCrypt.
        let other = inspect(&dnscrypt_exchange(b"r6fnvWj9"));
        assert!(other.iter().all(|o| o.technique.is_none()), "{other:?}");

        // The certificate question, on the resolver's own port or through port 53.
        for port in [443, 5353, 53] {
            let seen = inspect(&[datagram(
                true,
                port,
                &question("2.dnscrypt-cert.resolver.example"),
            )]);
            assert_eq!(seen.len(), 1, "{port}: {seen:?}");
            assert_eq!(seen[0].technique, Some(Technique::Dnscrypt), "{port}");
            assert!(
                seen[0]
                    .evidence
                    .contains("2.dnscrypt-cert.resolver.example")
            );
        }
        let plain = inspect(&[datagram(true, 53, &question("dnscrypt-cert.example"))]);
        assert_eq!(plain[0].technique, Some(Technique::ExternalDns));
    }

    #[test]
    fn a_server_name_that_is_no_host_name_is_evidence_and_never_a_name() {
        let hello = tls::ClientHello {
            sni: None,
            odd_sni: Some("<script>alert(1)</script>.example".into()),
            alpn: vec!["h2".into()],
            ech: Ech::None,
            ja4: String::new(),
        };
        let key = FlowKey {
            protocol: 6,
            client: "10.77.0.10:40000".parse().unwrap(),
            server: "198.51.100.53:443".parse().unwrap(),
        };
        let found = hello_found(hello, Carrier::Tcp, &key);
        assert_eq!(found.name, None);
        assert_eq!(
            found.evidence,
            "TLS SNI \"<script>alert(1)</script>.example\" (not a host name), ALPN h2, \
             to 198.51.100.53:443"
        );
    }
}

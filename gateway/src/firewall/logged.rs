//! Packets the table logs to the agent (NFLOG), read (pure: netlink bytes in, packets and DNS
//! attempts out; nothing here panics on what arrives).
//!
//! The `dns` chain logs each DNS packet from the LAN addressed to something other than the
//! gateway before redirecting it: that is a device asking an outside resolver, an
//! `external_dns` bypass attempt. The log carries the packet as the device sent it (its IP
//! header onward, cut to [`SNAPLEN`] bytes), so the resolver it tried and the name it asked
//! are known.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::Message;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{PacketNla, ULogMessage};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use schoolgate_wire::Reader;

/// Bytes of each packet copied to the agent: enough for the headers and a DNS question.
pub const SNAPLEN: u32 = 512;

/// The netlink message type of a logged packet: subsystem `NFNL_SUBSYS_ULOG` (4), message
/// `NFULNL_MSG_PACKET` (0).
const ULOG_PACKET: u16 = 4 << 8;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The rule's `prefix` (which rule logged it).
    pub prefix: String,
    /// From the IP header on, possibly cut short.
    pub packet: Vec<u8>,
}

/// The packets in one netlink datagram (it may hold several messages). Anything that does
/// not read as a logged packet is skipped.
pub fn packets(datagram: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut rest = Reader::new(datagram);
    while rest.remaining() >= 16 {
        // The netlink header (length, type, flags, sequence, port) is in host order.
        let mut header = rest.clone();
        let len = header.array().map_or(0, |b| u32::from_ne_bytes(b) as usize);
        let kind = header.array().map(u16::from_ne_bytes);
        let Some(one) = (len >= 16).then(|| rest.take(len)).flatten() else {
            break;
        };
        // Messages are padded to 4 bytes (the last one may not be).
        let pad = ((4 - len % 4) % 4).min(rest.remaining());
        if rest.skip(pad).is_none() {
            break;
        }
        // Only logged packets are handed to the decoder: it is not written for whatever
        // else a datagram could claim to be (its nf_tables decoder panics on some input).
        if kind != Some(ULOG_PACKET) {
            continue;
        }
        let Ok(m) = NetlinkMessage::<NetfilterMessage>::deserialize(one) else {
            continue;
        };
        let NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
            ..
        }) = m.payload
        else {
            continue;
        };
        let mut logged = Logged {
            prefix: String::new(),
            packet: Vec::new(),
        };
        for nla in nlas {
            match nla {
                PacketNla::Prefix(p) => logged.prefix = p.to_string_lossy().into_owned(),
                PacketNla::Payload(p) => logged.packet = p,
                _ => {}
            }
        }
        if !logged.packet.is_empty() {
            out.push(logged);
        }
    }
    out
}

/// A DNS packet a device sent to an outside resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAttempt {
    pub client: IpAddr,
    /// The resolver it was addressed to.
    pub resolver: SocketAddr,
    pub tcp: bool,
    /// The first question's name, where the packet holds one (UDP).
    pub name: Option<String>,
}

/// Reads a logged DNS packet. `None` if it is not an IPv4/IPv6 UDP or TCP packet to port 53.
pub fn dns_attempt(packet: &[u8]) -> Option<DnsAttempt> {
    let (src, dst, proto, l4) = ip(packet)?;
    let mut transport = Reader::at(l4, 2)?;
    let dport = transport.u16()?;
    if dport != 53 {
        return None;
    }
    let (tcp, name) = match proto {
        17 => (false, Reader::at(l4, 8).and_then(|r| question(r.rest()))),
        6 => (true, None),
        _ => return None,
    };
    Some(DnsAttempt {
        client: src,
        resolver: SocketAddr::new(dst, dport),
        tcp,
        name,
    })
}

/// Source, destination, transport protocol and transport bytes of an IP packet. IPv6
/// extension headers are not followed (DNS packets do not carry them).
fn ip(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let first = Reader::new(p).u8()?;
    match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let mut r = Reader::at(p, 9)?;
            let protocol = r.u8()?;
            r.skip(2)?;
            let src: [u8; 4] = r.array()?;
            let dst: [u8; 4] = r.array()?;
            let l4 = Reader::at(p, ihl.max(20))?.rest();
            Some((
                Ipv4Addr::from(src).into(),
                Ipv4Addr::from(dst).into(),
                protocol,
                l4,
            ))
        }
        6 => {
            let mut r = Reader::at(p, 6)?;
            let next_header = r.u8()?;
            r.skip(1)?;
            let src: [u8; 16] = r.array()?;
            let dst: [u8; 16] = r.array()?;
            Some((
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                next_header,
                r.rest(),
            ))
        }
        _ => None,
    }
}

fn question(dns: &[u8]) -> Option<String> {
    let m = Message::from_vec(dns).ok()?;
    let q = m.queries.first()?;
    Some(q.name().to_ascii().trim_end_matches('.').to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn udp4(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend(src);
        p.extend(dst);
        p.extend(40000u16.to_be_bytes());
        p.extend(dport.to_be_bytes());
        p.extend(((8 + payload.len()) as u16).to_be_bytes());
        p.extend([0, 0]);
        p.extend(payload);
        p
    }

    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_query_to_an_outside_resolver_is_read() {
        let p = udp4(
            [10, 77, 0, 10],
            [8, 8, 8, 8],
            53,
            &query("www.instagram.com."),
        );
        assert_eq!(
            dns_attempt(&p),
            Some(DnsAttempt {
                client: "10.77.0.10".parse().unwrap(),
                resolver: "8.8.8.8:53".parse().unwrap(),
                tcp: false,
                name: Some("www.instagram.com".into()),
            })
        );
        // Cut short by the snap length: the addresses are still known.
        let cut = &p[..40];
        assert_eq!(dns_attempt(cut).unwrap().name, None);
        // Another port, or bytes that are not a packet: nothing.
        assert_eq!(
            dns_attempt(&udp4([10, 0, 0, 1], [8, 8, 8, 8], 443, b"x")),
            None
        );
        assert_eq!(dns_attempt(&[]), None);
        assert_eq!(dns_attempt(&[0x45, 0, 0]), None);
    }

    #[test]
    fn an_ipv6_tcp_attempt_is_read() {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        p.extend("2001:db8:77::110".parse::<Ipv6Addr>().unwrap().octets());
        p.extend("2001:db8:100::53".parse::<Ipv6Addr>().unwrap().octets());
        p.extend(40000u16.to_be_bytes());
        p.extend(53u16.to_be_bytes());
        p.extend([0u8; 16]);
        let a = dns_attempt(&p).unwrap();
        assert!(a.tcp);
        assert_eq!(a.resolver, "[2001:db8:100::53]:53".parse().unwrap());
    }

    /// A datagram as the kernel sends it: nlmsghdr, nfgenmsg, then attributes.
    fn datagram(prefix: &str, packet: &[u8]) -> Vec<u8> {
        fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
            out.extend(((4 + value.len()) as u16).to_ne_bytes());
            out.extend(kind.to_ne_bytes());
            out.extend(value);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let mut body = vec![2, 0, 0, 7]; // AF_INET, version 0, group 7 (big-endian)
        attr(&mut body, 1, &[0x08, 0x00, 0, 0]); // packet header: IPv4, hook 0
        let mut p = prefix.as_bytes().to_vec();
        p.push(0);
        attr(&mut body, 10, &p);
        attr(&mut body, 9, packet);
        let mut out = Vec::new();
        out.extend(((16 + body.len()) as u32).to_ne_bytes());
        out.extend((4u16 << 8).to_ne_bytes()); // NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET
        out.extend(0u16.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn logged_packets_are_read_from_a_datagram() {
        let a = udp4([10, 77, 0, 10], [8, 8, 8, 8], 53, &query("a.example."));
        let b = udp4([10, 77, 0, 11], [1, 1, 1, 1], 53, &query("b.example."));
        let mut d = datagram("external_dns", &a);
        d.extend(datagram("external_dns", &b));
        let got = packets(&d);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].prefix, "external_dns");
        assert_eq!(got[0].packet, a);
        assert_eq!(got[1].packet, b);
        // Garbage and truncation are skipped, never a panic.
        assert!(packets(&d[..d.len() - 3]).len() <= 2);
        assert!(packets(&[0xff; 64]).is_empty());
        assert!(packets(&[]).is_empty());
    }
}

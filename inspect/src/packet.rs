//! One captured frame seen as what inspection needs: the two addresses, the transport and
//! its ports, the payload, and the sender's MAC where the link has one. Slicing is
//! etherparse's lax slicer, which keeps what it could read of a truncated or odd frame
//! rather than refusing it; VLAN tags are stepped over.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};
use schoolgate_wire::Reader;

/// How a capture's frames start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, possibly VLAN-tagged (also what an AF_PACKET socket on a LAN port reads).
    Ethernet,
    /// An IPv4 or IPv6 header and nothing before it.
    RawIp,
    /// Linux "cooked" capture (SLL), as `tcpdump -i any` writes.
    LinuxSll,
    /// BSD loopback: a four-byte address family in the writer's byte order.
    Null,
}

impl LinkType {
    /// The link type for a pcap/pcapng `LINKTYPE_` number.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Ethernet),
            101 | 12 | 14 | 228 | 229 => Some(Self::RawIp),
            113 => Some(Self::LinuxSll),
            0 | 108 => Some(Self::Null),
            _ => None,
        }
    }
}

/// The transport of a packet, with what each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(Tcp<'a>),
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    /// ICMP or ICMPv6 echo (ping), request or reply, with its data.
    Echo {
        request: bool,
        /// The identifier and sequence number, which a reply repeats from its request.
        tag: u32,
        payload: &'a [u8],
    },
    /// IPsec ESP (IP protocol 50), with its security parameter index.
    Esp {
        spi: u32,
    },
    /// Anything else carried by IP (including non-first fragments).
    Other {
        protocol: u8,
    },
}

/// A TCP segment's header fields that inspection reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    /// The acknowledgement number (meaningful when `ack` is set).
    pub ack_number: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// PSH: the segment ends a write of the sender's application.
    pub psh: bool,
    /// The data's length as the IP header gives it: more than `payload` when the capture
    /// kept only the segment's first bytes.
    pub len: u32,
    pub payload: &'a [u8],
}

/// One IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The sender's link address, on Ethernet.
    pub src_mac: Option<[u8; 6]>,
    pub transport: Transport<'a>,
}

/// Views `frame` as an IP packet; `None` for anything else (ARP, STP, frames too short to
/// hold an IP header).
pub fn view(link: LinkType, frame: &[u8]) -> Option<Packet<'_>> {
    let sliced = match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(frame).ok()?,
        LinkType::RawIp => LaxSlicedPacket::from_ip(frame).ok()?,
        LinkType::LinuxSll => {
            // 16-byte header; the protocol (an EtherType) is its last two bytes.
            let mut r = Reader::at(frame, 14)?;
            let proto = r.u16()?;
            LaxSlicedPacket::from_ether_type(proto.into(), r.rest())
        }
        LinkType::Null => {
            let family: [u8; 4] = Reader::new(frame).array()?;
            let le = u32::from_le_bytes(family);
            let be = u32::from_be_bytes(family);
            // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD.
            if ![2, 24, 28, 30].contains(&le) && ![2, 24, 28, 30].contains(&be) {
                return None;
            }
            LaxSlicedPacket::from_ip(frame.get(4..)?).ok()?
        }
    };
    let src_mac = match &sliced.link {
        Some(LinkSlice::Ethernet2(e)) => Some(e.source()),
        _ => None,
    };
    // The IP payload's length as sent (zero for a segmentation-offload frame, whose
    // length the capture gives instead).
    let (src, dst, payload, sent) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                IpAddr::V4(Ipv4Addr::from(h.source())),
                IpAddr::V4(Ipv4Addr::from(h.destination())),
                v4.payload(),
                usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
                v6.payload(),
                usize::from(h.payload_length()),
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    let protocol = payload.ip_number.0;
    let transport = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => Transport::Tcp(Tcp {
            src_port: t.source_port(),
            dst_port: t.destination_port(),
            seq: t.sequence_number(),
            ack_number: t.acknowledgment_number(),
            syn: t.syn(),
            ack: t.ack(),
            fin: t.fin(),
            rst: t.rst(),
            psh: t.psh(),
            len: {
                let captured = t.payload().len();
                let header = usize::from(t.data_offset()) * 4;
                let claimed = if payload.incomplete {
                    sent.saturating_sub(header)
                } else {
                    captured
                };
                u32::try_from(claimed.max(captured)).unwrap_or(u32::MAX)
            },
            payload: t.payload(),
        }),
        Some(TransportSlice::Udp(u)) => Transport::Udp {
            src_port: u.source_port(),
            dst_port: u.destination_port(),
            payload: u.payload(),
        },
        Some(TransportSlice::Icmpv4(i)) => match i.type_u8() {
            8 | 0 => Transport::Echo {
                request: i.type_u8() == 8,
                tag: u32::from_be_bytes(i.bytes5to8()),
                payload: i.payload(),
            },
            _ => Transport::Other { protocol },
        },
        Some(TransportSlice::Icmpv6(i)) => match i.type_u8() {
            128 | 129 => Transport::Echo {
                request: i.type_u8() == 128,
                tag: u32::from_be_bytes(i.bytes5to8()),
                payload: i.payload(),
            },
            _ => Transport::Other { protocol },
        },
        _ if protocol == 50 && !payload.fragmented => match Reader::new(payload.payload).u32() {
            Some(spi) => Transport::Esp { spi },
            None => Transport::Other { protocol },
        },
        _ => Transport::Other { protocol },
    };
    Some(Packet {
        src,
        dst,
        src_mac,
        transport,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(etherparse::VlanId::try_new(10).unwrap())
            .ipv4([10, 10, 3, 7], [8, 8, 8, 8], 64)
            .udp(40000, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_with_a_vlan_tag() {
        let frame = udp_v4(b"query");
        let p = view(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(p.src, IpAddr::from([10, 10, 3, 7]));
        assert_eq!(p.dst, IpAddr::from([8, 8, 8, 8]));
        assert_eq!(p.src_mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            p.transport,
            Transport::Udp {
                src_port: 40000,
                dst_port: 53,
                payload: b"query"
            }
        );
    }

    #[test]
    fn raw_ip_cooked_and_loopback_frames() {
        let mut raw = Vec::new();
        PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
            .tcp(50000, 443, 7, 1024)
            .syn()
            .write(&mut raw, &[])
            .unwrap();
        let p = view(LinkType::RawIp, &raw).unwrap();
        let Transport::Tcp(t) = p.transport else {
            panic!("{p:?}")
        };
        assert!(t.syn && !t.ack && t.seq == 7 && t.dst_port == 443);
        assert_eq!(p.src_mac, None);

        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x86ddu16.to_be_bytes());
        sll.extend_from_slice(&raw);
        assert_eq!(view(LinkType::LinuxSll, &sll).unwrap().dst, p.dst);

        let mut null = 30u32.to_le_bytes().to_vec();
        null.extend_from_slice(&raw);
        assert_eq!(view(LinkType::Null, &null).unwrap().src, p.src);
        null[0] = 99;
        assert_eq!(view(LinkType::Null, &null), None);
    }

    #[test]
    fn echo_esp_and_truncation() {
        let mut ping = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 2], [192, 0, 2, 1], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut ping, &[0xab; 100])
            .unwrap();
        let p = view(LinkType::RawIp, &ping).unwrap();
        assert!(
            matches!(p.transport, Transport::Echo { request: true, tag: 0x0001_0001, payload } if payload.len() == 100)
        );

        let mut esp = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 50, 0, 0, 10, 0, 0, 2, 192, 0, 2, 1,
        ];
        esp.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
        let p = view(LinkType::RawIp, &esp).unwrap();
        assert_eq!(p.transport, Transport::Esp { spi: 0xdead_beef });

        // A frame cut short inside the UDP header is still an IP packet, of no known transport.
        let frame = udp_v4(b"query");
        let p = view(LinkType::Ethernet, &frame[..18 + 20 + 4]).unwrap();
        assert!(matches!(p.transport, Transport::Other { protocol: 17 }));
        assert_eq!(view(LinkType::Ethernet, &frame[..10]), None);
        assert_eq!(view(LinkType::LinuxSll, &[0; 15]), None);
    }
}

//! The two TCP resets that end a connection inspection has judged blocked: one to the
//! device, as a whole Ethernet frame from the gateway, and one to the server, as an IP
//! packet in the device's name (the gateway's own routing and connection tracking carry it
//! out, so it takes the path, and any address translation, the connection took). Each
//! carries the sequence number its receiver expects next, which is what makes a reset
//! accepted rather than ignored (RFC 5961 §3).

use etherparse::PacketBuilder;

use crate::inspector::{Observation, Resume};

/// A device's hop limit for the packets the gateway writes.
const TTL: u8 = 64;

/// The frames that reset the connection of `obs`; `None` for an observation that is not
/// a TCP connection with known sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resets {
    /// Ethernet frame, from `gateway_mac` to the device (absent without its MAC).
    pub to_client: Option<Vec<u8>>,
    /// IP packet from the device's address to the server.
    pub to_server: Vec<u8>,
}

/// Builds the resets for `obs`, whose packets reached the gateway on an interface with
/// `gateway_mac`.
pub fn resets(obs: &Observation, gateway_mac: [u8; 6]) -> Option<Resets> {
    let Resume { client, server } = obs.resume?;
    let (c, s) = (obs.client, obs.server);
    let to_server = ip(c.ip(), s.ip())?
        .tcp(c.port(), s.port(), client, 0)
        .rst()
        .ack(server);
    let mut up = Vec::with_capacity(60);
    to_server.write(&mut up, &[]).ok()?;
    let to_client = obs.client_mac.and_then(|mac| {
        let b = match (s.ip(), c.ip()) {
            (std::net::IpAddr::V4(from), std::net::IpAddr::V4(to)) => {
                PacketBuilder::ethernet2(gateway_mac, mac).ipv4(from.octets(), to.octets(), TTL)
            }
            (std::net::IpAddr::V6(from), std::net::IpAddr::V6(to)) => {
                PacketBuilder::ethernet2(gateway_mac, mac).ipv6(from.octets(), to.octets(), TTL)
            }
            _ => return None,
        };
        let b = b.tcp(s.port(), c.port(), server, 0).rst().ack(client);
        let mut down = Vec::with_capacity(74);
        b.write(&mut down, &[]).ok()?;
        Some(down)
    });
    Some(Resets {
        to_client,
        to_server: up,
    })
}

fn ip(
    from: std::net::IpAddr,
    to: std::net::IpAddr,
) -> Option<etherparse::PacketBuilderStep<etherparse::IpHeaders>> {
    match (from, to) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            Some(PacketBuilder::ipv4(a.octets(), b.octets(), TTL))
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            Some(PacketBuilder::ipv6(a.octets(), b.octets(), TTL))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::inspector::{Carrier, Resume};
    use crate::packet::{self, LinkType, Transport};
    use std::time::Duration;

    fn obs(client: &str, server: &str, mac: Option<[u8; 6]>) -> Observation {
        Observation {
            time: Duration::ZERO,
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            client_mac: mac,
            carrier: Carrier::Tcp,
            name: Some("blocked.example".into()),
            name_source: None,
            also_names: vec![],
            technique: None,
            evidence: String::new(),
            alpn: vec![],
            ja4: None,
            ech: None,
            resume: Some(Resume {
                client: 1000,
                server: 7000,
            }),
        }
    }

    #[test]
    fn each_end_gets_the_number_it_expects() {
        let gw = [2, 0, 0, 0, 0, 1];
        let dev = [0x52, 0x54, 0, 0xaa, 0, 0x10];
        let r = resets(&obs("10.77.0.10:40000", "198.51.100.10:443", Some(dev)), gw).unwrap();
        let down = packet::view(LinkType::Ethernet, r.to_client.as_ref().unwrap()).unwrap();
        assert_eq!(down.src.to_string(), "198.51.100.10");
        assert_eq!(down.dst.to_string(), "10.77.0.10");
        let Transport::Tcp(t) = down.transport else {
            panic!("not TCP")
        };
        assert!(t.rst);
        assert_eq!((t.src_port, t.dst_port, t.seq), (443, 40000, 7000));
        assert_eq!(
            &r.to_client.as_ref().unwrap()[..12],
            &[dev, gw].concat()[..]
        );

        let up = packet::view(LinkType::RawIp, &r.to_server).unwrap();
        assert_eq!(up.src.to_string(), "10.77.0.10");
        let Transport::Tcp(t) = up.transport else {
            panic!("not TCP")
        };
        assert!(t.rst);
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack_number),
            (40000, 443, 1000, 7000)
        );
    }

    #[test]
    fn ipv6_and_missing_parts() {
        let r = resets(
            &obs("[2001:db8::10]:40000", "[2001:db8:1::1]:443", None),
            [2; 6],
        )
        .unwrap();
        assert!(r.to_client.is_none(), "no MAC, no frame to the device");
        assert!(packet::view(LinkType::RawIp, &r.to_server).is_some());
        let mut o = obs("10.0.0.1:1", "10.0.0.2:2", None);
        o.resume = None;
        assert!(resets(&o, [2; 6]).is_none());
    }
}

//! The flow table: what is known of each connection while it is being classified, with
//! bounded memory. A flow is keyed by protocol and both endpoints, client first; it is
//! classified once, then kept as a small "done" entry so its later packets cost one lookup,
//! and dropped when idle.
//!
//! TCP streams are put back in order from their first byte (the SYN's sequence number plus
//! one, or the first data segment seen), up to [`MAX_STREAM`] bytes each way: enough for a
//! ClientHello with post-quantum key shares, a request head or a banner.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::quic::Crypto;
use crate::signature::SocksHello;
use crate::tls::MAX_HELLO;

/// The most bytes of each direction of a TCP stream kept for classification.
pub const MAX_STREAM: usize = MAX_HELLO + 64;
/// Out-of-order segments held per direction, waiting for a gap to fill.
const MAX_PENDING: usize = 8;

/// IP protocol numbers flows are kept for.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ESP: u8 = 50;

/// A flow's identity: protocol, client and server (ports are zero for ICMP and ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: u8,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// One direction of a TCP stream, from its first byte.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the stream's first byte, once known.
    start: Option<u32>,
    pub bytes: Vec<u8>,
    pending: Vec<(u32, Vec<u8>)>,
}

impl Stream {
    /// Notes a SYN: the stream starts at the next sequence number.
    pub fn syn(&mut self, seq: u32) {
        if self.start.is_none() {
            self.start = Some(seq.wrapping_add(1));
        }
    }

    /// Adds a segment; returns whether the in-order bytes grew.
    pub fn segment(&mut self, seq: u32, payload: &[u8]) -> bool {
        if payload.is_empty() {
            return false;
        }
        let start = *self.start.get_or_insert(seq);
        let before = self.bytes.len();
        self.place(start, seq, payload);
        // Pieces that now touch the end.
        while let Some(i) = self.pending.iter().position(|(s, p)| {
            let off = s.wrapping_sub(start) as usize;
            off <= self.bytes.len() && off + p.len() > self.bytes.len()
        }) {
            let (s, p) = self.pending.swap_remove(i);
            self.place(start, s, &p);
        }
        self.bytes.len() > before
    }

    fn place(&mut self, start: u32, seq: u32, payload: &[u8]) {
        let have = self.bytes.len();
        let offset = seq.wrapping_sub(start) as usize;
        if offset > MAX_STREAM {
            // Before the start (a retransmission from before the SYN we saw) or far ahead.
            return;
        }
        if offset > have {
            if self.pending.len() < MAX_PENDING {
                self.pending.push((seq, payload.to_vec()));
            }
            return;
        }
        let skip = have - offset;
        if let Some(new) = payload.get(skip..) {
            let room = MAX_STREAM - have;
            self.bytes
                .extend_from_slice(new.get(..new.len().min(room)).unwrap_or_default());
        }
    }
}

/// What is being waited for, per protocol, while a flow is classified.
#[derive(Debug, Default)]
pub struct Flow {
    pub first_seen: Duration,
    pub last_seen: Duration,
    pub client_mac: Option<[u8; 6]>,
    /// Classified (or given up on): later packets are ignored.
    pub done: bool,
    /// Packets seen in each direction.
    pub from_client: u32,
    pub from_server: u32,
    pub up: Stream,
    pub down: Stream,
    /// QUIC: the first Initial's connection ID and the CRYPTO data so far.
    pub quic: Option<(Vec<u8>, Crypto)>,
    /// OpenVPN: the session ID of the client's reset, waiting for the server's echo.
    pub openvpn: Option<[u8; 8]>,
    /// SOCKS: the client's greeting, waiting for the server's reply.
    pub socks: Option<SocksHello>,
    /// DNS names already reported on this flow.
    pub dns_names: Vec<String>,
    /// WireGuard data messages seen, and the receiver index each side used.
    pub wg_data: u32,
    pub wg_index: [Option<u32>; 2],
    /// ICMP echo requests that looked like tunnelled data.
    pub icmp_suspect: u32,
}

impl Flow {
    /// Counts a packet of this flow; the client's first packet gives its MAC.
    pub fn count(&mut self, from_client: bool, src_mac: Option<[u8; 6]>) {
        if from_client {
            self.from_client += 1;
            if self.client_mac.is_none() {
                self.client_mac = src_mac;
            }
        } else {
            self.from_server += 1;
        }
    }
}

/// The table: flows by key, with a bound and idle expiry.
#[derive(Debug)]
pub struct Table {
    flows: HashMap<FlowKey, Flow, foldhash::fast::RandomState>,
    max: usize,
    pub idle: Duration,
    last_sweep: Duration,
    /// Flows made.
    pub created: u64,
    /// New flows not tracked because the table was full of live flows.
    pub refused: u64,
    /// Flows dropped for idleness.
    pub expired: u64,
}

impl Table {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            // Grown as flows come, not reserved: a sweep walks every bucket, so a table sized
            // for the busiest hour would make every quiet second's sweep cost as much.
            flows: HashMap::default(),
            max,
            idle,
            last_sweep: Duration::ZERO,
            created: 0,
            refused: 0,
            expired: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flow a packet between `a` and `b` belongs to, in either direction, and whether
    /// the packet came from its client. A new flow is made with `a` as client (or `b`, if
    /// `server_first` says the packet came from the server) unless the table is full.
    pub fn get(
        &mut self,
        protocol: u8,
        a: SocketAddr,
        b: SocketAddr,
        now: Duration,
        server_first: bool,
    ) -> Option<(&mut Flow, bool, FlowKey)> {
        if now.saturating_sub(self.last_sweep) >= Duration::from_secs(1) {
            self.sweep(now);
        }
        let forward = FlowKey {
            protocol,
            client: a,
            server: b,
        };
        let backward = FlowKey {
            protocol,
            client: b,
            server: a,
        };
        let (key, from_client) = if self.flows.contains_key(&forward) {
            (forward, true)
        } else if self.flows.contains_key(&backward) {
            (backward, false)
        } else {
            if self.flows.len() >= self.max {
                self.sweep(now);
                if self.flows.len() >= self.max {
                    self.refused += 1;
                    return None;
                }
            }
            let (key, from_client) = if server_first {
                (backward, false)
            } else {
                (forward, true)
            };
            self.created += 1;
            self.flows.insert(
                key,
                Flow {
                    first_seen: now,
                    last_seen: now,
                    ..Flow::default()
                },
            );
            (key, from_client)
        };
        let flow = self.flows.get_mut(&key)?;
        flow.last_seen = now;
        Some((flow, from_client, key))
    }

    /// Drops flows idle for longer than `idle`.
    pub fn sweep(&mut self, now: Duration) {
        self.last_sweep = now;
        let idle = self.idle;
        let before = self.flows.len();
        self.flows.retain(|_, f| {
            let quiet = now.saturating_sub(f.last_seen);
            quiet < idle
        });
        self.expired += (before - self.flows.len()) as u64;
    }
}

/// Whether a port is one servers listen on (so a datagram from it came from the server).
pub fn server_port(port: u16) -> bool {
    port < 1024
        || matches!(
            port,
            1194 | 1080 | 3128 | 4500 | 5353 | 8080 | 8443 | 8853 | 51820
        )
}

/// Whether an address is private, loopback or link-local: not reached through the gateway's
/// upstream.
pub fn local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_broadcast()
                || v4.is_multicast() || v4.is_unspecified()
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            v6.is_loopback() || v6.is_multicast() || v6.is_unspecified()
                || (s0 & 0xfe00) == 0xfc00 // unique local
                || (s0 & 0xffc0) == 0xfe80 // link-local
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn streams_join_out_of_order_and_ignore_repeats() {
        let mut s = Stream::default();
        s.syn(999);
        assert!(!s.segment(1006, b"world"));
        assert!(s.segment(1000, b"hello "));
        assert_eq!(s.bytes, b"hello world");
        assert!(!s.segment(1000, b"hello "));
        assert!(s.segment(1011, b"!"));
        assert_eq!(s.bytes, b"hello world!");
        // Sequence numbers wrap.
        let mut w = Stream::default();
        w.syn(u32::MAX - 2);
        assert!(w.segment(u32::MAX - 1, b"ab"));
        assert!(w.segment(0, b"cd"));
        assert_eq!(w.bytes, b"abcd");
    }

    #[test]
    fn streams_are_bounded() {
        let mut s = Stream::default();
        let big = vec![7u8; 1400];
        let mut seq = 1u32;
        for _ in 0..20 {
            s.segment(seq, &big);
            seq += 1400;
        }
        assert_eq!(s.bytes.len(), MAX_STREAM);
        for i in 0..100 {
            s.segment(seq + 5000 + i * 10, b"x");
        }
        assert!(s.pending.len() <= MAX_PENDING);
    }

    #[test]
    fn table_is_bounded_and_forgets_idle_flows() {
        let mut t = Table::new(2, Duration::from_secs(60));
        let a: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let c: SocketAddr = "192.0.2.2:443".parse().unwrap();
        let d: SocketAddr = "192.0.2.3:443".parse().unwrap();
        let t0 = Duration::from_secs(1000);
        assert!(t.get(TCP, a, b, t0, false).unwrap().1);
        // The reply belongs to the same flow, from the server.
        let (_, from_client, key) = t.get(TCP, b, a, t0, false).unwrap();
        assert!(!from_client);
        assert_eq!((key.client, key.server), (a, b));
        assert!(t.get(TCP, a, c, t0, false).is_some());
        assert!(t.get(TCP, a, d, t0, false).is_none());
        assert_eq!(t.refused, 1);
        assert!(
            t.get(TCP, a, d, t0 + Duration::from_secs(61), false)
                .is_some()
        );
        assert_eq!(t.expired, 2);
        assert_eq!(t.len(), 1);
        // A datagram from a server port starts a flow with the other end as client.
        let (_, from_client, key) = t
            .get(UDP, b, a, t0 + Duration::from_secs(200), true)
            .unwrap();
        assert!(!from_client);
        assert_eq!(key.client, a);
    }

    #[test]
    fn local_and_public_addresses() {
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "127.0.0.53",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2001:4860:4860::8888"] {
            assert!(!local(ip.parse().unwrap()), "{ip}");
        }
    }
}

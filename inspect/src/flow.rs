//! The flow table: what is known of each connection while it is being classified, with
//! bounded memory. A flow is keyed by protocol and both endpoints, client first; it is
//! classified once, then kept as a small "done" entry so its later packets cost one lookup,
//! and dropped when idle.
//!
//! TCP streams are put back in order from their first byte (the SYN's sequence number plus
//! one, or the first data segment seen), up to [`MAX_STREAM`] bytes each way: enough for a
//! ClientHello with post-quantum key shares, a request head or a banner.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
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
    /// Whether the start came from a SYN, so `bytes` is this side's first data rather than
    /// the middle of a connection the capture joined late.
    opened: bool,
    pub bytes: Vec<u8>,
    pending: Vec<(u32, Vec<u8>)>,
}

impl Stream {
    /// Notes a SYN: the stream starts at the next sequence number.
    pub fn syn(&mut self, seq: u32) {
        if self.start.is_none() {
            self.start = Some(seq.wrapping_add(1));
            self.opened = true;
        }
    }

    /// Whether `bytes` starts at this side's first byte (its SYN was seen).
    pub fn from_start(&self) -> bool {
        self.opened
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
    /// OpenVPN: each side followed from its reset (client, server).
    pub openvpn_sides: [crate::signature::OpenVpnSide; 2],
    /// SOCKS: the client's greeting, waiting for the server's reply.
    pub socks: Option<SocksHello>,
    /// DNS names already reported on this flow.
    pub dns_names: Vec<String>,
    /// WireGuard data messages seen, and the receiver index each side used.
    pub wg_data: u32,
    pub wg_index: [Option<u32>; 2],
    /// UDP: each side's datagrams, followed for the RTP shape (client, server).
    pub rtp: [crate::media::RtpRun; 2],
    /// ICMP: the echoes so far (boxed: most flows are not ICMP).
    pub echo: Option<Box<crate::echo::EchoStream>>,
    /// TLS: the flow followed past its reported ClientHello, for a handshake inside it.
    pub wrapped: Option<Box<crate::wrapped::Watch>>,
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

/// The table: flows being classified, by key, and a compact memory of the flows already
/// classified ("done"), both bounded, with idle expiry.
///
/// A done flow is remembered only as a 64-bit fingerprint of its two endpoints (a keyed
/// hash, seeded per process), in two generations: new fingerprints go into the young one;
/// when it is full, or every `idle`, the old generation is forgotten and the young one takes
/// its place, so a done flow is remembered for between one and two `idle` periods after its
/// last packet, or until a million newer flows have pushed it out. Lookups touch at most
/// one entry of each map; nothing ever walks the done memory.
///
/// When the table of flows in progress is full, room is made (at most ten times a second of
/// capture time): finished flows move to the done memory, and flows that have had a single
/// packet and nothing for a second (a SYN or datagram nobody answered, as in a port scan) are
/// dropped. Only when that frees nothing is a new flow refused.
#[derive(Debug)]
pub struct Table {
    flows: HashMap<FlowKey, Flow, foldhash::fast::RandomState>,
    /// Young and old generations of done flows' fingerprints.
    done: [HashSet<u64, BuildHasherDefault<Prehashed>>; 2],
    hasher: foldhash::fast::RandomState,
    max: usize,
    max_done: usize,
    pub idle: Duration,
    last_sweep: Duration,
    last_rotation: Duration,
    last_relief: Option<Duration>,
    /// Flows made.
    pub created: u64,
    /// New flows not tracked because the table was full of live flows.
    pub refused: u64,
    /// Flows in progress dropped for idleness.
    pub expired: u64,
    /// Single-packet flows dropped to make room for new ones.
    pub evicted: u64,
}

/// How often, at most, a full table looks for room.
const RELIEF_INTERVAL: Duration = Duration::from_millis(100);
/// A single-packet flow quiet for this long may be dropped to make room.
const STALE_START: Duration = Duration::from_secs(1);

impl Table {
    /// A table of at most `max` flows in progress and a million done ones.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self::with_done(max, 1 << 20, idle)
    }

    /// A table of at most `max` flows in progress and `max_done` done ones.
    pub fn with_done(max: usize, max_done: usize, idle: Duration) -> Self {
        Self {
            // Grown as flows come, not reserved: a sweep walks every bucket, so a table sized
            // for the busiest hour would make every quiet second's sweep cost as much.
            flows: HashMap::default(),
            done: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
            max,
            max_done: max_done.max(2),
            idle,
            last_sweep: Duration::ZERO,
            last_rotation: Duration::ZERO,
            last_relief: None,
            created: 0,
            refused: 0,
            expired: 0,
            evicted: 0,
        }
    }

    /// Flows in progress.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Done flows remembered.
    pub fn done_len(&self) -> usize {
        self.done.iter().map(HashSet::len).sum()
    }

    /// The flow a packet between `a` and `b` belongs to, in either direction, and whether
    /// the packet came from its client. A new flow is made with `a` as client (or `b`, if
    /// `server_first` says the packet came from the server) unless the table is full. None
    /// for a flow already classified (its packets need nothing more) and for a refused one.
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
        let print = fingerprint(&self.hasher, protocol, a, b);
        let [young, old] = &mut self.done;
        if young.contains(&print) {
            return None;
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
        let existing = if self.flows.contains_key(&forward) {
            Some((forward, true))
        } else if self.flows.contains_key(&backward) {
            Some((backward, false))
        } else {
            None
        };
        let (key, from_client) = match existing {
            Some((key, from_client)) => {
                if self.flows.get(&key).is_some_and(|f| f.done) {
                    self.flows.remove(&key);
                    self.remember(print, now);
                    return None;
                }
                (key, from_client)
            }
            None => {
                if old.remove(&print) {
                    // Still talking: keep it in the young generation.
                    self.remember(print, now);
                    return None;
                }
                if self.flows.len() >= self.max {
                    self.relieve(now);
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
            }
        };
        let flow = self.flows.get_mut(&key)?;
        flow.last_seen = now;
        Some((flow, from_client, key))
    }

    /// Moves done flows to the done memory and drops flows in progress idle for longer than
    /// `idle`; forgets the old generation of done flows every `idle`.
    pub fn sweep(&mut self, now: Duration) {
        self.last_sweep = now;
        // Rotations fall every `idle` since the last one, also those no packet came for: a
        // fingerprint is forgotten at the second one after it was last seen.
        let idle = self.idle.max(Duration::from_millis(1));
        let periods = now.saturating_sub(self.last_rotation).as_nanos() / idle.as_nanos();
        if periods >= 1 {
            self.rotate();
            if periods >= 2 {
                self.done[1].clear();
            }
            let periods = u32::try_from(periods).unwrap_or(u32::MAX);
            self.last_rotation = self
                .last_rotation
                .checked_add(idle.saturating_mul(periods))
                .unwrap_or(now);
        }
        self.prune(now, |_, _| false);
    }

    /// Makes room in a full table, at most every [`RELIEF_INTERVAL`].
    fn relieve(&mut self, now: Duration) {
        if self
            .last_relief
            .is_some_and(|t| now.saturating_sub(t) < RELIEF_INTERVAL)
        {
            return;
        }
        self.last_relief = Some(now);
        self.prune(now, |f, quiet| {
            f.from_client.saturating_add(f.from_server) <= 1 && quiet >= STALE_START
        });
    }

    /// One pass over the flows in progress: done ones move to the done memory; idle ones,
    /// and those `evict` picks, are dropped.
    fn prune(&mut self, now: Duration, evict: impl Fn(&Flow, Duration) -> bool) {
        let idle = self.idle;
        let mut finished = Vec::new();
        let (mut expired, mut evicted) = (0u64, 0u64);
        self.flows.retain(|k, f| {
            let quiet = now.saturating_sub(f.last_seen);
            if f.done {
                finished.push(*k);
                false
            } else if quiet >= idle {
                expired += 1;
                false
            } else if evict(f, quiet) {
                evicted += 1;
                false
            } else {
                true
            }
        });
        self.expired += expired;
        self.evicted += evicted;
        for k in finished {
            let print = fingerprint(&self.hasher, k.protocol, k.client, k.server);
            self.remember(print, now);
        }
    }

    /// Puts a done flow's fingerprint in the young generation.
    fn remember(&mut self, print: u64, now: Duration) {
        if self.done[0].len() >= self.max_done / 2 {
            self.rotate();
            self.last_rotation = now;
        }
        self.done[0].insert(print);
    }

    fn rotate(&mut self) {
        let [young, old] = &mut self.done;
        std::mem::swap(young, old);
        young.clear();
    }
}

/// A flow's fingerprint, the same whichever way the packet went.
fn fingerprint(
    hasher: &foldhash::fast::RandomState,
    protocol: u8,
    a: SocketAddr,
    b: SocketAddr,
) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    hasher.hash_one((protocol, lo, hi))
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this; anything else is folded in, never lost.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(
            std::net::Ipv4Addr::from(0xc000_0200 + (i >> 16)).into(),
            u16::try_from(i & 0xffff).unwrap(),
        )
    }

    #[test]
    fn done_flows_are_remembered_compactly_then_forgotten() {
        let idle = Duration::from_secs(60);
        let mut t = Table::new(16, idle);
        let (a, b) = (addr(1), "198.51.100.1:443".parse().unwrap());
        let t0 = Duration::from_secs(1000);
        t.get(TCP, a, b, t0, false).unwrap().0.done = true;
        // Its next packet, either way, finds it done and moves it out of the table.
        assert!(t.get(TCP, b, a, t0, false).is_none());
        assert_eq!((t.len(), t.done_len()), (0, 1));
        assert!(
            t.get(TCP, a, b, t0 + Duration::from_secs(30), false)
                .is_none()
        );
        // Still talking after a rotation: carried into the young generation.
        assert!(
            t.get(TCP, a, b, t0 + Duration::from_secs(100), false)
                .is_none()
        );
        assert_eq!(t.done_len(), 1);
        // Silent for two idle periods: forgotten, and a packet starts a new flow.
        assert!(
            t.get(TCP, a, b, t0 + Duration::from_secs(230), false)
                .is_some()
        );
        assert_eq!(t.created, 2);
        // A finished flow that never sends again leaves the table at the next sweep.
        t.get(UDP, a, b, t0 + Duration::from_secs(231), false)
            .unwrap()
            .0
            .done = true;
        t.sweep(t0 + Duration::from_secs(232));
        assert!(
            t.get(UDP, b, a, t0 + Duration::from_secs(233), false)
                .is_none()
        );
        assert_eq!(t.created, 3);
    }

    #[test]
    fn the_done_memory_is_bounded() {
        let mut t = Table::with_done(4, 8, Duration::from_secs(60));
        let b: SocketAddr = "198.51.100.1:443".parse().unwrap();
        let now = Duration::from_secs(1);
        for i in 0..1000 {
            t.get(TCP, addr(i), b, now, false).unwrap().0.done = true;
            assert!(t.get(TCP, addr(i), b, now, false).is_none());
            assert!(t.done_len() <= 8);
        }
        // The newest are remembered, the oldest forgotten.
        assert!(t.get(TCP, addr(999), b, now, false).is_none());
        assert!(t.get(TCP, addr(0), b, now, false).is_some());
    }

    #[test]
    fn a_full_table_drops_unanswered_starts_to_take_new_flows() {
        let mut t = Table::new(1000, Duration::from_secs(120));
        let b: SocketAddr = "198.51.100.1:443".parse().unwrap();
        let t0 = Duration::from_secs(10);
        // A scan: a thousand SYNs nobody answers.
        for i in 0..1000 {
            t.get(TCP, addr(i), b, t0, false)
                .unwrap()
                .0
                .count(true, None);
        }
        // Within a second they may still be answered: a new flow is refused.
        assert!(
            t.get(TCP, addr(5000), b, t0 + Duration::from_millis(500), false)
                .is_none()
        );
        assert_eq!(t.refused, 1);
        // A flow that is talking is never dropped to make room.
        let (f, _, _) = t
            .get(TCP, addr(7), b, t0 + Duration::from_millis(600), false)
            .unwrap();
        f.count(false, None);
        // After a second the unanswered ones give way to the next flow start.
        let (f, ..) = t
            .get(TCP, addr(5001), b, t0 + Duration::from_millis(1700), false)
            .unwrap();
        f.count(true, None);
        assert_eq!(t.evicted, 999);
        assert_eq!(t.len(), 2);
        assert!(
            t.get(TCP, addr(7), b, t0 + Duration::from_millis(1800), false)
                .is_some()
        );
    }

    #[test]
    fn a_table_full_of_live_flows_refuses_without_walking_it_for_each() {
        let mut t = Table::new(100, Duration::from_secs(120));
        let b: SocketAddr = "198.51.100.1:443".parse().unwrap();
        let t0 = Duration::from_secs(10);
        for i in 0..100 {
            let (f, ..) = t.get(TCP, addr(i), b, t0, false).unwrap();
            f.count(true, None);
            f.count(false, None);
        }
        for i in 0..10_000 {
            assert!(
                t.get(TCP, addr(1000 + i), b, t0 + Duration::from_secs(2), false)
                    .is_none()
            );
        }
        assert_eq!((t.refused, t.evicted, t.len()), (10_000, 0, 100));
        // Rate limited: the same instant made room once; a tenth of a second later, again.
        assert_eq!(t.last_relief, Some(t0 + Duration::from_secs(2)));
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

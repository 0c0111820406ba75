//! `lab-flood`: traffic at a steady packet rate for the live capture benchmark
//! (`bench/live.sh`), sent from inside a namespace through a raw socket.
//!
//! `lab-flood SRC DST RATE SECONDS BULK` sends flows from SRC to addresses in DST's /24,
//! paced to RATE packets a second for SECONDS. Three flows in four are TLS over TCP: a SYN, a ClientHello
//! naming `f<N>.bench.lab`, then BULK data segments of 1,400 bytes, the last with PSH (one
//! write). The fourth is WireGuard:
//! a 148-byte handshake initiation, then BULK 1,400-byte transport data messages. Each flow
//! has its own source port and destination, so every flow start is a new flow to the
//! capture. At the end it prints one JSON object: packets sent, flow starts, bulk packets,
//! the rate reached and send errors (ENOBUFS counts as an error, not a packet).
#![allow(clippy::print_stderr, clippy::print_stdout, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// `IPPROTO_RAW`: the packets carry their own IP header.
const IPPROTO_RAW: i32 = 255;
const BULK_PAYLOAD: usize = 1400;
const WIREGUARD_PORT: u16 = 51820;

fn client_hello(name: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let n = name.as_bytes();
    let len = |v: usize| u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes();
    // server_name
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&len(n.len() + 5));
    ext.extend_from_slice(&len(n.len() + 3));
    ext.push(0);
    ext.extend_from_slice(&len(n.len()));
    ext.extend_from_slice(n);
    // ALPN h2, supported_versions TLS 1.3 and 1.2
    ext.extend_from_slice(&[0x00, 0x10, 0, 5, 0, 3, 2, b'h', b'2']);
    ext.extend_from_slice(&[0x00, 0x2b, 0, 5, 4, 3, 4, 3, 3]);
    let mut body = vec![3, 3];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(32);
    body.extend((0..32u8).map(|i| i.wrapping_mul(11)));
    body.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&len(ext.len()));
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&len(body.len()));
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&len(hs.len()));
    record.extend_from_slice(&hs);
    record
}

/// The packets of flow `n` to `dst`, in order, and which of them is the flow start (the
/// ones after it are bulk).
fn flow(n: u64, src: [u8; 4], dst: [u8; 4], bulk: usize, filler: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let port = 1024 + u16::try_from(n % 60_000).unwrap_or(0);
    let mut out = Vec::with_capacity(bulk + 2);
    let mut emit = |builder: Step, payload: &[u8]| {
        let mut v = Vec::with_capacity(builder.size(payload.len()));
        if builder.write(&mut v, payload).is_ok() {
            out.push(v);
        }
    };
    let start = if n % 4 == 3 {
        let mut init = vec![0u8; 148];
        init[0] = 1;
        init[4..8].copy_from_slice(&u32::try_from(n & 0xffff_ffff).unwrap_or(0).to_le_bytes());
        emit(
            Step::Udp(PacketBuilder::ipv4(src, dst, 64).udp(port, WIREGUARD_PORT)),
            &init,
        );
        let mut data = filler.to_vec();
        data[..4].copy_from_slice(&[4, 0, 0, 0]);
        for _ in 0..bulk {
            emit(
                Step::Udp(PacketBuilder::ipv4(src, dst, 64).udp(port, WIREGUARD_PORT)),
                &data,
            );
        }
        // The handshake initiation.
        0
    } else {
        let isn = u32::try_from(n & 0xffff_ffff)
            .unwrap_or(0)
            .wrapping_mul(2_654_435_761);
        emit(
            Step::Tcp(
                PacketBuilder::ipv4(src, dst, 64)
                    .tcp(port, 443, isn, 64_240)
                    .syn(),
            ),
            &[],
        );
        let hello = client_hello(&format!("f{n}.bench.lab"));
        let mut seq = isn.wrapping_add(1);
        emit(
            Step::Tcp(
                PacketBuilder::ipv4(src, dst, 64)
                    .tcp(port, 443, seq, 64_240)
                    .ack(1)
                    .psh(),
            ),
            &hello,
        );
        seq = seq.wrapping_add(u32::try_from(hello.len()).unwrap_or(0));
        for i in 0..bulk {
            // A write ends with PSH: the flow's data is one write, as a server's response.
            let segment = PacketBuilder::ipv4(src, dst, 64)
                .tcp(port, 443, seq, 64_240)
                .ack(1);
            let segment = if i + 1 == bulk {
                segment.psh()
            } else {
                segment
            };
            emit(Step::Tcp(segment), filler);
            seq = seq.wrapping_add(u32::try_from(filler.len()).unwrap_or(0));
        }
        // The ClientHello, after the SYN.
        1
    };
    (out, start)
}

/// A TCP or UDP builder, ready to write.
enum Step {
    Tcp(etherparse::PacketBuilderStep<etherparse::TcpHeader>),
    Udp(etherparse::PacketBuilderStep<etherparse::UdpHeader>),
}

impl Step {
    fn size(&self, payload: usize) -> usize {
        match self {
            Self::Tcp(b) => b.size(payload),
            Self::Udp(b) => b.size(payload),
        }
    }

    fn write(
        self,
        out: &mut Vec<u8>,
        payload: &[u8],
    ) -> Result<(), etherparse::err::packet::BuildWriteError> {
        match self {
            Self::Tcp(b) => b.write(out, payload),
            Self::Udp(b) => b.write(out, payload),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first().and_then(|s| s.parse::<Ipv4Addr>().ok()),
        args.get(1).and_then(|s| s.parse::<Ipv4Addr>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
        args.get(4).and_then(|s| s.parse::<usize>().ok()),
    );
    let (Some(src), Some(dst), Some(rate), Some(seconds), Some(bulk)) = parsed else {
        eprintln!("usage: lab-flood SRC DST RATE SECONDS BULK");
        std::process::exit(2);
    };
    let socket = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab-flood: raw socket: {e}");
            std::process::exit(1);
        }
    };
    // Bulk data that no classifier and no filter step takes for the start of anything.
    let filler: Vec<u8> = (0..BULK_PAYLOAD)
        .map(|i| u8::try_from((i * 7 + 0x80) % 251).unwrap_or(0) | 0x80)
        .collect();
    let base = dst.octets();
    let total = rate * seconds;
    let (mut sent, mut starts, mut bulk_sent, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut n = 0u64;
    let begin = Instant::now();
    'flows: loop {
        let host = u8::try_from(1 + n / 60_000 % 254).unwrap_or(1);
        let dst = [base[0], base[1], base[2], host];
        let target = SockAddr::from(SocketAddr::from((dst, 0)));
        let (packets, start) = flow(n, src.octets(), dst, bulk, &filler);
        for (i, packet) in packets.iter().enumerate() {
            if sent + errors >= total {
                break 'flows;
            }
            // Pace: never ahead of RATE; catch up in bursts when behind.
            let due = Duration::from_nanos((sent + errors) * 1_000_000_000 / rate);
            while begin.elapsed() < due {
                std::hint::spin_loop();
            }
            match socket.send_to(packet, &target) {
                Ok(_) => {
                    sent += 1;
                    if i == start {
                        starts += 1;
                    } else if i > start {
                        bulk_sent += 1;
                    }
                }
                Err(_) => errors += 1,
            }
        }
        n += 1;
    }
    let elapsed = begin.elapsed().as_secs_f64();
    println!(
        "{{\"packets\":{sent},\"flow_starts\":{starts},\"bulk\":{bulk_sent},\"seconds\":{elapsed:.3},\"rate\":{:.0},\"errors\":{errors}}}",
        sent as f64 / elapsed
    );
}

//! The kernel filter: a classic BPF program, attached to the capture socket, that lets
//! through only packets that can still tell what a flow is, and an interpreter that runs the
//! same program in user space (for `replay --filter`, the tests and the benchmarks).
//!
//! What passes, and why:
//! - TCP with SYN, FIN or RST: flows start and end.
//! - TCP payload under [`TCP_SMALL`] bytes: request lines, banners, SOCKS greetings, the
//!   second segment of a ClientHello, control messages of tunnels. Pure ACKs (no payload)
//!   do not pass: they are most of the upload direction of any download.
//! - Larger TCP payload whole when it starts a TLS handshake record (`16 03`) or an HTTP or
//!   SSH opening (`GET `, `POST`, `PUT `, `HEAD`, `CONN`, `OPTI`, `SSH-`): a post-quantum
//!   ClientHello fills a whole segment, and a GRO frame can hold a whole handshake.
//! - Other larger TCP payload with PSH set: its first [`TCP_HEAD`] bytes only. PSH ends an
//!   application's write, so a flow's first message from each side carries it; a fully
//!   encrypted proxy's first message is one large random write (obfs4 pads its handshake to
//!   kilobytes), and its first bytes are all the classifier reads. Bulk transfers set PSH
//!   once per write, not per segment, and those segments come back cut short.
//! - UDP to or from port 53 or 500; large datagrams on 4500 only when they are IKE (the
//!   four-byte zero marker), not ESP-in-UDP.
//! - UDP payload of at most [`UDP_SMALL`] bytes: WireGuard and OpenVPN handshakes, DNS.
//! - Larger UDP when the first byte is a QUIC long header of an Initial (`110xxxxx`) or a
//!   Google QUIC packet carrying a version (`00xxxxx1`), or a DNSCrypt resolver's answer (its
//!   fixed eight-byte magic, `r6fnvWj8`); short-header QUIC (bulk) does not.
//! - ICMP and ICMPv6, all of it (tunnels hide in echo payloads; the volume is small).
//! - ESP up to [`ESP_SMALL`] bytes of IP packet.
//! - IPv6 packets whose next header is an extension header, and VLAN-tagged frames the
//!   kernel did not untag: the program does not walk them, so it lets them through rather
//!   than lose a flow start.
//!
//! Everything else (non-IP, later IPv4 fragments, full-sized data segments, short-header
//! QUIC, large ESP) stays in the kernel. A load beyond the end of the packet ends the program
//! with "drop", as in the kernel; the interpreter does the same.

use schoolgate_wire::Reader;

/// A TCP payload shorter than this passes whatever it starts with.
pub const TCP_SMALL: u32 = 1000;
/// How much of a large PSH segment's payload is kept.
pub const TCP_HEAD: u32 = 192;
/// A UDP payload of at most this many bytes passes whatever it starts with.
pub const UDP_SMALL: u32 = 256;
/// An ESP packet (IP length) of at most this many bytes passes.
pub const ESP_SMALL: u32 = 300;
/// What the program returns for a packet that passes: the most of it to keep (GRO frames
/// reach 64 KiB).
pub const KEEP: u32 = 0x4_0000;

/// One classic BPF instruction, as `struct sock_filter` lays it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// How the frames the program reads begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Ethernet II: EtherType at 12, IP at 14.
    Ethernet,
    /// Linux cooked (SLL): protocol at 14, IP at 16.
    LinuxSll,
    /// The IP header first; the version nibble tells v4 from v6.
    RawIp,
}

// Classic BPF opcodes (linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
/// `BPF_A` as a return's source: keep as many bytes as the accumulator says.
const RET_A: u16 = 0x10;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const MSH: u16 = 0xa0;
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const AND: u16 = 0x50;
const RSH: u16 = 0x70;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const X: u16 = 0x08;
const TAX: u16 = 0x00;

/// An instruction whose jump targets are still labels.
#[derive(Debug, Clone, Copy)]
enum Step {
    Op(u16, u32),
    /// Conditional jump: to `yes` if true, else to `no` (`None`: the next instruction).
    Jump(u16, u32, Label, Option<Label>),
    Mark(Label),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Accept,
    Drop,
    V4,
    V6,
    Tcp,
    Udp,
    TcpData,
    Udp4500,
    LargeUdp,
    QuicLike,
    DnsCrypt,
    Esp4,
    Esp6,
    TcpHead,
}

/// The filter for frames of `framing`, ready to attach.
pub fn program(framing: Framing) -> Vec<Insn> {
    use Label::*;
    use Step::*;
    let (l3, proto_at) = match framing {
        Framing::Ethernet => (14, Some(12)),
        Framing::LinuxSll => (16, Some(14)),
        Framing::RawIp => (0, None),
    };
    let mut s = Vec::new();
    match proto_at {
        Some(at) => s.extend([
            Op(LD | H | ABS, at),
            Jump(JEQ, 0x0800, V4, None),
            Jump(JEQ, 0x86dd, V6, None),
            Jump(JEQ, 0x8100, Accept, None),
            Jump(JEQ, 0x88a8, Accept, Some(Drop)),
        ]),
        None => s.extend([
            Op(LD | B | ABS, l3),
            Op(ALU | AND, 0xf0),
            Jump(JEQ, 0x40, V4, None),
            Jump(JEQ, 0x60, V6, Some(Drop)),
        ]),
    }
    // IPv4: M[0] = header length, M[1] = IP packet length.
    s.extend([
        Mark(V4),
        Op(LD | H | ABS, l3 + 6),
        Jump(JSET, 0x1fff, Drop, None),
        Op(LDX | B | MSH, l3),
        Op(STX, 0),
        Op(LD | H | ABS, l3 + 2),
        Op(ST, 1),
        Op(LD | B | ABS, l3 + 9),
        Jump(JEQ, 6, Tcp, None),
        Jump(JEQ, 17, Udp, None),
        Jump(JEQ, 1, Accept, None),
        Jump(JEQ, 50, Esp4, Some(Drop)),
        Mark(Esp4),
        Op(LD | MEM, 1),
        Jump(JGT, ESP_SMALL, Drop, Some(Accept)),
    ]);
    // IPv6: M[0] = 40, M[1] = 40 + payload length.
    s.extend([
        Mark(V6),
        Op(LD | IMM, 40),
        Op(ST, 0),
        Op(LD | H | ABS, l3 + 4),
        Op(ALU | ADD, 40),
        Op(ST, 1),
        Op(LD | B | ABS, l3 + 6),
        Jump(JEQ, 6, Tcp, None),
        Jump(JEQ, 17, Udp, None),
        Jump(JEQ, 58, Accept, None),
        Jump(JEQ, 50, Esp6, None),
        // Hop-by-hop, routing, fragment, destination options: not walked here.
        Jump(JEQ, 0, Accept, None),
        Jump(JEQ, 43, Accept, None),
        Jump(JEQ, 44, Accept, None),
        Jump(JEQ, 60, Accept, Some(Drop)),
        Mark(Esp6),
        Op(LD | MEM, 1),
        Jump(JGT, ESP_SMALL, Drop, Some(Accept)),
    ]);
    // TCP: X = IP header length.
    s.extend([
        Mark(Tcp),
        Op(LDX | MEM, 0),
        Op(LD | B | IND, l3 + 13),
        Jump(JSET, 0x07, Accept, None),
        Op(LD | B | IND, l3 + 12),
        Op(ALU | RSH, 2),
        Op(ALU | AND, 0x3c),
        Op(ALU | ADD | X, 0),
        // M[2] = IP + TCP header length; A = payload length.
        Op(ST, 2),
        Op(MISC | TAX, 0),
        Op(LD | MEM, 1),
        Op(ALU | SUB | X, 0),
        Jump(JEQ, 0, Drop, None),
        Jump(JGE, TCP_SMALL, TcpData, Some(Accept)),
        Mark(TcpData),
        Op(LDX | MEM, 2),
        Op(LD | H | IND, l3),
        Jump(JEQ, 0x1603, Accept, None),
        Op(LD | W | IND, l3),
    ]);
    for opening in [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"CONN", b"OPTI", b"SSH-",
    ] {
        s.push(Jump(JEQ, u32::from_be_bytes(*opening), Accept, None));
    }
    // Anything else with PSH: the headers and the payload's first TCP_HEAD bytes.
    s.extend([
        Op(LDX | MEM, 0),
        Op(LD | B | IND, l3 + 13),
        Jump(JSET, 0x08, TcpHead, Some(Drop)),
        Mark(TcpHead),
        Op(LD | MEM, 2),
        Op(ALU | ADD, l3 + TCP_HEAD),
        Op(RET | RET_A, 0),
    ]);
    // UDP: X = IP header length.
    let [m0, m1, m2, m3, m4, m5, m6, m7] = *crate::signature::DNSCRYPT_ANSWER_MAGIC;
    let dnscrypt_magic = (
        u32::from_be_bytes([m0, m1, m2, m3]),
        u32::from_be_bytes([m4, m5, m6, m7]),
    );
    s.extend([
        Mark(Udp),
        Op(LDX | MEM, 0),
        Op(LD | H | IND, l3),
        Jump(JEQ, 53, Accept, None),
        Jump(JEQ, 500, Accept, None),
        Op(LD | H | IND, l3 + 2),
        Jump(JEQ, 53, Accept, None),
        Jump(JEQ, 500, Accept, None),
        Op(LD | H | IND, l3 + 4),
        Jump(JGT, UDP_SMALL + 8, LargeUdp, Some(Accept)),
        // Large on 4500: IKE carries a zero marker, ESP-in-UDP (bulk) an SPI.
        Mark(LargeUdp),
        Op(LD | H | IND, l3),
        Jump(JEQ, 4500, Udp4500, None),
        Op(LD | H | IND, l3 + 2),
        Jump(JEQ, 4500, Udp4500, Some(QuicLike)),
        Mark(Udp4500),
        Op(LD | W | IND, l3 + 8),
        Jump(JEQ, 0, Accept, Some(Drop)),
        Mark(QuicLike),
        Op(LD | B | IND, l3 + 8),
        Op(ALU | AND, 0xe0),
        Jump(JEQ, 0xc0, Accept, None),
        Op(LD | B | IND, l3 + 8),
        Op(ALU | AND, 0xc1),
        Jump(JEQ, 0x01, Accept, None),
        Op(LD | W | IND, l3 + 8),
        Jump(JEQ, dnscrypt_magic.0, DnsCrypt, Some(Drop)),
        Mark(DnsCrypt),
        Op(LD | W | IND, l3 + 12),
        Jump(JEQ, dnscrypt_magic.1, Accept, Some(Drop)),
    ]);
    s.extend([Mark(Accept), Op(RET, KEEP), Mark(Drop), Op(RET, 0)]);
    assemble(&s)
}

/// Turns labels into the forward offsets classic BPF jumps take.
fn assemble(steps: &[Step]) -> Vec<Insn> {
    let mut at = Vec::new();
    let mut n = 0usize;
    for s in steps {
        match s {
            Step::Mark(l) => at.push((*l, n)),
            _ => n += 1,
        }
    }
    let find = |l: Label| {
        at.iter()
            .find(|(m, _)| *m == l)
            .map(|(_, i)| *i)
            .unwrap_or(usize::MAX)
    };
    let mut out = Vec::with_capacity(n);
    for s in steps {
        let here = out.len();
        // Offsets are counted from the instruction after the jump; the program is built
        // so that every target lies ahead and within 255 (checked by the tests).
        let off = |l: Label| u8::try_from(find(l).wrapping_sub(here + 1)).unwrap_or(u8::MAX);
        match *s {
            Step::Op(code, k) => out.push(Insn {
                code,
                jt: 0,
                jf: 0,
                k,
            }),
            Step::Jump(op, k, yes, no) => out.push(Insn {
                code: JMP | op,
                jt: off(yes),
                jf: no.map_or(0, off),
                k,
            }),
            Step::Mark(_) => {}
        }
    }
    out
}

/// Runs `program` over `frame` as the kernel would, and returns how many bytes it keeps
/// (0: dropped). A malformed program (a jump past the end) drops.
pub fn run(program: &[Insn], frame: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let load = |at: u32, size: u16| -> Option<u32> {
        let mut r = Reader::at(frame, usize::try_from(at).ok()?)?;
        match size {
            W => r.u32(),
            H => r.u16().map(u32::from),
            B => r.u8().map(u32::from),
            _ => None,
        }
    };
    while let Some(i) = program.get(pc) {
        pc += 1;
        let class = i.code & 0x07;
        let size = i.code & 0x18;
        let mode = i.code & 0xe0;
        match class {
            LD => {
                a = match mode {
                    IMM => i.k,
                    ABS => match load(i.k, size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match load(x.wrapping_add(i.k), size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MEM => mem.get(i.k as usize).copied().unwrap_or(0),
                    _ => return 0,
                }
            }
            LDX => {
                x = match mode {
                    IMM => i.k,
                    MEM => mem.get(i.k as usize).copied().unwrap_or(0),
                    MSH => match load(i.k, B) {
                        Some(v) => (v & 0x0f) * 4,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            ST | STX => {
                if let Some(m) = mem.get_mut(i.k as usize) {
                    *m = if class == ST { a } else { x };
                }
            }
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    AND => a & v,
                    RSH => a.checked_shr(v).unwrap_or(0),
                    _ => return 0,
                }
            }
            JMP => {
                let v = if i.code & X != 0 { x } else { i.k };
                let skip = match i.code & 0xf0 {
                    0x00 => i.k as usize,
                    op => {
                        let yes = match op {
                            JEQ => a == v,
                            JGT => a > v,
                            JGE => a >= v,
                            JSET => a & v != 0,
                            _ => return 0,
                        };
                        usize::from(if yes { i.jt } else { i.jf })
                    }
                };
                pc += skip;
            }
            RET => return if i.code & 0x18 == RET_A { a } else { i.k },
            MISC => {
                if i.code & 0xf8 == TAX {
                    x = a;
                } else {
                    a = x;
                }
            }
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn tcp4(flags: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 2], [192, 0, 2, 1], 64)
            .tcp(40000, 443, 1, 64000);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'F' => b.fin(),
                'R' => b.rst(),
                'A' => b.ack(2),
                'P' => b.psh(),
                _ => b,
            };
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn udp6(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([0xfd; 16], [0x20; 16], 64)
            .udp(src, dst);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn udp4(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 2], [192, 0, 2, 1], 64)
            .udp(src, dst);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn passes(frame: &[u8]) -> bool {
        run(&program(Framing::Ethernet), frame) != 0
    }

    #[test]
    fn jumps_stay_inside_the_program() {
        for f in [Framing::Ethernet, Framing::LinuxSll, Framing::RawIp] {
            let p = program(f);
            assert!(p.len() < 256, "{} instructions", p.len());
            for (i, insn) in p.iter().enumerate() {
                if insn.code & 0x07 == JMP {
                    let far = i
                        + 1
                        + usize::from(insn.jt.max(insn.jf))
                        + insn.k as usize * usize::from(insn.code == JMP);
                    assert!(far < p.len(), "{f:?}: jump at {i} leaves the program");
                }
            }
            assert_eq!(p.last().unwrap().code, RET);
        }
    }

    #[test]
    fn tcp_flow_starts_and_openings_pass_bulk_does_not() {
        assert!(passes(&tcp4("S", b"")));
        assert!(passes(&tcp4("SA", b"")));
        assert!(passes(&tcp4("FA", b"")));
        assert!(passes(&tcp4("R", b"")));
        assert!(!passes(&tcp4("A", b"")), "a pure ACK");
        assert!(passes(&tcp4("A", b"GET / HTTP/1.1\r\n")));
        let mut hello = vec![0x16, 0x03, 0x01, 0x06, 0x00];
        hello.resize(1448, 0xaa);
        assert!(
            passes(&tcp4("A", &hello)),
            "a full segment opening a ClientHello"
        );
        let mut bulk = vec![0x17, 0x03, 0x03, 0x40, 0x00];
        bulk.resize(1448, 0xaa);
        assert!(!passes(&tcp4("A", &bulk)), "application data");
        let mut upload = b"POST /upload HTTP/1.1\r\n".to_vec();
        upload.resize(1448, b'x');
        assert!(passes(&tcp4("A", &upload)));
        let mut gro = vec![0x5a; 60_000];
        assert!(!passes(&tcp4("A", &gro)), "a GRO frame of bulk data");
        gro[..4].copy_from_slice(b"SSH-");
        assert!(passes(&tcp4("A", &gro)));
        assert!(passes(&tcp4("A", &[0x5a; 999])), "a small segment");
        assert!(!passes(&tcp4("A", &[0x5a; 1000])));
    }

    #[test]
    fn a_large_write_passes_its_head_only() {
        // A proxy's first message, one large random write: the headers (Ethernet 14, IPv4
        // 20, TCP 20) and the payload's first TCP_HEAD bytes.
        let first = tcp4("AP", &[0x5a; 5800]);
        assert_eq!(
            run(&program(Framing::Ethernet), &first),
            14 + 20 + 20 + TCP_HEAD
        );
        assert_eq!(
            run(&program(Framing::RawIp), &first[14..]),
            20 + 20 + TCP_HEAD
        );
        // The same without PSH (the middle of a write) stays in the kernel; an opening with
        // PSH passes whole, as before.
        assert_eq!(
            run(&program(Framing::Ethernet), &tcp4("A", &[0x5a; 5800])),
            0
        );
        let mut hello = vec![0x16, 0x03, 0x01, 0x06, 0x00];
        hello.resize(1448, 0xaa);
        assert_eq!(run(&program(Framing::Ethernet), &tcp4("AP", &hello)), KEEP);
    }

    #[test]
    fn udp_openings_pass_bulk_does_not() {
        let mut initial = vec![0xc3, 0, 0, 0, 1];
        initial.resize(1250, 0);
        assert!(passes(&udp4(50000, 443, &initial)), "QUIC v1 Initial");
        initial[0] = 0xd3;
        assert!(passes(&udp6(50000, 443, &initial)), "QUIC v2 Initial");
        initial[0] = 0x43;
        assert!(!passes(&udp6(50000, 443, &initial)), "short-header QUIC");
        initial[0] = 0xe3;
        assert!(
            !passes(&udp4(50000, 443, &initial)),
            "QUIC Handshake packet"
        );
        initial[0] = 0x0d;
        assert!(passes(&udp4(50000, 443, &initial)), "gQUIC with a version");
        initial[0] = 0x80;
        assert!(!passes(&udp4(50000, 3478, &initial)), "RTP");
        assert!(
            passes(&udp4(50000, 51820, &[1; 148])),
            "WireGuard initiation"
        );
        assert!(passes(&udp4(50000, 1194, &[0x38; 14])), "OpenVPN reset");
        assert!(!passes(&udp4(51820, 50000, &[4; 1400])), "WireGuard data");
        let mut answer = b"r6fnvWj8".to_vec();
        answer.resize(600, 0x5a);
        assert!(passes(&udp4(443, 50000, &answer)), "DNSCrypt answer");
        answer[7] = b'9';
        assert!(!passes(&udp4(443, 50000, &answer)), "not quite DNSCrypt");
        assert!(passes(&udp4(50000, 53, &[0; 600])), "DNS");
        assert!(
            passes(&udp4(4500, 4500, &[0, 0, 0, 0, 0x21, 0x20])),
            "IKE on 4500"
        );
        // An SPI whose first byte looks like a QUIC Initial's.
        let mut esp = vec![0xde, 0xad, 0xbe, 0xef];
        esp.resize(1400, 0);
        assert!(!passes(&udp4(4500, 4500, &esp)), "ESP in UDP");
        assert!(passes(&udp4(500, 500, &esp)), "IKE");
        assert!(passes(&udp4(4500, 4500, &[0xff])), "NAT-T keepalive");
    }

    #[test]
    fn other_framings_and_broken_frames() {
        let frame = tcp4("S", b"");
        let raw = &frame[14..];
        assert_ne!(run(&program(Framing::RawIp), raw), 0);
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(raw);
        assert_ne!(run(&program(Framing::LinuxSll), &sll), 0);
        // ARP, and frames cut short anywhere, are dropped without a fault.
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!passes(&arp));
        for cut in 0..frame.len() {
            let _ = passes(&frame[..cut]);
        }
        // A later fragment has no ports to read.
        let mut later = udp4(1, 53, b"x");
        later[14 + 6..14 + 8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert!(!passes(&later));
    }
}

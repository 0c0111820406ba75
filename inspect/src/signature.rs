//! Tunnel and tool signatures: the first packets of WireGuard, OpenVPN, IKE, SSH, SOCKS and
//! Tor, recognised by their structure. Each check takes a payload (and, where the protocol
//! needs it, the other side's reply) and says yes or no; none allocates much or panics.
//!
//! Where one packet alone is too weak a sign (a SOCKS5 greeting is three bytes; an OpenVPN
//! reset is a common first byte and a length), the check also needs the server's answer to
//! fit: the reply echoes the client's session ID, or picks one of the offered methods. Random
//! traffic almost never does both.

use schoolgate_wire::Reader;

/// WireGuard handshake messages (the whitepaper, §5.4): type in the first byte, three zero
/// bytes, fixed lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireGuard {
    /// Type 1, 148 bytes: a client starting a session.
    Initiation,
    /// Type 2, 92 bytes: the peer answering.
    Response,
    /// Type 3, 64 bytes.
    Cookie,
}

/// A WireGuard handshake message, if `p` is one.
pub fn wireguard(p: &[u8]) -> Option<WireGuard> {
    match (p.get(..4)?, p.len()) {
        ([1, 0, 0, 0], 148) => Some(WireGuard::Initiation),
        ([2, 0, 0, 0], 92) => Some(WireGuard::Response),
        ([3, 0, 0, 0], 64) => Some(WireGuard::Cookie),
        _ => None,
    }
}

/// The receiver index of a WireGuard transport data message (type 4: index, 8-byte counter,
/// then encrypted data padded to 16 bytes with a 16-byte tag), if `p` has that shape. One
/// such packet proves little; many with the same index do.
pub fn wireguard_data(p: &[u8]) -> Option<u32> {
    match p {
        [4, 0, 0, 0, a, b, c, d, ..] if p.len() >= 32 && p.len().is_multiple_of(16) => {
            Some(u32::from_le_bytes([*a, *b, *c, *d]))
        }
        _ => None,
    }
}

/// OpenVPN's control-channel opcodes (in the top five bits of the first byte).
const OVPN_HARD_RESET_CLIENT_V1: u8 = 1;
const OVPN_HARD_RESET_SERVER_V1: u8 = 2;
const OVPN_HARD_RESET_CLIENT_V2: u8 = 7;
const OVPN_HARD_RESET_SERVER_V2: u8 = 8;
const OVPN_HARD_RESET_CLIENT_V3: u8 = 10;

/// The session ID of an OpenVPN client hard reset (the first packet of a session), if `p`
/// (one UDP datagram, or one TCP packet without its two-byte length) is one.
pub fn openvpn_client_reset(p: &[u8]) -> Option<[u8; 8]> {
    let client = matches!(
        p.first()? >> 3,
        OVPN_HARD_RESET_CLIENT_V1 | OVPN_HARD_RESET_CLIENT_V2 | OVPN_HARD_RESET_CLIENT_V3
    );
    openvpn_reset(p).filter(|_| client && p.len() <= 1500)
}

/// Whether `p` is an OpenVPN server hard reset that acknowledges the client session `client`.
/// Without tls-auth the acknowledged session ID follows the ACK array; with tls-auth or
/// tls-crypt an HMAC and packet ID come first, so the ID is looked for in the first 80 bytes.
pub fn openvpn_server_reset(p: &[u8], client: &[u8; 8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let opcode = first >> 3;
    if !matches!(
        opcode,
        OVPN_HARD_RESET_SERVER_V1 | OVPN_HARD_RESET_SERVER_V2
    ) {
        return false;
    }
    let window = p.get(9..p.len().min(80)).unwrap_or_default();
    window.windows(8).any(|w| w == client)
}

/// `P_CONTROL_V1` and `P_ACK_V1`: the control channel's messages, which carry the sender's
/// session ID like the resets do. (QUIC's short headers, which also repeat eight bytes
/// after their first, always have the 0x40 bit set, so never carry these opcodes.)
const OVPN_CONTROL: u8 = 4;
const OVPN_ACK: u8 = 5;
/// Control messages after a reset, with its session ID, that make one side of a session.
const OVPN_SESSION_CONTROL: u8 = 2;

/// One side of a possible OpenVPN session, followed packet by packet: a hard reset, then
/// control and ACK messages under the same 8-byte session ID. Either side alone is enough,
/// which finds sessions whose other side is not seen (asymmetric routing, or NAT between
/// the two halves of a capture) and sessions under tls-crypt, where the server's reset
/// no longer shows the client's session ID in clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenVpnSide {
    session: Option<[u8; 8]>,
    control: u8,
    /// The side's first packet was no reset: not followed any further.
    other: bool,
}

impl OpenVpnSide {
    /// Takes the side's next packet (a UDP datagram, or a TCP packet without its length);
    /// true once the side is an OpenVPN session.
    pub fn push(&mut self, p: &[u8]) -> bool {
        if self.other {
            return false;
        }
        let mut r = Reader::new(p);
        let (Some(first), Some(id)) = (r.u8(), r.array::<8>()) else {
            self.other |= self.session.is_none();
            return false;
        };
        match self.session {
            None => {
                self.session = openvpn_reset(p);
                self.other = self.session.is_none();
            }
            Some(session) => {
                if matches!(first >> 3, OVPN_CONTROL | OVPN_ACK) && id == session {
                    self.control = self.control.saturating_add(1);
                }
            }
        }
        self.control >= OVPN_SESSION_CONTROL
    }
}

/// The session ID of an OpenVPN hard reset from either side (key ID 0), if `p` is one.
pub fn openvpn_reset(p: &[u8]) -> Option<[u8; 8]> {
    let mut r = Reader::new(p);
    let first = r.u8()?;
    let reset = matches!(
        first >> 3,
        OVPN_HARD_RESET_CLIENT_V1
            | OVPN_HARD_RESET_SERVER_V1
            | OVPN_HARD_RESET_CLIENT_V2
            | OVPN_HARD_RESET_SERVER_V2
            | OVPN_HARD_RESET_CLIENT_V3
    );
    if !reset || first & 0x07 != 0 || p.len() < 14 {
        return None;
    }
    r.array()
}

/// [`OpenVpnSide`] over one direction of a TCP stream (length-framed packets).
pub fn openvpn_tcp_side(stream: &[u8]) -> bool {
    let mut side = OpenVpnSide::default();
    let mut r = Reader::new(stream);
    while let Some(p) = r.u16_prefixed() {
        if side.push(p) {
            return true;
        }
    }
    false
}

/// OpenVPN over TCP: each packet is preceded by its length; this is the packet, if the
/// length fits what arrived.
pub fn openvpn_tcp_packet(stream: &[u8]) -> Option<&[u8]> {
    Reader::new(stream).u16_prefixed()
}

/// Whether `p` is the first message of an IKE exchange (RFC 7296 §3.1; RFC 2408 for IKEv1):
/// a non-zero initiator SPI, a zero responder SPI, a known version and exchange type, and a
/// length that matches the datagram. On port 4500, `p` starts after the four-byte non-ESP
/// marker.
pub fn ike_initiation(p: &[u8]) -> bool {
    let Some(h) = IkeHeader::read(p) else {
        return false;
    };
    let known = match h.version {
        0x20 => h.exchange == 34,            // IKEv2 IKE_SA_INIT
        0x10 => matches!(h.exchange, 2 | 4), // IKEv1 Main or Aggressive Mode
        _ => false,
    };
    known && h.initiator != [0; 8] && h.responder == [0; 8] && h.length_is(p)
}

/// The fixed IKE header (RFC 7296 §3.1): SPIs, next payload, version, exchange type, flags,
/// message ID, length.
struct IkeHeader {
    initiator: [u8; 8],
    responder: [u8; 8],
    version: u8,
    exchange: u8,
    length: u32,
}

impl IkeHeader {
    fn read(p: &[u8]) -> Option<Self> {
        let mut r = Reader::new(p);
        let initiator = r.array()?;
        let responder = r.array()?;
        let _next_payload = r.u8()?;
        let version = r.u8()?;
        let exchange = r.u8()?;
        let _flags = r.u8()?;
        let _message_id = r.u32()?;
        let length = r.u32()?;
        Some(Self {
            initiator,
            responder,
            version,
            exchange,
            length,
        })
    }

    /// Whether the header's length is the datagram's.
    fn length_is(&self, p: &[u8]) -> bool {
        usize::try_from(self.length).is_ok_and(|l| l == p.len())
    }
}

/// Whether `p` is any IKE message (RFC 7296 §3.1; RFC 2408 for IKEv1): a known version and
/// exchange type, a non-zero initiator SPI and a length that is the datagram's. Used on the
/// NAT-traversal port, where an exchange already under way (IKE_AUTH, rekeys) shows the
/// same header as its start.
pub fn ike_message(p: &[u8]) -> bool {
    let Some(h) = IkeHeader::read(p) else {
        return false;
    };
    let known = match h.version {
        0x20 => (34..=37).contains(&h.exchange),
        0x10 => matches!(h.exchange, 1..=5 | 32),
        _ => false,
    };
    known && h.initiator != [0; 8] && h.length_is(p)
}

/// Whether a datagram to UDP port 4500 (IPsec NAT traversal, RFC 3948) is one of its two
/// shapes besides IKE: a one-byte 0xff keepalive, or ESP in UDP (a non-zero SPI, a sequence
/// number, then at least an IV's worth of data).
pub fn nat_t(p: &[u8]) -> bool {
    match p {
        [0xff] => true,
        [a, b, c, d, ..] => p.len() >= 24 && [*a, *b, *c, *d] != [0, 0, 0, 0],
        _ => false,
    }
}

/// The longest SSH identification line (RFC 4253 §4.2: 255 bytes with CR LF).
const MAX_SSH_BANNER: usize = 255;

/// The SSH identification string (`SSH-2.0-OpenSSH_9.6`) `stream` starts with, if any.
/// Either side may send it first; both do at the start of every SSH connection.
pub fn ssh_banner(stream: &[u8]) -> Option<String> {
    let head = stream.get(..stream.len().min(MAX_SSH_BANNER))?;
    if !(head.starts_with(b"SSH-2.0-")
        || head.starts_with(b"SSH-1.99-")
        || head.starts_with(b"SSH-1.5-"))
    {
        return None;
    }
    let end = head.iter().position(|b| *b == b'\n')?;
    let line = head.get(..end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.iter()
        .all(|b| (0x20..0x7f).contains(b))
        .then(|| String::from_utf8_lossy(line).into_owned())
}

/// A SOCKS client greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksHello {
    /// SOCKS5: the authentication methods offered.
    V5 { methods: Vec<u8> },
    /// SOCKS4 or 4a CONNECT/BIND, complete in one packet: the destination (a name for 4a).
    V4 { destination: String },
}

/// A SOCKS greeting at the start of a client's stream.
pub fn socks_hello(p: &[u8]) -> Option<SocksHello> {
    match p {
        [5, n, methods @ ..] if *n >= 1 && usize::from(*n) == methods.len() => {
            Some(SocksHello::V5 {
                methods: methods.to_vec(),
            })
        }
        [4, 1 | 2, port_hi, port_lo, a, b, c, d, rest @ ..] if rest.len() <= 512 => {
            // User ID, NUL; for 4a (address 0.0.0.x) then a host name, NUL.
            let user_end = rest.iter().position(|x| *x == 0)?;
            let after = rest.get(user_end + 1..)?;
            let port = u16::from_be_bytes([*port_hi, *port_lo]);
            let destination = if *a == 0 && *b == 0 && *c == 0 && *d != 0 {
                let host_end = after.iter().position(|x| *x == 0)?;
                if host_end + 1 != after.len() {
                    return None;
                }
                let host = std::str::from_utf8(after.get(..host_end)?).ok()?;
                if host.is_empty() || !host.bytes().all(|x| x.is_ascii_graphic()) {
                    return None;
                }
                format!("{host}:{port}")
            } else {
                if !after.is_empty() {
                    return None;
                }
                format!("{a}.{b}.{c}.{d}:{port}")
            };
            Some(SocksHello::V4 { destination })
        }
        _ => None,
    }
}

/// Whether `reply` is a SOCKS server's answer to `hello`: for SOCKS5 the version and one of
/// the offered methods (or "none acceptable"); for SOCKS4 a null byte and a result code.
pub fn socks_reply(hello: &SocksHello, reply: &[u8]) -> bool {
    match (hello, reply) {
        (SocksHello::V5 { methods }, [5, chosen, ..]) => {
            *chosen == 0xff || methods.contains(chosen)
        }
        (SocksHello::V4 { .. }, [0, 0x5a..=0x5d, ..]) => reply.len() >= 8,
        _ => false,
    }
}

/// The magic a DNSCrypt (version 2) resolver puts first in every answer.
pub const DNSCRYPT_ANSWER_MAGIC: &[u8; 8] = b"r6fnvWj8";

/// A DNSCrypt answer: the resolver's magic, the 24-byte nonce (the client's half echoed,
/// then the resolver's), then at least the 16-byte authentication tag. The client's queries
/// start with a magic taken from the resolver's certificate, random to an observer, so it is
/// the answers that give DNSCrypt away.
pub fn dnscrypt_answer(payload: &[u8]) -> bool {
    payload.len() >= DNSCRYPT_ANSWER_MAGIC.len() + 24 + 16
        && payload.starts_with(DNSCRYPT_ANSWER_MAGIC)
}

/// A question for a DNSCrypt resolver's certificate, which a client asks before anything
/// else, in plain DNS: `<version>.dnscrypt-cert.<provider name>` (version 2 today).
pub fn dnscrypt_certificate_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 16
        && b.first().is_some_and(u8::is_ascii_digit)
        && name
            .get(1..16)
            .is_some_and(|p| p.eq_ignore_ascii_case(".dnscrypt-cert."))
}

/// Whether a TLS server name looks like the random ones Tor clients send: `www.`, then
/// 4 to 25 characters of base32 (a–z, 2–7) with at least one digit, then `.com` or `.net`.
/// Tor's clients also offer no ALPN, unlike browsers, which the caller checks: a real short
/// name such as `www.web2.com` fits the pattern, but not with a ClientHello that has no ALPN.
pub fn tor_like_sni(sni: &str) -> bool {
    let Some(rest) = sni.strip_prefix("www.") else {
        return false;
    };
    let Some(label) = rest
        .strip_suffix(".com")
        .or_else(|| rest.strip_suffix(".net"))
    else {
        return false;
    };
    (4..=25).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        && label.bytes().any(|b| (b'2'..=b'7').contains(&b))
}

/// Shannon entropy of `bytes`, in bits per byte (0 to 8).
pub fn entropy(bytes: &[u8]) -> f64 {
    entropy_of(bytes.len(), bytes.iter().copied())
}

/// Shannon entropy of the differences between neighbouring bytes: low for data that counts
/// or repeats a pattern (whose byte values alone may be spread evenly), high for random
/// data.
pub fn step_entropy(bytes: &[u8]) -> f64 {
    let steps = bytes.windows(2).map(|w| match w {
        [a, b] => b.wrapping_sub(*a),
        _ => 0,
    });
    entropy_of(bytes.len().saturating_sub(1), steps)
}

fn entropy_of(n: usize, bytes: impl Iterator<Item = u8>) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in bytes {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = n as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// An OpenVPN packet: opcode and key ID, session ID, then `rest` bytes (tls-crypt's
    /// packet ID, tag and ciphertext look like noise).
    fn ovpn(opcode: u8, session: [u8; 8], rest: usize) -> Vec<u8> {
        let mut p = vec![opcode << 3];
        p.extend_from_slice(&session);
        p.extend((0..rest).map(|i| (i * 89 % 256) as u8));
        p
    }

    #[test]
    fn openvpn_sides_from_their_own_packets() {
        let s = [0x97, 0x53, 0x56, 0x89, 0x24, 0x84, 0x2f, 0x7b];
        // Client under tls-crypt: reset, ACK, control.
        let mut side = OpenVpnSide::default();
        assert!(!side.push(&ovpn(7, s, 77)));
        assert!(side.session.is_some());
        assert!(!side.push(&ovpn(5, s, 85)));
        assert!(side.push(&ovpn(4, s, 360)));
        // Server: reset, then control messages.
        let mut server = OpenVpnSide::default();
        for (op, expect) in [(8, false), (4, false), (4, true)] {
            assert_eq!(server.push(&ovpn(op, s, 89)), expect);
        }
        // Another session's control messages do not count.
        let mut mixed = OpenVpnSide::default();
        mixed.push(&ovpn(7, s, 40));
        let other = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(!mixed.push(&ovpn(4, other, 40)));
        assert!(!mixed.push(&ovpn(5, other, 40)));
        // QUIC short headers repeat their connection ID after the first byte, but always
        // have the 0x40 bit: never a reset followed by control messages.
        let mut quic = OpenVpnSide::default();
        for first in [0x41u8, 0x48, 0x4f, 0x55, 0x5c, 0x43] {
            let mut p = vec![first];
            p.extend_from_slice(&s);
            p.resize(1200, 0xaa);
            assert!(!quic.push(&p));
        }
        // A side that does not begin with a reset is not followed.
        let mut late = OpenVpnSide::default();
        assert!(!late.push(&ovpn(4, s, 40)));
        assert!(!late.push(&ovpn(7, s, 40)));
        assert!(!late.push(&ovpn(4, s, 40)));
        assert!(!late.push(&ovpn(4, s, 40)));
        // Over TCP, framed by length.
        let mut stream = Vec::new();
        for (op, n) in [(7, 45), (5, 53), (4, 344)] {
            let p = ovpn(op, s, n);
            stream.extend_from_slice(&u16::try_from(p.len()).unwrap().to_be_bytes());
            stream.extend_from_slice(&p);
        }
        assert!(openvpn_tcp_side(&stream));
        assert!(!openvpn_tcp_side(&stream[..stream.len() - 1]));
    }

    #[test]
    fn dnscrypt_answers_and_certificate_names() {
        let mut answer = b"r6fnvWj8".to_vec();
        answer.resize(47, 0);
        assert!(!dnscrypt_answer(&answer), "too short for nonce and tag");
        answer.push(0);
        assert!(dnscrypt_answer(&answer));
        assert!(!dnscrypt_answer(
            b"R6FNVWJ8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        for yes in [
            "2.dnscrypt-cert.resolver.example",
            "2.DNSCrypt-Cert.example.",
            "3.dnscrypt-cert.x",
        ] {
            assert!(dnscrypt_certificate_name(yes), "{yes}");
        }
        for no in [
            "2.dnscrypt-cert.",
            "dnscrypt-cert.example",
            "x.dnscrypt-cert.example",
            "22.dnscrypt-cert.example",
            "2.dnscrypt-certs.example",
            "2é.dnscrypt-cert.example",
            "",
        ] {
            assert!(!dnscrypt_certificate_name(no), "{no}");
        }
    }

    #[test]
    fn wireguard_messages_by_type_and_length() {
        let mut init = vec![1, 0, 0, 0];
        init.resize(148, 0xab);
        assert_eq!(wireguard(&init), Some(WireGuard::Initiation));
        let mut resp = vec![2, 0, 0, 0];
        resp.resize(92, 0xcd);
        assert_eq!(wireguard(&resp), Some(WireGuard::Response));
        init.push(0);
        assert_eq!(wireguard(&init), None);
        let mut odd = vec![1, 0, 1, 0];
        odd.resize(148, 0);
        assert_eq!(wireguard(&odd), None);
        assert_eq!(wireguard(&[]), None);
    }

    #[test]
    fn openvpn_reset_and_its_echo() {
        let session = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut client = vec![OVPN_HARD_RESET_CLIENT_V2 << 3];
        client.extend_from_slice(&session);
        client.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert_eq!(openvpn_client_reset(&client), Some(session));
        let mut server = vec![OVPN_HARD_RESET_SERVER_V2 << 3];
        server.extend_from_slice(&[9; 8]);
        server.push(1);
        server.extend_from_slice(&[0, 0, 0, 0]);
        server.extend_from_slice(&session);
        server.extend_from_slice(&[0, 0, 0, 0]);
        assert!(openvpn_server_reset(&server, &session));
        assert!(!openvpn_server_reset(&server, &[0; 8]));
        // A key ID, a data opcode or a short packet is not a reset.
        let mut keyed = client.clone();
        keyed[0] |= 1;
        assert_eq!(openvpn_client_reset(&keyed), None);
        assert_eq!(openvpn_client_reset(&client[..10]), None);
        let mut tcp = (client.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(&client);
        assert_eq!(openvpn_tcp_packet(&tcp), Some(&client[..]));
        assert_eq!(openvpn_tcp_packet(&tcp[..10]), None);
    }

    #[test]
    fn ike_sa_init_and_look_alikes() {
        let mut p = vec![0x11; 8];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0]);
        p.extend_from_slice(&40u32.to_be_bytes());
        p.resize(40, 0);
        assert!(ike_initiation(&p));
        let mut wrong_len = p.clone();
        wrong_len.push(0);
        assert!(!ike_initiation(&wrong_len));
        let mut answered = p.clone();
        answered[8] = 1;
        assert!(!ike_initiation(&answered));
        let mut v1 = p.clone();
        v1[17] = 0x10;
        v1[18] = 2;
        assert!(ike_initiation(&v1));
        v1[18] = 34;
        assert!(!ike_initiation(&v1));
        // Later messages of the same exchange: the responder's SPI is set.
        assert!(ike_message(&answered));
        let mut auth = answered.clone();
        auth[18] = 35;
        assert!(ike_message(&auth));
        auth[18] = 40;
        assert!(!ike_message(&auth), "no such exchange");
        assert!(!ike_message(&wrong_len));
        assert!(!ike_message(&[0; 28]), "zero initiator SPI");
    }

    #[test]
    fn ssh_banners() {
        assert_eq!(
            ssh_banner(b"SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11\r\n\0\0\0"),
            Some("SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11".into())
        );
        assert_eq!(
            ssh_banner(b"SSH-2.0-dropbear\n"),
            Some("SSH-2.0-dropbear".into())
        );
        assert_eq!(ssh_banner(b"SSH-2.0-no end yet"), None);
        assert_eq!(ssh_banner(b"SSH-2.0-\x1b[31mred\r\n"), None);
        assert_eq!(ssh_banner(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn socks_greetings_and_replies() {
        let v5 = socks_hello(&[5, 2, 0, 2]).unwrap();
        assert!(socks_reply(&v5, &[5, 0]));
        assert!(socks_reply(&v5, &[5, 0xff]));
        assert!(!socks_reply(&v5, &[5, 1]));
        assert!(!socks_reply(&v5, b"HTTP/1.1 400"));
        assert_eq!(socks_hello(&[5, 3, 0]), None);
        let v4 = socks_hello(b"\x04\x01\x00\x50\x5d\xb8\xd8\x22user\0").unwrap();
        assert_eq!(
            v4,
            SocksHello::V4 {
                destination: "93.184.216.34:80".into()
            }
        );
        assert!(socks_reply(&v4, &[0, 0x5a, 0, 0, 0, 0, 0, 0]));
        let v4a = socks_hello(b"\x04\x01\x01\xbb\x00\x00\x00\x01\0www.example.com\0").unwrap();
        assert_eq!(
            v4a,
            SocksHello::V4 {
                destination: "www.example.com:443".into()
            }
        );
        assert_eq!(socks_hello(b"\x04\x01\x00\x50\x5d\xb8\xd8\x22user"), None);
        assert_eq!(
            socks_hello(b"\x04\x01\x01\xbb\x00\x00\x00\x01\0<b>\x01\0"),
            None
        );
    }

    #[test]
    fn tor_names_and_ordinary_ones() {
        for name in [
            "www.t3i3ru.com",
            "www.jmts2id.com",
            "www.q4cyamnc6mtokjurvdclt.com",
            "www.e6r5p57kbafwrxj3plz.net",
        ] {
            assert!(tor_like_sni(name), "{name}");
        }
        for name in [
            "www.google.com",
            "www.bbc.co.uk",
            "www.abc1.com",
            "www.x8.com",
            "mail.a2b3c4.com",
            "www.a234567890123456789012345z.com",
        ] {
            assert!(!tor_like_sni(name), "{name}");
        }
    }
}

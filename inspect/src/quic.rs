//! QUIC Initial packets: the client's first datagrams, whose CRYPTO frames carry its TLS
//! ClientHello. They are encrypted, but with keys anyone can derive from the packet itself
//! (RFC 9001 §5.2; RFC 9369 §3.3 for version 2): HKDF over the destination connection ID with
//! a salt fixed per version. So the gateway can read the server name a QUIC client asks for,
//! as it reads the SNI of TLS over TCP.
//!
//! The steps, for each long-header packet of a datagram: read the header up to the packet
//! number, derive the keys, take the header-protection mask from a 16-byte sample, unmask the
//! first byte and the packet number, open the payload with AES-128-GCM, then read its frames
//! and keep the CRYPTO frames' data with their offsets. A ClientHello can span several
//! Initial packets, in any order (Chrome's post-quantum key share makes it over 1,200 bytes):
//! [`Crypto`] puts the pieces back in order.

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

use schoolgate_wire::Reader;

use crate::tls::MAX_HELLO;

/// The least a client's first datagram holds (RFC 9000 §14.1: Initials are padded to it).
pub const MIN_CLIENT_DATAGRAM: usize = 1200;

/// The QUIC versions whose Initial packets can be read: the salt and labels they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// RFC 9000.
    V1,
    /// RFC 9369 (0x6b3343cf).
    V2,
    /// draft-ietf-quic-29 (0xff00001d), still sent by older stacks.
    Draft29,
    /// drafts 23 to 28, and Facebook's mvfst versions built on draft 27.
    Draft27,
}

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
const SALT_DRAFT23: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];

impl Version {
    /// The version a long header's version field names, if its Initials can be read.
    pub fn from_wire(v: u32) -> Option<Self> {
        match v {
            0x0000_0001 => Some(Self::V1),
            0x6b33_43cf => Some(Self::V2),
            0xff00_001d => Some(Self::Draft29),
            0xff00_0017..=0xff00_001c => Some(Self::Draft27),
            // mvfst's draft-27-based versions.
            0xface_b001 | 0xface_b002 | 0xface_b00d => Some(Self::Draft27),
            _ => None,
        }
    }

    fn salt(self) -> &'static [u8; 20] {
        match self {
            Self::V1 => &SALT_V1,
            Self::V2 => &SALT_V2,
            Self::Draft29 => &SALT_DRAFT29,
            Self::Draft27 => &SALT_DRAFT23,
        }
    }

    /// The long-header packet type bits an Initial carries (version 2 moved them).
    fn initial_type(self) -> u8 {
        match self {
            Self::V2 => 0b01,
            _ => 0b00,
        }
    }

    fn labels(self) -> [&'static [u8]; 3] {
        match self {
            Self::V2 => [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
            _ => [b"quic key", b"quic iv", b"quic hp"],
        }
    }
}

/// Why a datagram's Initial could not be read. Each is an ordinary outcome on the wire
/// (other QUIC versions, server packets, lost first packets), never a fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    #[error("not a QUIC long-header packet")]
    NotLongHeader,
    #[error("QUIC version {0:#010x} is not one whose Initials can be read")]
    UnknownVersion(u32),
    #[error("a long-header packet of type {0}, not an Initial")]
    NotInitial(u8),
    #[error("the packet ends before its header or payload does")]
    Truncated,
    #[error("connection ID of {0} bytes (at most 20)")]
    ConnectionId(usize),
    #[error("the payload did not decrypt with the Initial keys")]
    Decrypt,
}

/// Initial packet protection keys, one direction.
struct Keys {
    packet: LessSafeKey,
    iv: [u8; 12],
    header: HeaderProtectionKey,
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, into `out`.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), QuicError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let len = u16::try_from(out.len()).map_err(|_| QuicError::Decrypt)?;
    let label_len = u8::try_from(6 + label.len()).map_err(|_| QuicError::Decrypt)?;
    let len_bytes = len.to_be_bytes();
    let info: [&[u8]; 5] = [&len_bytes, &[label_len], b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| QuicError::Decrypt)
}

/// The client's Initial secret for `dcid` (RFC 9001 §5.2), as a PRK to expand keys from.
fn client_secret(version: Version, dcid: &[u8]) -> Result<hkdf::Prk, QuicError> {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, version.salt()).extract(dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret)?;
    Ok(hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret))
}

impl Keys {
    fn client(version: Version, dcid: &[u8]) -> Result<Self, QuicError> {
        let secret = client_secret(version, dcid)?;
        let [key_label, iv_label, hp_label] = version.labels();
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&secret, key_label, &mut key)?;
        expand_label(&secret, iv_label, &mut iv)?;
        expand_label(&secret, hp_label, &mut hp)?;
        let packet = UnboundKey::new(&AES_128_GCM, &key).map_err(|_| QuicError::Decrypt)?;
        let header = HeaderProtectionKey::new(&AES_128, &hp).map_err(|_| QuicError::Decrypt)?;
        Ok(Self {
            packet: LessSafeKey::new(packet),
            iv,
            header,
        })
    }
}

/// A variable-length integer (RFC 9000 §16): the first byte's two high bits give its
/// length (1, 2, 4 or 8 bytes). Read whole or not at all.
fn varint(r: &mut Reader<'_>) -> Option<u64> {
    let len = 1usize << (r.peek()? >> 6);
    let (first, rest) = r.take(len)?.split_first()?;
    Some(
        rest.iter()
            .fold(u64::from(first & 0x3f), |v, b| v << 8 | u64::from(*b)),
    )
}

/// What one datagram's client Initial packets held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initial {
    pub version: Version,
    /// The destination connection ID of the first Initial in the datagram: the one the
    /// keys of the connection's later Initials are derived from.
    pub dcid: Vec<u8>,
    /// CRYPTO frame data and the stream offset it starts at.
    pub crypto: Vec<(u64, Vec<u8>)>,
}

/// The most bytes of Initial keys a connection ID can feed (RFC 9000 §17.2).
const MAX_CID: usize = 20;

/// Reads the client Initial packets in `datagram` (coalesced packets are read in turn).
/// `first_dcid` is the destination connection ID of the connection's first Initial, once
/// known: a client that has heard from the server addresses it by another ID, but its
/// Initials stay under the first one's keys.
pub fn client_initial(datagram: &[u8], first_dcid: Option<&[u8]>) -> Result<Initial, QuicError> {
    let mut rest = datagram;
    let mut out: Option<Initial> = None;
    while let Some(&first) = rest.first() {
        if first & 0x80 == 0 {
            break;
        }
        match packet(rest, first_dcid) {
            Ok((initial, used)) => {
                match out.as_mut() {
                    Some(o) => o.crypto.extend(initial.crypto),
                    None => out = Some(initial),
                }
                rest = rest.get(used..).unwrap_or_default();
            }
            // A later coalesced packet (0-RTT, Handshake) cannot be read; the Initial before
            // it was.
            Err(e) => match out {
                Some(_) => break,
                None => return Err(e),
            },
        }
    }
    out.ok_or(QuicError::NotLongHeader)
}

/// One long-header packet at the start of `b`: its Initial contents and its length.
fn packet(b: &[u8], first_dcid: Option<&[u8]>) -> Result<(Initial, usize), QuicError> {
    let mut r = Reader::new(b);
    let first = r.u8().ok_or(QuicError::Truncated)?;
    if first & 0x80 == 0 {
        return Err(QuicError::NotLongHeader);
    }
    let wire = r.u32().ok_or(QuicError::Truncated)?;
    let version = Version::from_wire(wire).ok_or(QuicError::UnknownVersion(wire))?;
    let kind = (first >> 4) & 0b11;
    if kind != version.initial_type() {
        return Err(QuicError::NotInitial(kind));
    }
    let dcid = connection_id(&mut r)?;
    let _scid = connection_id(&mut r)?;
    let token_len = varint(&mut r).ok_or(QuicError::Truncated)?;
    usize::try_from(token_len)
        .ok()
        .and_then(|n| r.skip(n))
        .ok_or(QuicError::Truncated)?;
    let length = varint(&mut r).ok_or(QuicError::Truncated)?;
    let pn_offset = r.position();
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| pn_offset.checked_add(l))
        .filter(|end| *end <= b.len())
        .ok_or(QuicError::Truncated)?;
    let key_cid = first_dcid.unwrap_or(dcid);
    let keys = Keys::client(version, key_cid)?;

    // Header protection (RFC 9001 §5.4): the sample starts four bytes after the packet
    // number's first byte, whatever the packet number's length.
    let sample = b
        .get(pn_offset + 4..pn_offset + 20)
        .ok_or(QuicError::Truncated)?;
    let mask = keys
        .header
        .new_mask(sample)
        .map_err(|_| QuicError::Decrypt)?;
    let first_plain = first ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first_plain & 0x03) + 1;
    let mut header = b
        .get(..pn_offset + pn_len)
        .ok_or(QuicError::Truncated)?
        .to_vec();
    let mut pn: u64 = 0;
    if let Some(h) = header.first_mut() {
        *h = first_plain;
    }
    for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
        if let Some(byte) = header.get_mut(pn_offset + i) {
            *byte ^= m;
            pn = pn << 8 | u64::from(*byte);
        }
    }
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
        *n ^= p;
    }
    let mut payload = b
        .get(pn_offset + pn_len..end)
        .ok_or(QuicError::Truncated)?
        .to_vec();
    let plain = keys
        .packet
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            &mut payload,
        )
        .map_err(|_| QuicError::Decrypt)?;
    let crypto = crypto_frames(plain);
    Ok((
        Initial {
            version,
            dcid: key_cid.to_vec(),
            crypto,
        },
        end,
    ))
}

fn connection_id<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], QuicError> {
    let len = usize::from(r.peek().ok_or(QuicError::Truncated)?);
    if len > MAX_CID {
        return Err(QuicError::ConnectionId(len));
    }
    r.u8_prefixed().ok_or(QuicError::Truncated)
}

/// The CRYPTO frames of a decrypted Initial payload. An Initial may hold only PADDING,
/// PING, ACK, CRYPTO and CONNECTION_CLOSE (RFC 9000 §12.4); reading stops at anything else.
fn crypto_frames(p: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = Reader::new(p);
    while let Some(kind) = varint(&mut r) {
        let read = match kind {
            0x00 | 0x01 => Some(()),
            0x02 | 0x03 => skip_ack(&mut r, kind == 0x03),
            0x06 => crypto_frame(&mut r).map(|frame| out.push(frame)),
            _ => None,
        };
        if read.is_none() {
            break;
        }
    }
    out
}

/// A CRYPTO frame's offset and data.
fn crypto_frame(r: &mut Reader<'_>) -> Option<(u64, Vec<u8>)> {
    let offset = varint(r)?;
    let len = usize::try_from(varint(r)?).ok()?;
    Some((offset, r.take(len)?.to_vec()))
}

fn skip_ack(r: &mut Reader<'_>, ecn: bool) -> Option<()> {
    let _largest = varint(r)?;
    let _delay = varint(r)?;
    let ranges = varint(r)?;
    let _first = varint(r)?;
    for _ in 0..ranges.min(256) {
        let _gap = varint(r)?;
        let _len = varint(r)?;
    }
    if ecn {
        for _ in 0..3 {
            varint(r)?;
        }
    }
    Some(())
}

/// The CRYPTO stream of a connection's Initials, put back in order from pieces that may
/// arrive out of order, overlap or repeat. Bounded by [`MAX_HELLO`].
#[derive(Debug, Default, Clone)]
pub struct Crypto {
    /// Bytes from offset 0 that have arrived without a gap.
    contiguous: Vec<u8>,
    /// Pieces beyond a gap, by offset, waiting for it to fill.
    pending: Vec<(usize, Vec<u8>)>,
}

impl Crypto {
    /// Adds a CRYPTO frame's data at `offset`. Data beyond [`MAX_HELLO`] is dropped.
    pub fn add(&mut self, offset: u64, data: &[u8]) {
        let Ok(offset) = usize::try_from(offset) else {
            return;
        };
        if offset >= MAX_HELLO {
            return;
        }
        let data = data
            .get(..data.len().min(MAX_HELLO - offset))
            .unwrap_or_default();
        if self.pending.len() < 32 {
            self.pending.push((offset, data.to_vec()));
        }
        // Move every piece that now touches the contiguous prefix into it.
        loop {
            let have = self.contiguous.len();
            let Some(i) = self.pending.iter().position(|(o, _)| *o <= have) else {
                break;
            };
            let (o, piece) = self.pending.swap_remove(i);
            if let Some(new) = piece.get(have - o..) {
                self.contiguous.extend_from_slice(new);
            }
        }
    }

    /// The stream from offset 0 up to the first gap.
    pub fn contiguous(&self) -> &[u8] {
        &self.contiguous
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9001 Appendix A.1: the client's Initial key, IV and header-protection key for
    /// destination connection ID 0x8394c8f03e515708.
    #[test]
    fn v1_client_keys_match_rfc_9001() {
        let secret = client_secret(Version::V1, &hex("8394c8f03e515708")).unwrap();
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&secret, b"quic key", &mut key).unwrap();
        expand_label(&secret, b"quic iv", &mut iv).unwrap();
        expand_label(&secret, b"quic hp", &mut hp).unwrap();
        assert_eq!(key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn crypto_pieces_out_of_order_overlapping_and_repeated() {
        let mut c = Crypto::default();
        c.add(6, b"world");
        assert_eq!(c.contiguous(), b"");
        c.add(0, b"hello");
        assert_eq!(c.contiguous(), b"hello");
        c.add(3, b"lo ");
        assert_eq!(c.contiguous(), b"hello world");
        c.add(0, b"hello");
        assert_eq!(c.contiguous(), b"hello world");
        c.add(u64::MAX, b"x");
        c.add(MAX_HELLO as u64 - 1, b"yz");
        assert_eq!(c.contiguous(), b"hello world");
    }

    #[test]
    fn short_headers_unknown_versions_and_garbage_are_refused() {
        assert_eq!(client_initial(&[], None), Err(QuicError::NotLongHeader));
        assert_eq!(
            client_initial(&[0x40, 1, 2], None),
            Err(QuicError::NotLongHeader)
        );
        assert_eq!(
            client_initial(&[0xc0, 0x51, 0x30, 0x35, 0x30, 0], None),
            Err(QuicError::UnknownVersion(0x5130_3530))
        );
        assert_eq!(
            client_initial(&[0xe0, 0, 0, 0, 1, 8], None),
            Err(QuicError::NotInitial(2))
        );
        assert_eq!(
            client_initial(&[0xc0, 0, 0, 0, 1, 8, 1], None),
            Err(QuicError::Truncated)
        );
        assert_eq!(
            client_initial(&[0xc0, 0, 0, 0, 1, 21], None),
            Err(QuicError::ConnectionId(21))
        );
    }
}

//! Google QUIC (versions Q035 to Q046), which older Chrome and YouTube apps still send: the
//! client's first packet carries a `CHLO` handshake message unencrypted, and its `SNI` tag
//! names the server.
//!
//! A `CHLO` message is its tag, a count of entries, two bytes of padding, then (tag, end
//! offset) pairs and the values one after another. The packet header before it varies by
//! version and flags, so the message is looked for in the first bytes of the packet rather
//! than reached by parsing every header variant.

use schoolgate_wire::Reader;

use crate::tls::MAX_NAME;

/// How far into the packet the `CHLO` tag may start: the longest public header (flags,
/// 8-byte connection ID, version, diversification nonce, 6-byte packet number), the 12-byte
/// hash and a stream frame header fit well inside this.
const SEARCH: usize = 96;
/// The most entries a `CHLO` may have here (real ones have about 20).
const MAX_ENTRIES: usize = 64;

/// The version a gQUIC client packet announces (`Q043`…), if it has the version flag.
pub fn version(datagram: &[u8]) -> Option<[u8; 4]> {
    let flags = *datagram.first()?;
    // IETF-style long header that Q046 and later use: 0xc3 or similar, then the version.
    let at = if flags & 0x80 != 0 {
        1
    } else if flags & 0x01 != 0 {
        // Public header: flags, optional 8-byte connection ID, version.
        if flags & 0x08 != 0 { 9 } else { 1 }
    } else {
        return None;
    };
    let v: [u8; 4] = Reader::at(datagram, at)?.array()?;
    (v[0] == b'Q' && v[1..].iter().all(u8::is_ascii_digit)).then_some(v)
}

/// The server name in a gQUIC client hello packet, lower-cased.
pub fn sni(datagram: &[u8]) -> Option<String> {
    version(datagram)?;
    let window = datagram.get(..datagram.len().min(SEARCH + 4))?;
    let start = window.windows(4).position(|w| w == b"CHLO")?;
    // CHLO, the number of entries (little-endian, as all of gQUIC's crypto messages), two
    // bytes of padding, the tag table (tag, end offset), and the values it points into.
    let mut msg = Reader::at(datagram, start + 4)?;
    let count = usize::from(msg.u16_le()?);
    if count == 0 || count > MAX_ENTRIES {
        return None;
    }
    msg.skip(2)?;
    let mut table = msg.sub(count * 8)?;
    let values = msg.rest();
    let mut prev = 0usize;
    while let Some(tag) = table.array::<4>() {
        let end = usize::try_from(table.u32_le()?).ok()?;
        if &tag == b"SNI\0" {
            let raw = values.get(prev..end)?;
            if raw.is_empty() || raw.len() > MAX_NAME {
                return None;
            }
            let name = std::str::from_utf8(raw).ok()?;
            return name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                .then(|| name.to_ascii_lowercase());
        }
        prev = end;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A Q043 client packet: public header with connection ID and version, packet number,
    /// 12-byte hash, a stream frame, then the CHLO with `PAD`, `SNI` and `VER` tags.
    fn q043(sni: &[u8]) -> Vec<u8> {
        let mut p = vec![0x0d];
        p.extend_from_slice(&[0x11; 8]);
        p.extend_from_slice(b"Q043");
        p.push(1);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[0xa0, 0x01, 0x00, 0x04]);
        p.extend_from_slice(b"CHLO");
        p.extend_from_slice(&3u16.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        let pad = 10u32;
        let sni_end = pad + sni.len() as u32;
        for (tag, end) in [
            (b"PAD\0", pad),
            (b"SNI\0", sni_end),
            (b"VER\0", sni_end + 4),
        ] {
            p.extend_from_slice(tag);
            p.extend_from_slice(&end.to_le_bytes());
        }
        p.extend_from_slice(&[b'-'; 10]);
        p.extend_from_slice(sni);
        p.extend_from_slice(b"Q043");
        p
    }

    #[test]
    fn the_sni_tag_of_a_client_hello() {
        assert_eq!(
            sni(&q043(b"YT3.ggpht.com")).as_deref(),
            Some("yt3.ggpht.com")
        );
        assert_eq!(version(&q043(b"a.b")), Some(*b"Q043"));
    }

    #[test]
    fn other_packets_and_bad_names_give_nothing() {
        assert_eq!(sni(&q043(b"bad name")), None);
        assert_eq!(sni(&q043(b"")), None);
        let mut not_q = q043(b"a.example");
        not_q[9] = b'X';
        assert_eq!(sni(&not_q), None);
        let mut short = q043(b"a.example");
        short.truncate(60);
        assert_eq!(sni(&short), None);
        assert_eq!(sni(&[0x0c, 1, 2, 3]), None);
        assert_eq!(sni(&[]), None);
    }
}

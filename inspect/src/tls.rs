//! The TLS ClientHello: the first thing a client sends, in the clear, over TCP (in TLS
//! records) or QUIC (in CRYPTO frames). It names the server (SNI), the protocols the client
//! offers (ALPN) and, with Encrypted Client Hello, whether the real name is hidden.
//!
//! Parsing is tls-parser's; what is kept of it is bounded (names are cut to the longest legal
//! DNS name, at most [`MAX_ALPN`] protocols) so nothing a device sends grows memory.
//!
//! ECH: Chrome and Firefox send an `encrypted_client_hello` extension on ordinary connections
//! too ("GREASE" ECH, random bytes, so servers get used to it); there the outer SNI is the real
//! name and nothing is hidden. With real ECH the outer SNI is the ECH provider's public name
//! (`cloudflare-ech.com`) and the real name is encrypted. The extension looks the same both
//! ways, so the outer SNI tells them apart: a hello with the extension whose SNI is a known
//! public name is real ECH ([`Ech::Real`]); otherwise it is GREASE.
//!
//! JA4 (FoxIO's TLS client fingerprint, `t13d1516h2_8daaf6152771_e5627efa2ab1`) is computed
//! as its specification says: version, SNI or not, counts, ALPN ends, then truncated SHA-256
//! of the sorted cipher suites and of the sorted extensions with the signature algorithms.

use std::fmt::Write as _;

use schoolgate_wire::Reader;

use tls_parser::{
    TlsExtension, TlsExtensionType, TlsMessage, TlsMessageHandshake, TlsVersion,
    parse_tls_client_hello_extensions, parse_tls_message_handshake,
};

/// The longest server name kept (RFC 1035's limit on a name in text form).
pub const MAX_NAME: usize = 253;
/// The most ALPN protocols kept, and the longest of each.
pub const MAX_ALPN: usize = 8;
const MAX_ALPN_LEN: usize = 32;
/// The `encrypted_client_hello` extension (RFC 9460 / draft-ietf-tls-esni).
const ECH: u16 = 0xfe0d;
/// ECH's predecessor, Encrypted SNI (draft-ietf-tls-esni up to -02), as Firefox and
/// Cloudflare used it in 2018-2020.
const ESNI: u16 = 0xffce;
/// The largest ClientHello read: real ones are under 2 KiB (8 KiB with large post-quantum
/// key shares); anything claiming more is not worth holding.
pub const MAX_HELLO: usize = 16 * 1024;
/// The ECH providers' public names: an outer SNI under one of these with the ECH extension
/// is real ECH.
pub const ECH_PUBLIC_NAMES: &[&str] = &["cloudflare-ech.com"];

/// The transport a ClientHello came over, for JA4's first letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
}

/// Encrypted Client Hello, as far as the hello shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ech {
    /// No ECH extension.
    None,
    /// The extension with an ordinary SNI: nothing hidden.
    Grease,
    /// The extension with a provider's public name as SNI: the real name is hidden.
    Real,
}

/// What a ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The host name asked for, lower-cased, if it was a valid-looking name.
    pub sni: Option<String>,
    /// A server name that cannot be a host name (`<script>…`, a space, a control byte), as
    /// sent but bounded and with every byte outside printable ASCII written `\xNN`: for
    /// evidence only. It is never matched against the policy, which knows host names alone.
    pub odd_sni: Option<String>,
    /// Offered protocols, in order (`h2`, `http/1.1`, `dot`…), bounded.
    pub alpn: Vec<String>,
    pub ech: Ech,
    pub ja4: String,
}

/// What a run of bytes holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete ClientHello.
    Hello(ClientHello),
    /// The start of a TLS handshake; at least this many bytes in all are needed.
    Incomplete { need: usize },
    /// Not a TLS ClientHello (another protocol, or a broken one).
    NotHello,
}

/// Reads a ClientHello from the start of a TCP stream (TLS records). A hello that spans
/// several records (as post-quantum key shares make it) is joined first.
pub fn from_records(stream: &[u8]) -> Parsed {
    let mut handshake: Vec<u8> = Vec::new();
    let mut records = Reader::new(stream);
    loop {
        let at = records.position();
        // Record header: type 22 (handshake), version 3.x, length.
        match records.rest() {
            [0x16, 3, _, _, _, ..] => {
                let mut record = records.clone();
                let (_, Some(len)) = (record.skip(3), record.u16()) else {
                    return Parsed::NotHello;
                };
                let len = usize::from(len);
                let Some(body) = record.take(len) else {
                    return Parsed::Incomplete { need: at + 5 + len };
                };
                handshake.extend_from_slice(body);
                records = record;
            }
            [] | [0x16] | [0x16, 3] | [0x16, 3, _] | [0x16, 3, _, _] => {
                return Parsed::Incomplete { need: at + 5 };
            }
            _ => return Parsed::NotHello,
        }
        match handshake_need(&handshake) {
            Some(need) if need > MAX_HELLO + 4 => return Parsed::NotHello,
            Some(need) if need <= handshake.len() => {
                return from_handshake(&handshake, Transport::Tcp);
            }
            Some(_) => {}
            None => return Parsed::NotHello,
        }
    }
}

/// The whole handshake message's length, if `h` starts a ClientHello.
fn handshake_need(h: &[u8]) -> Option<usize> {
    match h {
        [1, a, b, c, ..] => {
            Some(4 + (usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c)))
        }
        // Not yet four bytes: at least the header is needed.
        [1, ..] | [] => Some(4),
        _ => None,
    }
}

/// Reads a ClientHello from handshake bytes (a QUIC CRYPTO stream, or TLS records' bodies).
pub fn from_handshake(handshake: &[u8], transport: Transport) -> Parsed {
    match handshake_need(handshake) {
        Some(need) if need > MAX_HELLO + 4 => return Parsed::NotHello,
        Some(need) if need > handshake.len() => return Parsed::Incomplete { need },
        Some(_) => {}
        None => return Parsed::NotHello,
    }
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) =
        parse_tls_message_handshake(handshake)
    else {
        return Parsed::NotHello;
    };
    let extensions = match hello.ext {
        Some(raw) => match parse_tls_client_hello_extensions(raw) {
            Ok((_, list)) => list,
            Err(_) => return Parsed::NotHello,
        },
        None => Vec::new(),
    };
    let ciphers: Vec<u16> = hello
        .ciphers
        .iter()
        .map(|c| c.0)
        .filter(|c| !grease(*c))
        .collect();

    let mut sni = None;
    let mut odd_sni = None;
    let mut has_sni = false;
    let mut alpn: Vec<String> = Vec::new();
    let mut first_alpn: Option<Vec<u8>> = None;
    let mut versions: Vec<u16> = Vec::new();
    let mut sig_algs: Vec<u16> = Vec::new();
    let mut ext_types: Vec<u16> = Vec::new();
    let mut ech_ext = false;
    let mut esni = false;
    for e in &extensions {
        let t = match e {
            TlsExtension::Grease(..) => continue,
            TlsExtension::Unknown(t, _) => t.0,
            other => TlsExtensionType::from(other).0,
        };
        if grease(t) {
            continue;
        }
        ext_types.push(t);
        match e {
            TlsExtension::SNI(names) => {
                has_sni = true;
                let raw = names.iter().find(|(kind, _)| kind.0 == 0).map(|(_, n)| *n);
                sni = raw.and_then(host_name);
                if sni.is_none() {
                    odd_sni = raw.filter(|r| !r.is_empty()).map(shown);
                }
            }
            TlsExtension::ALPN(list) => {
                first_alpn = list.first().map(|p| p.to_vec());
                alpn = list
                    .iter()
                    .take(MAX_ALPN)
                    .map(|p| {
                        String::from_utf8_lossy(p.get(..MAX_ALPN_LEN).unwrap_or(p)).into_owned()
                    })
                    .collect();
            }
            TlsExtension::SupportedVersions(v) => {
                versions = v.iter().map(|x| x.0).filter(|x| !grease(*x)).collect();
            }
            TlsExtension::SignatureAlgorithms(v) => {
                sig_algs = v.iter().copied().filter(|x| !grease(*x)).collect();
            }
            _ => {}
        }
        if t == ECH {
            ech_ext = true;
        }
        esni |= t == ESNI;
    }
    let version = versions.iter().copied().max().unwrap_or(hello.version.0);
    let ech = match (ech_ext, &sni) {
        // ESNI was never sent as GREASE: it always hides the name.
        _ if esni => Ech::Real,
        (false, _) => Ech::None,
        (true, Some(name)) if is_public_name(name) => Ech::Real,
        (true, _) => Ech::Grease,
    };
    let ja4 = ja4(
        transport,
        TlsVersion(version),
        has_sni,
        &ciphers,
        &ext_types,
        first_alpn.as_deref(),
        &sig_algs,
    );
    Parsed::Hello(ClientHello {
        sni,
        odd_sni,
        alpn,
        ech,
        ja4,
    })
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, … 0xfafa.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A server name as sent, if it can be a host name: ASCII letters, digits, `-`, `_`, `.`,
/// at most [`MAX_NAME`] long; lower-cased, trailing dot removed.
fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > MAX_NAME {
        return None;
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    Some(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// Bytes a client sent as a name, for a person to read: printable ASCII as is, anything else
/// as `\xNN`, at most [`MAX_NAME`] bytes of it (then `…`). Whoever shows it still escapes it
/// for where it goes (HTML, CSV); this only keeps it one bounded line.
fn shown(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for &b in raw.iter().take(MAX_NAME) {
        if b == b' ' || b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if raw.len() > MAX_NAME {
        out.push('…');
    }
    out
}

fn is_public_name(name: &str) -> bool {
    ECH_PUBLIC_NAMES
        .iter()
        .any(|p| name == *p || name.strip_suffix(p).is_some_and(|rest| rest.ends_with('.')))
}

/// JA4 from the hello's parts (GREASE already removed).
fn ja4(
    transport: Transport,
    version: TlsVersion,
    has_sni: bool,
    ciphers: &[u16],
    extensions: &[u16],
    first_alpn: Option<&[u8]>,
    sig_algs: &[u16],
) -> String {
    let proto = match transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
    };
    let ver = match version.0 {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        _ => "00",
    };
    let sni = if has_sni { 'd' } else { 'i' };
    let alpn = match first_alpn {
        None | Some([]) => "00".to_owned(),
        Some(p) => {
            let (first, last) = (
                p.first().copied().unwrap_or(0),
                p.last().copied().unwrap_or(0),
            );
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                format!("{}{}", char::from(first), char::from(last))
            } else {
                // The first hex digit of the first byte and the last of the last.
                let digit = |v: u8| char::from_digit(u32::from(v), 16).unwrap_or('0');
                format!("{}{}", digit(first >> 4), digit(last & 0x0f))
            }
        }
    };
    let mut sorted_ciphers = ciphers.to_vec();
    sorted_ciphers.sort_unstable();
    let mut sorted_ext: Vec<u16> = extensions
        .iter()
        .copied()
        .filter(|t| *t != 0x0000 && *t != 0x0010)
        .collect();
    sorted_ext.sort_unstable();
    let cipher_hash = truncated_hash(&hex_list(&sorted_ciphers), sorted_ciphers.is_empty());
    let mut ext_text = hex_list(&sorted_ext);
    if !sig_algs.is_empty() {
        ext_text.push('_');
        ext_text.push_str(&hex_list(sig_algs));
    }
    let ext_hash = truncated_hash(&ext_text, sorted_ext.is_empty());
    format!(
        "{proto}{ver}{sni}{:02}{:02}{alpn}_{cipher_hash}_{ext_hash}",
        ciphers.len().min(99),
        extensions.len().min(99),
    )
}

fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v:04x}");
    }
    out
}

/// The first 12 hex digits of SHA-256 of `text`, or twelve zeros when there was nothing.
fn truncated_hash(text: &str, empty: bool) -> String {
    if empty {
        return "000000000000".to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = String::with_capacity(12);
    for b in digest.as_ref().iter().take(6) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A ClientHello handshake message built by hand: `extensions` are (type, body) pairs.
    fn hello(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]); // random
        body.push(0); // no session id
        body.extend(u16::try_from(ciphers.len() * 2).unwrap().to_be_bytes());
        for c in ciphers {
            body.extend(c.to_be_bytes());
        }
        body.extend([1, 0]); // compression: null
        let mut ext = Vec::new();
        for (t, data) in extensions {
            ext.extend(t.to_be_bytes());
            ext.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
            ext.extend(data);
        }
        body.extend(u16::try_from(ext.len()).unwrap().to_be_bytes());
        body.extend(ext);
        let mut msg = vec![1];
        msg.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend(u16::try_from(name.len()).unwrap().to_be_bytes());
        entry.extend(name.as_bytes());
        let mut data = u16::try_from(entry.len()).unwrap().to_be_bytes().to_vec();
        data.extend(entry);
        (0x0000, data)
    }

    fn alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for p in protocols {
            list.push(u8::try_from(p.len()).unwrap());
            list.extend(*p);
        }
        let mut data = u16::try_from(list.len()).unwrap().to_be_bytes().to_vec();
        data.extend(list);
        (0x0010, data)
    }

    fn u16_list(t: u16, len_bytes: usize, values: &[u16]) -> (u16, Vec<u8>) {
        let n = values.len() * 2;
        let mut data = if len_bytes == 1 {
            vec![u8::try_from(n).unwrap()]
        } else {
            u16::try_from(n).unwrap().to_be_bytes().to_vec()
        };
        for v in values {
            data.extend(v.to_be_bytes());
        }
        (t, data)
    }

    /// Records of at most `size` bytes of handshake each.
    fn records(handshake: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in handshake.chunks(size) {
            out.extend([0x16, 3, 1]);
            out.extend(u16::try_from(chunk.len()).unwrap().to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    fn browser_like(name: &str, ech: bool) -> Vec<u8> {
        let mut ext = vec![
            (0x1a1a, vec![]), // GREASE
            sni(name),
            alpn(&[b"h2", b"http/1.1"]),
            u16_list(0x002b, 1, &[0x2a2a, 0x0304, 0x0303]),
            u16_list(0x000d, 2, &[0x0403, 0x0804, 0x0401]),
        ];
        if ech {
            ext.push((ECH, vec![0, 0, 1, 0, 1, 0x42, 0, 0, 0, 0]));
        }
        hello(&[0x0a0a, 0x1301, 0x1302, 0x1303], &ext)
    }

    fn parsed(p: Parsed) -> ClientHello {
        match p {
            Parsed::Hello(h) => h,
            other => panic!("not a hello: {other:?}"),
        }
    }

    #[test]
    fn name_protocols_and_ja4_of_a_browser_like_hello() {
        let h = parsed(from_records(&records(
            &browser_like("www.Instagram.com", false),
            4096,
        )));
        assert_eq!(h.sni.as_deref(), Some("www.instagram.com"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.ech, Ech::None);
        // GREASE left out of the counts and hashes; SNI and ALPN counted but not hashed.
        // The hashes were computed apart from this code (Python's hashlib).
        assert_eq!(h.ja4, "t13d0304h2_55b375c5d22e_4b7616f1fee2");
    }

    #[test]
    fn grease_ech_is_told_from_real_ech_by_the_outer_name() {
        let grease = parsed(from_handshake(
            &browser_like("www.bbc.co.uk", true),
            Transport::Tcp,
        ));
        assert_eq!(grease.ech, Ech::Grease);
        assert_eq!(grease.ja4, "t13d0305h2_55b375c5d22e_73bcfd689a74");
        let real = parsed(from_handshake(
            &browser_like("cloudflare-ech.com", true),
            Transport::Quic,
        ));
        assert_eq!(real.ech, Ech::Real);
        assert!(real.ja4.starts_with("q13d0305h2_"));
        // A name that only ends like the public name is not it.
        let lookalike = parsed(from_handshake(
            &browser_like("notcloudflare-ech.com", true),
            Transport::Tcp,
        ));
        assert_eq!(lookalike.ech, Ech::Grease);
    }

    #[test]
    fn a_hello_over_several_records_and_segments() {
        let hs = browser_like("dns.google", false);
        let stream = records(&hs, 50);
        assert!(stream.len() > 2 * 55, "{} bytes", stream.len());
        // Every prefix short of the whole asks for more; the whole is read.
        for cut in [0, 1, 4, 5, 54, 55, 56, stream.len() - 1] {
            match from_records(&stream[..cut]) {
                Parsed::Incomplete { need } => assert!(need > cut, "cut {cut}: need {need}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(
            parsed(from_records(&stream)).sni.as_deref(),
            Some("dns.google")
        );
    }

    #[test]
    fn no_sni_no_alpn_and_odd_alpn() {
        let h = parsed(from_handshake(
            &hello(&[0x1301], &[u16_list(0x002b, 1, &[0x0304])]),
            Transport::Tcp,
        ));
        assert_eq!(h.sni, None);
        // One cipher, one extension, no ALPN; the extension hash has no signature part.
        assert_eq!(
            h.ja4,
            "t13i010100_".to_owned() + &truncated_hash("1301", false) + "_b9a491fefe05"
        );
        let odd = parsed(from_handshake(
            &hello(&[0x1301], &[alpn(&[&[0xab, b'x', 0x0c]])]),
            Transport::Tcp,
        ));
        assert!(odd.ja4.contains("i0101ac_"), "{}", odd.ja4);
    }

    #[test]
    fn other_protocols_and_hostile_names() {
        assert_eq!(from_records(b"GET / HTTP/1.1\r\n"), Parsed::NotHello);
        assert_eq!(from_records(b"SSH-2.0-OpenSSH_9.2\r\n"), Parsed::NotHello);
        // A record claiming an enormous hello is not held on to.
        assert_eq!(
            from_records(&[0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
            Parsed::NotHello
        );
        let bad = parsed(from_handshake(
            &browser_like("evil<script>.com", false),
            Transport::Tcp,
        ));
        assert_eq!(bad.sni, None);
        assert_eq!(bad.odd_sni.as_deref(), Some("evil<script>.com"));
        let long = "a".repeat(300);
        let h = parsed(from_handshake(&browser_like(&long, false), Transport::Tcp));
        assert_eq!(h.sni, None);
        assert_eq!(h.odd_sni, Some(format!("{}…", "a".repeat(MAX_NAME))));
        let control = parsed(from_handshake(
            &browser_like("a\nb\u{7f}\u{e9}", false),
            Transport::Tcp,
        ));
        assert_eq!(control.odd_sni.as_deref(), Some("a\\x0ab\\x7f\\xc3\\xa9"));
        let fine = parsed(from_handshake(
            &browser_like("www.bbc.co.uk", false),
            Transport::Tcp,
        ));
        assert_eq!(fine.odd_sni, None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = from_records(&bytes);
            let _ = from_handshake(&bytes, Transport::Quic);
            let mut framed = vec![0x16, 3, 1];
            framed.extend(u16::try_from(bytes.len()).unwrap().to_be_bytes());
            framed.extend(&bytes);
            let _ = from_records(&framed);
        }
    }
}

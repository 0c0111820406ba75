//! The names in a server's certificate, which TLS up to 1.2 sends in the clear: what names
//! a connection whose ClientHello carried no SNI went to (circumvention tools such as
//! Psiphon leave SNI out on purpose). In TLS 1.3 the certificate is encrypted, and the
//! ServerHello says so ([`Names::Hidden`]).
//!
//! The handshake records are read from the start of the server's stream; tls-parser parses
//! the handshake messages and x509-parser the first certificate. What is kept is bounded:
//! at most [`MAX_NAMES`] names, each cut to [`MAX_NAME`] bytes.

use tls_parser::{
    TlsExtension, TlsMessageHandshake, parse_tls_message_handshake,
    parse_tls_server_hello_extensions,
};
use x509_parser::extensions::GeneralName;

use schoolgate_wire::Reader;

use crate::tls::MAX_NAME;

/// The most names kept from one certificate.
pub const MAX_NAMES: usize = 16;
/// Handshake bytes read before giving up (a chain of a few certificates fits easily).
const MAX_HANDSHAKE: usize = 16 * 1024;
const HANDSHAKE: u8 = 22;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const TLS13: u16 = 0x0304;

/// What the server's stream shows of its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// The certificate's subject common name, then its DNS subject alternative names,
    /// without repeats.
    Names(Vec<String>),
    /// Not all there yet.
    Incomplete,
    /// No certificate in the clear (TLS 1.3, or not TLS).
    Hidden,
}

/// Reads the certificate's names from the start of the server's side of a TCP stream.
pub fn from_server(stream: &[u8]) -> Names {
    // The handshake messages, from consecutive handshake records.
    let mut handshake = Vec::new();
    let mut records = Reader::new(stream);
    let mut complete = true;
    // Another record after the handshake records (a resumed session's ChangeCipherSpec):
    // the handshake in the clear is over, and no certificate came in it.
    let mut ended = false;
    // Record header: type, version (major, minor), length.
    while records.remaining() >= 5 {
        let mut record = records.clone();
        let (Some(kind), Some(major), Some(_minor)) = (record.u8(), record.u8(), record.u8())
        else {
            break;
        };
        if kind != HANDSHAKE || major != 3 {
            ended = true;
            break;
        }
        let Some(body) = record.u16_prefixed() else {
            complete = false;
            break;
        };
        handshake.extend_from_slice(body);
        if handshake.len() > MAX_HANDSHAKE {
            return Names::Hidden;
        }
        records = record;
    }
    if handshake.is_empty() {
        return if complete && stream.len() >= 5 {
            Names::Hidden
        } else {
            Names::Incomplete
        };
    }
    // Handshake messages: type, 24-bit length, body; each parsed whole, header included.
    let mut messages = Reader::new(&handshake);
    while let Some(mut header) = messages.clone().sub(4) {
        let (Some(kind), Some(len)) = (header.u8(), header.u24()) else {
            break;
        };
        let Some(message) = usize::try_from(len)
            .ok()
            .and_then(|len| messages.take(4 + len))
        else {
            return Names::Incomplete;
        };
        match (kind, parse_tls_message_handshake(message)) {
            (SERVER_HELLO, Ok((_, tls_parser::TlsMessage::Handshake(h)))) => {
                if let TlsMessageHandshake::ServerHello(hello) = h
                    && let Some(ext) = hello.ext
                    && let Ok((_, exts)) = parse_tls_server_hello_extensions(ext)
                    && exts.iter().any(|e| {
                        matches!(e, TlsExtension::SupportedVersions(v) if v.iter().any(|v| v.0 == TLS13))
                    })
                {
                    return Names::Hidden;
                }
            }
            (CERTIFICATE, Ok((_, tls_parser::TlsMessage::Handshake(h)))) => {
                let TlsMessageHandshake::Certificate(chain) = h else {
                    return Names::Hidden;
                };
                return chain
                    .cert_chain
                    .first()
                    .map_or(Names::Hidden, |c| names_of(c.data));
            }
            (SERVER_HELLO | CERTIFICATE, _) => return Names::Hidden,
            _ => {}
        }
    }
    if ended {
        Names::Hidden
    } else {
        Names::Incomplete
    }
}

/// The names in one DER certificate.
fn names_of(der: &[u8]) -> Names {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Names::Hidden;
    };
    let mut names: Vec<String> = Vec::new();
    let mut keep = |n: &str| {
        let n = n.trim().to_ascii_lowercase();
        let n = n
            .get(..n.len().min(MAX_NAME))
            .unwrap_or_default()
            .to_owned();
        if !n.is_empty() && names.len() < MAX_NAMES && !names.contains(&n) {
            names.push(n);
        }
    };
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            keep(s);
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            if let GeneralName::DNSName(s) = g {
                keep(s);
            }
        }
    }
    if names.is_empty() {
        Names::Hidden
    } else {
        Names::Names(names)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut m = vec![kind, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        m.extend_from_slice(body);
        m
    }

    fn server_hello(tls13: bool) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x2f, 0]);
        let ext: Vec<u8> = if tls13 {
            vec![0x00, 0x2b, 0, 2, 3, 4]
        } else {
            vec![0xff, 0x01, 0, 1, 0]
        };
        b.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        b.extend_from_slice(&ext);
        message(SERVER_HELLO, &b)
    }

    fn certificate(names: &[&str]) -> Vec<u8> {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let der = rcgen::generate_simple_self_signed(names)
            .unwrap()
            .cert
            .der()
            .to_vec();
        let mut entry = vec![0, (der.len() >> 8) as u8, der.len() as u8];
        entry.extend_from_slice(&der);
        let mut body = vec![0, (entry.len() >> 8) as u8, entry.len() as u8];
        body.extend_from_slice(&entry);
        message(CERTIFICATE, &body)
    }

    #[test]
    fn names_from_a_tls12_server_flight_split_anyhow() {
        let mut flight = server_hello(false);
        flight.extend_from_slice(&certificate(&[
            "sni.cdn.example",
            "tool.example",
            "*.tool.example",
        ]));
        // The handshake split over two records, and the stream arriving a piece at a time.
        let (a, b) = flight.split_at(100);
        let mut stream = record(HANDSHAKE, a);
        stream.extend_from_slice(&record(HANDSHAKE, b));
        for cut in [0, 3, 50, 120, stream.len() - 1] {
            assert_eq!(from_server(&stream[..cut]), Names::Incomplete, "{cut}");
        }
        let Names::Names(names) = from_server(&stream) else {
            panic!("{:?}", from_server(&stream));
        };
        assert!(names.contains(&"sni.cdn.example".to_owned()), "{names:?}");
        assert!(names.contains(&"tool.example".to_owned()));
        assert!(names.contains(&"*.tool.example".to_owned()));
    }

    #[test]
    fn tls13_and_other_streams_hide_it() {
        assert_eq!(
            from_server(&record(HANDSHAKE, &server_hello(true))),
            Names::Hidden
        );
        assert_eq!(from_server(b"HTTP/1.1 200 OK\r\n\r\n"), Names::Hidden);
        let mut junk = record(
            HANDSHAKE,
            &message(CERTIFICATE, &[0, 0, 9, 0, 0, 6, 1, 2, 3, 4, 5, 6]),
        );
        assert_eq!(from_server(&junk), Names::Hidden);
        junk.truncate(9);
        assert_eq!(from_server(&junk), Names::Incomplete);
    }

    #[test]
    fn a_resumed_tls12_session_shows_no_certificate() {
        // The ServerHello, then at once ChangeCipherSpec and the encrypted Finished: the
        // session was resumed, and no certificate is coming.
        let mut flight = record(HANDSHAKE, &server_hello(false));
        assert_eq!(from_server(&flight), Names::Incomplete);
        flight.extend(record(20, &[1]));
        assert_eq!(from_server(&flight), Names::Hidden);
    }
}

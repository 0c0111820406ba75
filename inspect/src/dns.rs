//! DNS queries seen on the wire: the question name of a query (UDP, or TCP after its length),
//! and the signs of a DNS tunnel: many different long, random-looking labels under one zone.
//!
//! The question is read in place by the DNS reader inspection shares with the resolver
//! (`schoolgate_wire::dns`) rather than by a full DNS parser: only the first name is needed,
//! it is read for every DNS packet that crosses the gateway, and a full parse of every record
//! would cost more than the rest of inspection.

use schoolgate_wire::Reader;
use schoolgate_wire::dns::{Header, Name};

use crate::signature::entropy;

/// A DNS query's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Lower-cased, without the final dot. Bytes outside `[a-z0-9-_]` are written `?`.
    pub name: String,
    pub qtype: u16,
}

/// The question of a DNS query message (QR bit clear, one question), if `m` is one.
pub fn query(m: &[u8]) -> Option<Query> {
    let mut r = Reader::new(m);
    let header = Header::read(&mut r)?;
    if header.is_response() || header.questions != 1 || header.opcode() != 0 {
        return None;
    }
    let question = Name::read(&mut r)?;
    let mut name = String::with_capacity(question.text_len());
    for label in question.labels() {
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| match b.to_ascii_lowercase() {
            c @ (b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_') => char::from(c),
            _ => '?',
        }));
    }
    // The class is not needed: a query cut after its type still says what it asks.
    let qtype = r.u16()?;
    Some(Query { name, qtype })
}

/// The zone a tunnel would be run under: the last two labels (`pirate.sea`,
/// `example.co.uk` gives `co.uk`, which only makes tunnels under it count together).
pub fn zone(name: &str) -> &str {
    let mut dots = name.rmatch_indices('.');
    match (dots.next(), dots.next()) {
        (Some(_), Some((i, _))) => name.get(i + 1..).unwrap_or(name),
        _ => name,
    }
}

/// Whether the part of `name` before its zone looks like encoded data: at least 24
/// characters and close to random (base32/base64-like), as tunnels write their payload.
/// Ordinary host names are short or made of words.
pub fn data_like(name: &str) -> bool {
    let zone_len = zone(name).len();
    let Some(sub) = name.get(..name.len().saturating_sub(zone_len + 1)) else {
        return false;
    };
    let bytes: Vec<u8> = sub.bytes().filter(|b| *b != b'.').collect();
    bytes.len() >= 24 && entropy(&bytes) >= 3.8
}

/// Record types DNS tunnels carry data in and ordinary browsing never asks for: NULL (iodine's
/// default), TXT (dnscat2, many others) and the private-use range.
pub fn tunnel_type(qtype: u16) -> bool {
    matches!(qtype, 10 | 16 | 65280..=65534)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn message(name: &str, qtype: u16, flags: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn question_of_a_query() {
        let q = query(&message("WWW.Instagram.com", 1, 0x0100)).unwrap();
        assert_eq!(
            q,
            Query {
                name: "www.instagram.com".into(),
                qtype: 1
            }
        );
        assert_eq!(
            query(&message("a<b>.example", 16, 0)).unwrap().name,
            "a?b?.example"
        );
        // Responses, other opcodes, truncated and compressed questions are not read.
        assert_eq!(query(&message("example.org", 1, 0x8180)), None);
        assert_eq!(query(&message("example.org", 1, 0x2800)), None);
        let m = message("example.org", 1, 0x0100);
        assert_eq!(query(&m[..m.len() - 3]), None);
        let mut pointer = m[..12].to_vec();
        pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(query(&pointer), None);
    }

    #[test]
    fn zones_and_data_like_names() {
        assert_eq!(zone("vaaaakardli.pirate.sea"), "pirate.sea");
        assert_eq!(zone("localhost"), "localhost");
        assert_eq!(zone("a.b"), "a.b");
        assert!(data_like("0iabbq4ddsfj7aq2t3pnyh5yq1e0r2sxn3e.pirate.sea"));
        assert!(data_like(
            "paaba3qaac7dngxuz3mkbfoobe4qnexgea3kdafa.t1.example.net"
        ));
        assert!(!data_like("www.instagram.com"));
        assert!(!data_like("scontent-mxp1-1.cdninstagram.com"));
        assert!(!data_like("googleads.g.doubleclick.net"));
        assert!(!data_like("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com"));
    }
}

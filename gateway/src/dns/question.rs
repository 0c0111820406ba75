//! The common request, read in place: one question, plain labels, perhaps an EDNS OPT record.
//!
//! Nearly every request a school's devices send has this shape. Reading it without building a
//! full message lets the resolver find a cached answer with no allocation; anything else
//! (compression, escapes, other sections, odd flags, EDNS versions it does not know) is left to
//! the full decoder in [`plan`](super::plan), which answers it the same way, only slower. So
//! this reader may say "not mine" freely, but what it accepts it must read exactly as the
//! full decoder would.
//!
//! The bytes are walked by the DNS reader the resolver shares with inspection
//! (`schoolgate_wire::dns`); the rules above are this reader's own. Bytes come from pupils'
//! devices: nothing here indexes without a check or panics.

use schoolgate_engine::domain::MAX_NAME_LEN;
use schoolgate_wire::Reader;
use schoolgate_wire::dns::{self, Header};

#[cfg(test)]
const HEADER: usize = dns::HEADER_LEN;
const OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// A request's question in the form the policy reads: lower-case presentation form, no
/// trailing dot.
#[derive(Debug, Clone)]
pub struct Question {
    name: [u8; MAX_NAME_LEN],
    len: u8,
    pub qtype: u16,
    /// The request carries an OPT record (and so does the answer).
    pub edns: bool,
}

impl Question {
    pub fn name(&self) -> &str {
        let bytes = self.name.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII letters, digits, '-', '_' and '.' are ever written.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Reads `bytes` if it is a standard query of the common shape; `None` otherwise.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r)?;
        // QR = 0 (a query), OPCODE = 0 (QUERY), TC = 0; the other bits are echoed or ignored.
        if header.flags & 0xfa00 != 0 {
            return None;
        }
        if header.questions != 1 || header.answers != 0 || header.authorities != 0 {
            return None;
        }
        if header.additionals > 1 {
            return None;
        }
        let question = dns::Question::read(&mut r)?;
        if question.qclass != CLASS_IN || question.name.is_root() {
            return None;
        }
        let mut q = Self {
            name: [0; MAX_NAME_LEN],
            len: 0,
            qtype: question.qtype,
            edns: false,
        };
        let mut len = 0usize;
        for text in question.name.labels() {
            let dot = usize::from(len > 0);
            if dot == 1 {
                *q.name.get_mut(len)? = b'.';
            }
            // The full decoder writes a leading '-' escaped.
            if text.first() == Some(&b'-') {
                return None;
            }
            let out = q.name.get_mut(len + dot..len + dot + text.len())?;
            for (o, &c) in out.iter_mut().zip(text) {
                // Anything the presentation form would escape is the full decoder's.
                if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                    return None;
                }
                *o = c.to_ascii_lowercase();
            }
            len += dot + text.len();
        }
        q.len = u8::try_from(len).ok()?;
        if header.additionals == 1 {
            read_opt(&mut r)?;
            q.edns = true;
        }
        r.is_empty().then_some(q)
    }
}

/// Reads an OPT record (root owner, EDNS version 0, options well formed).
fn read_opt(r: &mut Reader<'_>) -> Option<()> {
    let owner = r.u8()?;
    let rtype = r.u16()?;
    // The class (the UDP payload size) and the extended RCODE.
    r.skip(3)?;
    let version = r.u8()?;
    // The flags (DO).
    r.skip(2)?;
    if owner != 0 || rtype != OPT || version != 0 {
        return None;
    }
    let mut options = Reader::new(r.u16_prefixed()?);
    while !options.is_empty() {
        let code = options.u16()?;
        // The options the full decoder reads into structures (NSID, DAU, client subnet) may
        // be refused there; leave them to it.
        if matches!(code, 3 | 5 | 8) {
            return None;
        }
        options.u16_prefixed()?;
    }
    Some(())
}

/// How the in-place reader and hickory's full decoder read one request differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// Read in place, refused in full.
    RefusedInFull,
    /// Read in place as one question; the full decoder found this many.
    Questions(usize),
    Name {
        here: String,
        full: String,
    },
    Type {
        here: u16,
        full: u16,
    },
    Edns {
        here: bool,
    },
    /// Read in place; the full decoder's class is not IN.
    Class,
}

/// Where the in-place reader of the common request shape reads `data` other than the full
/// decoder does (`None`: it refuses `data`, or both agree). A disagreement would let the
/// cached path answer a different question; the `dns_request` fuzz target looks for one.
pub fn disagreement(data: &[u8]) -> Option<Disagreement> {
    let q = Question::parse(data)?;
    let Ok(full) = hickory_proto::op::Message::from_vec(data) else {
        return Some(Disagreement::RefusedInFull);
    };
    let [query] = full.queries.as_slice() else {
        return Some(Disagreement::Questions(full.queries.len()));
    };
    let mut name = query.name().to_ascii().to_ascii_lowercase();
    name.pop();
    if q.name() != name {
        return Some(Disagreement::Name {
            here: q.name().to_owned(),
            full: name,
        });
    }
    let full_type = u16::from(query.query_type());
    if q.qtype != full_type {
        return Some(Disagreement::Type {
            here: q.qtype,
            full: full_type,
        });
    }
    if q.edns != full.edns.is_some() {
        return Some(Disagreement::Edns { here: q.edns });
    }
    if query.query_class() != hickory_proto::rr::DNSClass::IN {
        return Some(Disagreement::Class);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{DNSClass, Name, RecordType};
    use proptest::prelude::*;

    fn request(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn reads_the_common_request() {
        let q = Question::parse(&request("WWW.Example.co.uk.", RecordType::AAAA, true)).unwrap();
        assert_eq!(q.name(), "www.example.co.uk");
        assert_eq!(q.qtype, u16::from(RecordType::AAAA));
        assert!(q.edns);
        let q = Question::parse(&request("_dmarc.a-b.example.", RecordType::TXT, false)).unwrap();
        assert_eq!(q.name(), "_dmarc.a-b.example");
        assert!(!q.edns);
    }

    #[test]
    fn leaves_every_other_shape_to_the_full_decoder() {
        let plain = request("a.example.", RecordType::A, false);
        // A response, another opcode, a truncated query.
        for (byte, bits) in [(2, 0x80u8), (2, 0x10), (2, 0x02)] {
            let mut r = plain.clone();
            r[byte] |= bits;
            assert!(Question::parse(&r).is_none(), "flags {bits:#x}");
        }
        // Two questions; an answer record; trailing bytes; cut short.
        let mut r = plain.clone();
        r[5] = 2;
        assert!(Question::parse(&r).is_none());
        let mut r = plain.clone();
        r[7] = 1;
        assert!(Question::parse(&r).is_none());
        let mut r = plain.clone();
        r.push(0);
        assert!(Question::parse(&r).is_none());
        assert!(Question::parse(&plain[..plain.len() - 1]).is_none());
        // Escaped characters and the root name.
        for label in [&b"a.b"[..], b"sp ace", b"caf\xc3\xa9", b"a*", b"-a"] {
            let mut r = plain[..HEADER].to_vec();
            r.push(label.len() as u8);
            r.extend_from_slice(label);
            r.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
            assert!(Message::from_vec(&r).is_ok());
            assert!(Question::parse(&r).is_none(), "{label:?}");
        }
        assert!(Question::parse(&request(".", RecordType::NS, false)).is_none());
        // Class CH.
        let mut m = Message::query();
        let mut query = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
        query.set_query_class(DNSClass::CH);
        m.add_query(query);
        assert!(Question::parse(&m.to_vec().unwrap()).is_none());
        // A compression pointer in the question.
        let mut r = plain[..HEADER].to_vec();
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(Question::parse(&r).is_none());
        // EDNS version 1, and an option running past the record.
        let mut r = request("a.example.", RecordType::A, true);
        let opt = r.len() - 11;
        r[opt + 6] = 1;
        assert!(Question::parse(&r).is_none());
        let mut r = request("a.example.", RecordType::A, true);
        r.truncate(r.len() - 2);
        r.extend_from_slice(&[0, 4, 0, 10, 0, 9, 1, 2]);
        assert!(Question::parse(&r).is_none());
    }

    #[test]
    fn accepts_edns_options_that_fit() {
        let mut r = request("a.example.", RecordType::A, true);
        r.truncate(r.len() - 2);
        // A cookie option: code 10, 8 bytes.
        r.extend_from_slice(&[0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let q = Question::parse(&r).unwrap();
        assert!(q.edns);
        assert!(Message::from_vec(&r).is_ok());
    }

    proptest! {
        /// What this reader accepts, the full decoder reads the same way (the `dns_request`
        /// fuzz target's check): valid requests with a few bytes changed, and random bytes.
        #[test]
        fn agrees_with_the_full_decoder(
            which in 0usize..4,
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut r = match which {
                0 => request("ab.example.", RecordType::A, true),
                1 => request("Www.Example.co.uk.", RecordType::HTTPS, false),
                2 => {
                    let mut r = request("x.example.", RecordType::AAAA, true);
                    r.truncate(r.len() - 2);
                    r.extend_from_slice(&[0, 8, 0, 8, 0, 4, 0, 1, 24, 0]);
                    r
                }
                _ => noise.clone(),
            };
            for (at, byte) in changes {
                if !r.is_empty() {
                    let i = at % r.len();
                    r[i] = byte;
                }
            }
            prop_assert_eq!(disagreement(&r), None);
        }
    }
}

//! Answers kept in wire form: a cached answer is sent again by copying its bytes and patching
//! the request's ID, flags and question in, and the TTLs down by the answer's age. This skips
//! decoding and encoding records on the resolver's busiest path (a name asked again).
//!
//! [`Template::new`] reads a response this resolver encoded itself; [`Template::render`]
//! takes request bytes from a device and checks their question has exactly the shape of the
//! template's before copying it in. Neither panics on any input.

/// A response with the positions of its TTLs.
use schoolgate_wire::Reader;
use schoolgate_wire::dns::{self, Header};

#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    /// Where the question section ends (it starts at 12).
    question_end: usize,
    /// Offsets of every record's 32-bit TTL, except OPT's (whose "TTL" is flags).
    ttls: Vec<usize>,
}

const HEADER: usize = dns::HEADER_LEN;
const OPT: u16 = 41;

/// The end of a one-question question section starting at the header's end, if the message
/// has exactly one question.
fn question_end(b: &[u8]) -> Option<usize> {
    let mut r = Reader::new(b);
    if Header::read(&mut r)?.questions != 1 {
        return None;
    }
    dns::skip_name(&mut r)?;
    r.skip(4)?;
    Some(r.position())
}

impl Template {
    /// Reads `bytes` (a response with one question) and finds its TTLs.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        let question_end = question_end(&bytes)?;
        let header = Header::read(&mut Reader::new(&bytes))?;
        let n_records = usize::from(header.answers)
            + usize::from(header.authorities)
            + usize::from(header.additionals);
        let mut ttls = Vec::with_capacity(n_records);
        let mut r = Reader::at(&bytes, question_end)?;
        for _ in 0..n_records {
            dns::skip_name(&mut r)?;
            let at = r.position();
            let rtype = r.u16()?;
            // Class and TTL, then the data.
            r.skip(6)?;
            r.u16_prefixed()?;
            if rtype != OPT {
                ttls.push(at + 4);
            }
        }
        Some(Self {
            bytes,
            question_end,
            ttls,
        })
    }

    /// This answer for `request`, `age` seconds after it was made: the request's ID, its RD
    /// flag and its question (with the client's letter case) copied in, and every TTL lowered
    /// by `age` (never below 1). `None` if the request's question is not this template's
    /// shape.
    pub fn render(&self, request: &[u8], age: u32) -> Option<Vec<u8>> {
        let end = question_end(request)?;
        if end != self.question_end {
            return None;
        }
        let question = request.get(HEADER..end)?;
        let mut out = self.bytes.clone();
        out.get_mut(HEADER..end)?.copy_from_slice(question);
        out.get_mut(..2)?.copy_from_slice(request.get(..2)?);
        let rd = request.get(2)? & 0x01;
        let flags = out.get_mut(2)?;
        *flags = (*flags & !0x01) | rd;
        for &at in &self.ttls {
            let ttl = out.get_mut(at..at + 4)?;
            let old = Reader::new(ttl).u32()?;
            ttl.copy_from_slice(&old.saturating_sub(age).max(1).to_be_bytes());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, OpCode, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn response(name: &str, ttls: &[u32], edns: bool) -> Vec<u8> {
        let n = Name::from_ascii(name).unwrap();
        let mut m = Message::response(7, OpCode::Query);
        m.add_query(Query::query(n.clone(), RecordType::A));
        for (i, ttl) in ttls.iter().enumerate() {
            m.add_answer(Record::from_rdata(
                n.clone(),
                *ttl,
                RData::A(std::net::Ipv4Addr::new(10, 0, 0, i as u8).into()),
            ));
        }
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn request(name: &str, id: u16, rd: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = rd;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[test]
    fn renders_with_the_requests_id_case_and_aged_ttls() {
        let t = Template::new(response("www.bbc.co.uk.", &[300, 60], true)).unwrap();
        let out = t
            .render(&request("WWW.bbc.CO.uk.", 0xbeef, true), 50)
            .unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name().to_ascii(), "WWW.bbc.CO.uk.");
        let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, vec![250, 10]);
        assert!(m.edns.is_some(), "OPT kept, and its flags untouched");
        let out = t.render(&request("www.bbc.co.uk.", 1, false), 100).unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.answers[1].ttl, 1);
    }

    #[test]
    fn refuses_a_question_of_another_shape_and_garbage() {
        let t = Template::new(response("www.bbc.co.uk.", &[300], false)).unwrap();
        assert!(t.render(&request("bbc.co.uk.", 1, true), 0).is_none());
        assert!(t.render(&[0u8; 5], 0).is_none());
        assert!(Template::new(vec![0, 1, 2]).is_none());
        let mut cut = response("a.example.", &[300], false);
        cut.truncate(cut.len() - 2);
        assert!(Template::new(cut).is_none());
        // A looping name in a request is not followed: pointers end a name.
        let mut looped = request("a.", 1, true);
        looped.truncate(HEADER);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(t.render(&looped, 0).is_none());
    }
}

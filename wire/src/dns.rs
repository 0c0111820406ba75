//! The DNS message's header and question (RFC 1035 §4.1.1–4.1.2), read in place: the one
//! reader the resolver's fast path and inspection share. Each keeps its own rules on top
//! (the resolver takes only plain names of the common request shape and leaves the rest to
//! the full decoder; inspection reads any query's name for what it is asking), but the
//! bytes are walked here, one way.
//!
//! Compression pointers and the reserved label kinds are refused: a question's name is the
//! first in its message and has nothing to point back to.

use crate::Reader;

/// The header's length.
pub const HEADER_LEN: usize = 12;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// The longest name in wire form, lengths and the root label included (RFC 1035 §2.3.4):
/// 253 characters in presentation form.
pub const MAX_WIRE_NAME: usize = 255;

/// QR: the message is a response.
const QR: u16 = 0x8000;
/// TC: the message was truncated.
const TC: u16 = 0x0200;

/// A message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

impl Header {
    #[inline]
    pub fn read(r: &mut Reader<'_>) -> Option<Self> {
        // One bounds check for the twelve bytes.
        let [i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, d0, d1] = r.array::<HEADER_LEN>()?;
        let be = |hi, lo| u16::from_be_bytes([hi, lo]);
        Some(Self {
            id: be(i0, i1),
            flags: be(f0, f1),
            questions: be(q0, q1),
            answers: be(a0, a1),
            authorities: be(n0, n1),
            additionals: be(d0, d1),
        })
    }

    #[inline]
    pub fn is_response(&self) -> bool {
        self.flags & QR != 0
    }

    /// OPCODE (0 is a standard query).
    #[inline]
    pub fn opcode(&self) -> u8 {
        // Four bits, so the cast keeps them all.
        ((self.flags >> 11) & 0x0f) as u8
    }

    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.flags & TC != 0
    }
}

/// A name in wire form: labels each preceded by its length, ending with the root label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    wire: &'a [u8],
}

impl<'a> Name<'a> {
    /// Reads an uncompressed name of at most [`MAX_WIRE_NAME`] bytes.
    #[inline]
    pub fn read(r: &mut Reader<'a>) -> Option<Self> {
        let rest = r.rest();
        let mut walk = Reader::new(rest);
        loop {
            let len = usize::from(walk.u8()?);
            if len == 0 {
                break;
            }
            // 64..=255: compression pointers and the reserved kinds.
            if len > MAX_LABEL {
                return None;
            }
            walk.skip(len)?;
            if walk.position() >= MAX_WIRE_NAME {
                return None;
            }
        }
        let wire = r.take(walk.position())?;
        Some(Self { wire })
    }

    /// The labels, in order, without their lengths (none for the root).
    #[inline]
    pub fn labels(&self) -> Labels<'a> {
        Labels(Reader::new(self.wire))
    }

    #[inline]
    pub fn is_root(&self) -> bool {
        self.wire.len() <= 1
    }

    /// The length of the name in presentation form, without the final dot.
    #[inline]
    pub fn text_len(&self) -> usize {
        self.wire.len().saturating_sub(2)
    }
}

/// Passes over a name anywhere in a message: labels ending in the root label or in a
/// compression pointer, which is not followed (answers point back at their question).
#[inline]
pub fn skip_name(r: &mut Reader<'_>) -> Option<()> {
    loop {
        let len = r.u8()?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(()),
            0x00 => r.skip(usize::from(len))?,
            0xc0 => return r.skip(1),
            _ => return None,
        }
    }
}

/// The labels of a [`Name`].
#[derive(Debug, Clone)]
pub struct Labels<'a>(Reader<'a>);

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.0.u8()?);
        if len == 0 {
            return None;
        }
        self.0.take(len)
    }
}

/// One question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: u16,
    pub qclass: u16,
}

impl<'a> Question<'a> {
    #[inline]
    pub fn read(r: &mut Reader<'a>) -> Option<Self> {
        Some(Self {
            name: Name::read(r)?,
            qtype: r.u16()?,
            qclass: r.u16()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name_wire(name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m
    }

    #[test]
    fn a_query_read_in_place() {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend(name_wire("www.Example.org"));
        m.extend_from_slice(&[0, 28, 0, 1, 0xaa]);
        let mut r = Reader::new(&m);
        let h = Header::read(&mut r).unwrap();
        assert_eq!((h.id, h.questions, h.additionals), (0x1234, 1, 1));
        assert!(!h.is_response() && h.opcode() == 0 && !h.is_truncated());
        let q = Question::read(&mut r).unwrap();
        let labels: Vec<&[u8]> = q.name.labels().collect();
        assert_eq!(labels, [&b"www"[..], b"Example", b"org"]);
        assert_eq!(q.name.text_len(), "www.Example.org".len());
        assert_eq!((q.qtype, q.qclass), (28, 1));
        assert_eq!(r.rest(), [0xaa], "left after the question");
    }

    #[test]
    fn pointers_long_names_and_short_messages_are_refused() {
        fn read(bytes: &[u8]) -> Option<Name<'_>> {
            Name::read(&mut Reader::new(bytes))
        }
        assert!(read(&[0xc0, 0x0c]).is_none(), "a compression pointer");
        assert!(read(&[0x40]).is_none(), "a reserved label kind");
        assert!(read(&[3, b'w', b'w']).is_none(), "cut short");
        assert!(read(&[3, b'w', b'w', b'w']).is_none(), "no root label");
        assert!(read(&[0]).unwrap().is_root());
        // 253 characters fit; 254 do not.
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest.len(), 253);
        let name = name_wire(&longest);
        assert_eq!(read(&name).unwrap().text_len(), 253);
        let too_long = name_wire(&format!("{longest}e"));
        assert!(read(&too_long).is_none());
        assert!(Header::read(&mut Reader::new(&[0; 11])).is_none());
    }
}

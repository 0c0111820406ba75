//! DNS over TCP's framing (RFC 1035 §4.2.2, RFC 7766 §8): every message on the stream is
//! preceded by its length in two bytes, and a client may send several before reading any
//! answer. Pure: the server's reader pushes what arrives and takes whole messages out.

use schoolgate_wire::Reader;

/// The bytes a client has sent and the server has not yet taken as messages.
#[derive(Debug, Default)]
pub struct Reassembly {
    buf: Vec<u8>,
    /// How much of `buf` earlier messages used (dropped from the front before the next push).
    taken: usize,
}

/// What the stream holds next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole message.
    Message(&'a [u8]),
    /// Not a whole message yet: at least this many more bytes are needed.
    Need(usize),
    /// A message of length zero: no DNS message is that short, so the stream is not DNS and
    /// the connection is closed.
    Empty,
}

impl Reassembly {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.taken > 0 {
            self.buf.drain(..self.taken);
            self.taken = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next message, if the stream holds all of it.
    pub fn take(&mut self) -> Next<'_> {
        let Some(mut r) = Reader::at(&self.buf, self.taken) else {
            return Next::Need(2);
        };
        let Some(len) = r.u16() else {
            return Next::Need(2 - r.remaining());
        };
        let len = usize::from(len);
        if len == 0 {
            return Next::Empty;
        }
        match r.take(len) {
            Some(message) => {
                self.taken += 2 + len;
                Next::Message(message)
            }
            None => Next::Need(len - r.remaining()),
        }
    }

    /// Bytes held that are not yet part of a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.taken
    }
}

/// `message` with its length in front, ready to write; `None` when it is too long for the
/// two-byte length (the server then closes the connection rather than send a cut answer).
pub fn frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_messages_come_out_whole_however_the_stream_is_cut() {
        let messages: [&[u8]; 3] = [b"first", b"a second one", &[7; 300]];
        let stream: Vec<u8> = messages.iter().flat_map(|m| frame(m).unwrap()).collect();
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut r = Reassembly::default();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                r.push(piece);
                while let Next::Message(m) = r.take() {
                    out.push(m.to_vec());
                }
            }
            assert_eq!(out, messages.map(<[u8]>::to_vec), "chunks of {chunk}");
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn a_part_message_says_what_it_needs_and_an_empty_one_ends_the_stream() {
        let mut r = Reassembly::default();
        assert_eq!(r.take(), Next::Need(2));
        r.push(&[0]);
        assert_eq!(r.take(), Next::Need(1));
        r.push(&[5, b'a', b'b']);
        assert_eq!(r.take(), Next::Need(3));
        r.push(b"cde\0\0");
        assert_eq!(r.take(), Next::Message(b"abcde".as_slice()));
        assert_eq!(r.take(), Next::Empty);
        assert_eq!(frame(&vec![0; 65_536]), None);
        assert_eq!(frame(&vec![0; 65_535]).map(|f| f.len()), Some(65_537));
    }
}

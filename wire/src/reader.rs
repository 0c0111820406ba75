//! [`Reader`]: a cursor over a byte slice that reads big-endian integers and sub-slices,
//! each read either whole or not at all (a short read returns `None` and leaves the cursor
//! where it was), so a parser says what it expects and never indexes by hand.

/// A cursor over `bytes`.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// A reader of `bytes` from `offset` on; `None` past the end.
    #[inline]
    pub fn at(bytes: &'a [u8], offset: usize) -> Option<Self> {
        (offset <= bytes.len()).then_some(Self { bytes, at: offset })
    }

    /// How far the reader has read, from the start of its bytes.
    #[inline]
    pub fn position(&self) -> usize {
        self.at
    }

    /// What is left to read.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// The next `N` bytes, as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let out = <[u8; N]>::try_from(self.bytes.get(self.at..end)?).ok()?;
        self.at = end;
        Some(out)
    }

    /// Passes over the next `n` bytes.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// The next `n` bytes as a reader of their own.
    #[inline]
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }

    /// The next byte, not read.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    #[inline]
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    pub fn u24(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    #[inline]
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    #[inline]
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// A little-endian `u16` (Google QUIC's tags, WireGuard's fields).
    #[inline]
    pub fn u16_le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    #[inline]
    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64` (the journal's records).
    #[inline]
    pub fn u64_le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Bytes preceded by their length in one byte.
    #[inline]
    pub fn u8_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.peek()?);
        self.take(1 + n)?.get(1..)
    }

    /// Bytes preceded by their length in two bytes, big-endian.
    #[inline]
    pub fn u16_prefixed(&mut self) -> Option<&'a [u8]> {
        let [hi, lo] = self.clone().array()?;
        let n = usize::from(u16::from_be_bytes([hi, lo]));
        self.take(2 + n)?.get(2..)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_in_order_and_whole_or_not_at_all() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 3, 0xff, 0xfe, 2, b'h', b'i', 0, 9]);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u16(), Some(2));
        assert_eq!(r.u24(), Some(3));
        assert_eq!(r.u16_le(), Some(0xfeff));
        assert_eq!(r.u8_prefixed(), Some(&b"hi"[..]));
        assert_eq!(r.position(), 11);
        assert_eq!(r.u32(), None, "two bytes left");
        assert_eq!(r.position(), 11, "a short read moves nothing");
        assert_eq!(r.u16_prefixed(), None, "9 bytes promised, none there");
        assert_eq!(r.position(), 11);
        assert_eq!(r.rest(), [0, 9]);
        assert_eq!(r.u16(), Some(9));
        assert!(r.is_empty());
        assert_eq!(Reader::at(&[1, 2], 2).map(|r| r.remaining()), Some(0));
        assert!(Reader::at(&[1, 2], 3).is_none());
    }

    proptest! {
        /// Whatever is asked of whatever bytes, the reader never panics and never moves past
        /// the end.
        #[test]
        fn never_reads_past_the_end(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                    ops in proptest::collection::vec(0u8..9, 0..40)) {
            let mut r = Reader::new(&bytes);
            for op in ops {
                let before = r.position();
                let moved = match op {
                    0 => r.u8().is_some(),
                    1 => r.u16().is_some(),
                    2 => r.u24().is_some(),
                    3 => r.u32().is_some(),
                    4 => r.u64().is_some(),
                    5 => r.u8_prefixed().is_some(),
                    6 => r.u16_prefixed().is_some(),
                    7 => r.take(usize::MAX).is_some(),
                    _ => r.skip(3).is_some(),
                };
                prop_assert!(r.position() <= bytes.len());
                if !moved {
                    prop_assert_eq!(r.position(), before);
                }
            }
        }
    }
}

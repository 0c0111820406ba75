//! The journal's record framing, pure: bytes in, records and damage out.
//!
//! A record is `magic (2) · length (4, LE) · CRC-32 (4, LE) · sequence (8, LE) · payload`.
//! The CRC covers the sequence number and the payload, so a record whose header survived but
//! whose body was torn by a crash, or whose bytes rotted on disk, is told apart from a good
//! one. After damage, [`scan`] looks for the next place a whole good record starts (the magic,
//! a sane length and a matching CRC), so one bad record does not cost the ones behind it.

use schoolgate_wire::Reader;

/// Marks the start of every record ("SG").
pub const MAGIC: [u8; 2] = *b"SG";
/// Bytes before the payload.
pub const HEADER: usize = 2 + 4 + 4 + 8;
/// The largest payload a record may carry; anything claiming more is damage.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// `payload` framed as record `seq`, appended to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len().min(MAX_PAYLOAD)).unwrap_or(u32::MAX);
    let body = payload.get(..len as usize).unwrap_or(payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(seq, body).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// One good record found by [`scan`]: its sequence number and where its payload lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    /// Offset of the record's first byte.
    pub at: usize,
    pub payload: (usize, usize),
}

/// Bytes that were not a good record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first bad byte.
    pub at: usize,
    /// How many bytes were skipped before the next good record (or the end).
    pub skipped: usize,
    pub why: Why,
}

/// What was wrong at the start of the damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The bytes end before the record does: a write cut short.
    Truncated,
    /// The record's start is not a record header.
    BadMagic,
    /// The header claims a payload larger than [`MAX_PAYLOAD`].
    BadLength,
    /// The record's checksum does not match its bytes.
    BadChecksum,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "a record cut short",
            Self::BadMagic => "bytes that are not a record",
            Self::BadLength => "a record claiming an impossible length",
            Self::BadChecksum => "a record whose checksum does not match",
        })
    }
}

/// Every good record in `bytes` in order, and every stretch of damage between them.
pub fn scan(bytes: &[u8]) -> (Vec<Found>, Vec<Damage>) {
    let mut found = Vec::new();
    let mut damage = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match read_at(bytes, at) {
            Ok(f) => {
                at = f.payload.1;
                found.push(f);
            }
            Err(why) => {
                let next = resync(bytes, at + 1);
                damage.push(Damage {
                    at,
                    skipped: next - at,
                    why,
                });
                at = next;
            }
        }
    }
    (found, damage)
}

/// The record starting at `at`, or why there is none.
fn read_at(bytes: &[u8], at: usize) -> Result<Found, Why> {
    let mut r = Reader::at(bytes, at).ok_or(Why::Truncated)?;
    let mut header = r.sub(HEADER).ok_or(Why::Truncated)?;
    if header.array() != Some(MAGIC) {
        return Err(Why::BadMagic);
    }
    let (Some(len), Some(crc), Some(seq)) = (header.u32_le(), header.u32_le(), header.u64_le())
    else {
        return Err(Why::Truncated);
    };
    let len = usize::try_from(len).map_err(|_| Why::BadLength)?;
    if len > MAX_PAYLOAD {
        return Err(Why::BadLength);
    }
    let start = r.position();
    let payload = r.take(len).ok_or(Why::Truncated)?;
    if checksum(seq, payload) != crc {
        return Err(Why::BadChecksum);
    }
    Ok(Found {
        seq,
        at,
        payload: (start, start + len),
    })
}

/// The first offset from `from` where a good record starts, or the end.
fn resync(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(rest) = bytes.get(at..) {
        let Some(i) = rest.windows(2).position(|w| w == MAGIC) else {
            break;
        };
        if read_at(bytes, at + i).is_ok() {
            return at + i;
        }
        at += i + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, p) in records {
            encode(*seq, p, &mut out);
        }
        out
    }

    fn payloads<'a>(bytes: &'a [u8], found: &[Found]) -> Vec<(u64, &'a [u8])> {
        found
            .iter()
            .map(|f| (f.seq, &bytes[f.payload.0..f.payload.1]))
            .collect()
    }

    #[test]
    fn reads_back_what_was_written() {
        let bytes = framed(&[(1, b"one"), (2, b""), (3, b"three")]);
        let (found, damage) = scan(&bytes);
        assert!(damage.is_empty());
        assert_eq!(
            payloads(&bytes, &found),
            vec![(1, &b"one"[..]), (2, b""), (3, b"three")]
        );
    }

    #[test]
    fn a_torn_tail_is_damage_and_the_rest_survives() {
        let mut bytes = framed(&[(1, b"one"), (2, b"two")]);
        let whole = bytes.len();
        bytes.truncate(whole - 2);
        let (found, damage) = scan(&bytes);
        assert_eq!(payloads(&bytes, &found), vec![(1, &b"one"[..])]);
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].why, Why::Truncated);
        assert_eq!(damage[0].at + damage[0].skipped, bytes.len());
    }

    #[test]
    fn a_flipped_bit_costs_one_record_only() {
        let mut bytes = framed(&[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = HEADER + 3;
        bytes[second + HEADER] ^= 0x20;
        let (found, damage) = scan(&bytes);
        assert_eq!(
            payloads(&bytes, &found),
            vec![(1, &b"one"[..]), (3, b"three")]
        );
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].why, Why::BadChecksum);
        assert_eq!(damage[0].at, second);
    }

    #[test]
    fn garbage_between_records_is_skipped() {
        let mut bytes = framed(&[(1, b"one")]);
        bytes.extend_from_slice(b"SGSG\0\0garbage");
        encode(2, b"two", &mut bytes);
        let (found, damage) = scan(&bytes);
        assert_eq!(
            payloads(&bytes, &found),
            vec![(1, &b"one"[..]), (2, b"two")]
        );
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].skipped, 13);
    }

    proptest! {
        #[test]
        fn any_bytes_scan_without_panic_and_account_for_every_byte(
            bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let (found, damage) = scan(&bytes);
            let covered: usize = found.iter().map(|f| f.payload.1 - f.at).sum::<usize>()
                + damage.iter().map(|d| d.skipped).sum::<usize>();
            prop_assert_eq!(covered, bytes.len());
        }

        #[test]
        fn damage_anywhere_never_invents_a_record(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            flip in any::<prop::sample::Index>(),
        ) {
            let list: Vec<(u64, &[u8])> =
                records.iter().enumerate().map(|(i, p)| (i as u64, p.as_slice())).collect();
            let mut bytes = framed(&list);
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x01;
            let (found, _) = scan(&bytes);
            // Every record read back is one that was written, unchanged.
            for (seq, p) in payloads(&bytes, &found) {
                prop_assert_eq!(p, list[seq as usize].1);
            }
            prop_assert!(found.len() >= list.len() - 1);
        }
    }
}

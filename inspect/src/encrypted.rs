//! Fully encrypted protocols: proxies whose bytes are random from the first one
//! (Shadowsocks, VMess, obfs4 and their kind), recognised by what they lack rather than by
//! what one tool sends.
//!
//! Such a protocol is built to have no fingerprint: no header, no version, no readable byte.
//! That absence is itself the sign. The rules are those the published study of China's
//! firewall found it applies to a connection's first data (Wu et al., "How the Great Firewall
//! of China Detects and Blocks Fully Encrypted Traffic", USENIX Security 2023): the data is
//! *exempt*, so not fully encrypted, when any of these holds:
//!
//! 1. its bits are not balanced: on average at most 3.4 or at least 4.6 set bits per byte
//!    (random bytes have 4);
//! 2. its first six bytes are printable ASCII;
//! 3. more than half its bytes are printable ASCII;
//! 4. it holds a run of more than 20 printable bytes;
//! 5. it is a protocol that is known (TLS, HTTP and the rest, which inspection has tried
//!    before it comes here).
//!
//! One more is ours: the first 16 bytes hold at most one zero byte. A framed protocol's
//! header (a length, a version, flags) carries zeros; a proxy's first 16 bytes are its salt
//! or nonce, which has two zeros in under 0.2 % of connections.
//!
//! The study measured its rules alone as catching about 0.6 % of ordinary connections.
//! A school quarantines a pupil on an alert, so one side is not enough here: the flow is
//! called a fully encrypted proxy only when the client's first data *and* the server's
//! first answer both pass, each at least [`MIN_BYTES`] long. Ordinary protocols that start
//! with random bytes on one side (a key exchange after a cleartext greeting, a game's
//! encrypted payload after a readable header) fail on the other.

/// The least data either side must send to be judged: an AEAD proxy's first message holds a
/// salt or nonce (16–32 bytes) and an authenticated length (18) before any payload.
pub const MIN_BYTES: usize = 40;
/// The longest run of printable bytes that random data may have (rule 4).
const MAX_PRINTABLE_RUN: usize = 20;

/// Whether `data`, a side's first bytes, shows none of the marks of a known or readable
/// protocol (rules 1 to 4 above).
pub fn fully_encrypted(data: &[u8]) -> bool {
    if data.len() < MIN_BYTES {
        return false;
    }
    let bits: u32 = data.iter().map(|b| b.count_ones()).sum();
    // Rule 1, in integers: bits / len within (3.4, 4.6).
    let len = data.len() as u64;
    let tenths = u64::from(bits) * 10;
    if tenths <= 34 * len || tenths >= 46 * len {
        return false;
    }
    // Rule 2.
    if data.iter().take(6).all(|b| printable(*b)) {
        return false;
    }
    // A header's zeros.
    if data.iter().take(16).filter(|b| **b == 0).count() > 1 {
        return false;
    }
    // Rules 3 and 4.
    let mut printable_bytes = 0usize;
    let mut run = 0usize;
    for b in data {
        if printable(*b) {
            printable_bytes += 1;
            run += 1;
            if run > MAX_PRINTABLE_RUN {
                return false;
            }
        } else {
            run = 0;
        }
    }
    printable_bytes * 2 <= data.len()
}

/// Printable ASCII, as the rules count it: space to tilde.
fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Bytes from a keyed stream, as a cipher's output looks.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_are_fully_encrypted() {
        let mut hits = 0;
        for seed in 0..1000 {
            hits += usize::from(fully_encrypted(&random(184, seed)));
        }
        // The rules exempt a little random data too (the study: about a quarter of random
        // first packets of 1 to 1,000 bytes, most of them short), never most of it.
        assert!(hits > 900, "{hits} of 1000");
    }

    #[test]
    fn too_short_to_say() {
        assert!(!fully_encrypted(&random(MIN_BYTES - 1, 7)));
    }

    #[test]
    fn each_exemption_holds() {
        let base = random(200, 99);
        assert!(fully_encrypted(&base));
        // 1: too few or too many set bits (zero padding, or 0xff filler).
        let mut sparse = base.clone();
        sparse[..120].fill(0);
        assert!(!fully_encrypted(&sparse));
        let mut dense = base.clone();
        dense[..120].fill(0xff);
        assert!(!fully_encrypted(&dense));
        // 2: a readable first six bytes (a version string, a method name).
        let mut named = base.clone();
        named[..6].copy_from_slice(b"SSH-2.");
        assert!(!fully_encrypted(&named));
        // 3: mostly printable (base64 or hex of a ciphertext).
        let b64: Vec<u8> = base
            .iter()
            .map(|b| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [usize::from(b % 64)]
            })
            .collect();
        let mut mixed = base.clone();
        mixed[..1].copy_from_slice(&[0x05]);
        mixed[1..110].copy_from_slice(&b64[1..110]);
        for i in (10..110).step_by(15) {
            mixed[i] = 0x01; // break every run, so only rule 3 applies
        }
        assert!(!fully_encrypted(&mixed));
        // 4: a run of 21 printable bytes in the middle of random data (a header name).
        let mut run = base.clone();
        run[100..121].copy_from_slice(b"Content-Type: text/ht");
        assert!(!fully_encrypted(&run));
    }

    #[test]
    fn known_protocols_first_bytes_are_exempt() {
        // A TLS ClientHello's record header is not printable, but its bits and its
        // readable server name and cipher lists are not random.
        let client_hello = {
            let mut h = vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ];
            h.extend(random(32, 5));
            h.push(0x20);
            h.extend(random(32, 6));
            h.extend([0x00, 0x20]);
            h.extend([
                0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9,
            ]);
            h.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h.extend(b"\x00\x00\x00\x16\x00\x14\x00\x00\x11www.instagram.com");
            h.extend([0u8; 200]);
            h
        };
        assert!(!fully_encrypted(&client_hello));
        assert!(!fully_encrypted(
            b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
        ));
        assert!(!fully_encrypted(
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
        ));
        // A framed protocol's header ahead of its ciphertext: a magic, a version and a
        // length (an older WhatsApp client's first message).
        let mut framed = vec![b'W', b'A', 1, 5, 0, 0, 0x1a, 0xf8];
        framed.extend(random(158, 11));
        assert!(!fully_encrypted(&framed));
        assert!(fully_encrypted(&framed[8..]));
        // A length-prefixed binary protocol with small integers (zeros pull the bits down).
        let mut binary = Vec::new();
        for i in 0u8..50 {
            binary.extend([0, 0, 0, i, 1, 0]);
        }
        assert!(!fully_encrypted(&binary));
    }
}

//! ICMP echo streams: what a ping between two hosts looks like, and what a tunnel carried in
//! echoes looks like, told apart by what the protocol promises rather than by one tool's
//! header.
//!
//! RFC 792 (and RFC 4443 for ICMPv6) says an echo reply carries the request's data
//! unchanged, under the same identifier and sequence number. Every ping program relies on
//! it, and every host's stack does it. A tunnel has to bring data back, so its server puts
//! the return traffic in echo replies (ptunnel, ptunnel-ng, hans, icmptunnel, icmpsh all
//! do): replies whose data is not their request's, or that answer no request. That is one
//! signal. The other is what the requests carry: ping tools send at most a few dozen bytes
//! of counting or repeated filler, while a tunnel's requests carry encrypted or compressed
//! data, large and with almost no repetition.

use crate::signature::{entropy, step_entropy};

/// Requests remembered to match replies against: a ping has one outstanding request a
/// second, a flood ping (`ping -f`) a few dozen at most.
const REMEMBERED: usize = 64;
/// Replies that break the echo rule before a stream is called a tunnel. A host's stack
/// never breaks it, so two are not chance; a tunnel carrying one small web page sends two
/// (ptunnel-ng: its acknowledgement and the page).
pub const ODD_REPLIES: u32 = 2;
/// Requests carrying random-looking data before a stream is called a tunnel.
pub const RANDOM_REQUESTS: u32 = 3;
/// The least data in a request that can be called random-looking (ping's default is 56).
pub const RANDOM_BYTES: usize = 100;
/// Bits of entropy per byte above which data looks encrypted or compressed.
const RANDOM_ENTROPY: f64 = 6.0;

/// What gave an echo stream away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// Replies whose data differs from their request's, or that answer no request.
    OddReplies { differ: u32, unasked: u32 },
    /// Requests carrying random-looking data.
    RandomRequests,
}

impl Tunnel {
    /// The evidence, in words, for an echo stream to `server`.
    pub fn evidence(self, server: std::net::IpAddr) -> String {
        match self {
            Self::OddReplies { differ, unasked } => format!(
                "ICMP echo replies from {server} that are not echoes: {differ} with data other than their request's, \
                 {unasked} answering no request (a ping's reply repeats its request)"
            ),
            Self::RandomRequests => format!(
                "{RANDOM_REQUESTS} ICMP echo requests to {server} carrying {RANDOM_BYTES} bytes or more of random-looking data"
            ),
        }
    }
}

/// One device's echoes to one host, as far as they have been seen.
#[derive(Debug, Clone)]
pub struct EchoStream {
    /// Recent requests: identifier and sequence number, and a hash of the data.
    asked: [(u32, u64); REMEMBERED],
    /// Requests seen so far (the next slot in `asked` is this modulo its length).
    requests: u32,
    random: u32,
    differ: u32,
    unasked: u32,
}

impl Default for EchoStream {
    fn default() -> Self {
        Self {
            asked: [(0, 0); REMEMBERED],
            requests: 0,
            random: 0,
            differ: 0,
            unasked: 0,
        }
    }
}

impl EchoStream {
    /// A request with its identifier and sequence number (`tag`) and data.
    pub fn request(&mut self, tag: u32, data: &[u8]) -> Option<Tunnel> {
        let slot = self.requests as usize % REMEMBERED;
        if let Some(s) = self.asked.get_mut(slot) {
            *s = (tag, hash(data));
        }
        self.requests = self.requests.saturating_add(1);
        if random_looking(data) {
            self.random += 1;
        }
        (self.random >= RANDOM_REQUESTS).then_some(Tunnel::RandomRequests)
    }

    /// A reply with its identifier and sequence number and data.
    pub fn reply(&mut self, tag: u32, data: &[u8]) -> Option<Tunnel> {
        // A reply before any request was seen may answer one sent before the capture began.
        if self.requests == 0 {
            return None;
        }
        let seen = self.requests.min(REMEMBERED as u32) as usize;
        let asked = self.asked.iter().take(seen).find(|(t, _)| *t == tag);
        match asked {
            Some((_, h)) if *h == hash(data) => {}
            Some(_) => self.differ += 1,
            None => self.unasked += 1,
        }
        (self.differ + self.unasked >= ODD_REPLIES).then_some(Tunnel::OddReplies {
            differ: self.differ,
            unasked: self.unasked,
        })
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u32 {
        self.requests
    }
}

/// Whether a request's data looks encrypted or compressed: large, with its byte values
/// spread out and no pattern from one byte to the next. A large ping counts up through
/// every byte value (iputils fills its data with 0x10, 0x11, …), so its values alone look
/// random; its steps do not.
pub fn random_looking(data: &[u8]) -> bool {
    data.len() >= RANDOM_BYTES
        && entropy(data) >= RANDOM_ENTROPY
        && step_entropy(data) >= RANDOM_ENTROPY
}

/// FNV-1a: replies are compared with their requests by a hash of the data (a collision
/// would hide one odd reply, never invent one).
fn hash(data: &[u8]) -> u64 {
    schoolgate_engine::fnv::fnv1a(data.iter().copied())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// What iputils `ping` sends: an 8-byte timestamp, then bytes counting up from 0x10.
    fn linux_ping(seq: u16) -> Vec<u8> {
        let mut d = u64::from(seq).to_le_bytes().to_vec();
        d.extend((0x10..0x10 + 48).map(|b: u32| b as u8));
        d
    }

    fn tag(id: u16, seq: u16) -> u32 {
        u32::from(id) << 16 | u32::from(seq)
    }

    #[test]
    fn a_ping_answered_by_its_host_is_a_ping() {
        let mut s = EchoStream::default();
        for seq in 1..200 {
            let d = linux_ping(seq);
            assert_eq!(s.request(tag(7, seq), &d), None);
            assert_eq!(s.reply(tag(7, seq), &d), None);
        }
        // A large iputils ping counts up through every byte value.
        let mut big = u64::from(7u16).to_le_bytes().to_vec();
        big.extend((0..1392u32).map(|i| (0x10 + i) as u8));
        assert!(entropy(&big) > 7.9);
        for seq in 1..10 {
            assert_eq!(s.request(tag(6, seq), &big), None);
            assert_eq!(s.reply(tag(6, seq), &big), None);
        }
        // Windows' 32 bytes of the alphabet, and large zero-filled pings (MTU checks).
        let alphabet: Vec<u8> = (b'a'..=b'w').cycle().take(32).collect();
        let zeros = [0u8; 1472];
        for seq in 1..50 {
            assert_eq!(s.request(tag(8, seq), &alphabet), None);
            assert_eq!(s.request(tag(9, seq), &zeros), None);
            assert_eq!(s.reply(tag(9, seq), &zeros), None);
            assert_eq!(s.reply(tag(8, seq), &alphabet), None);
        }
    }

    #[test]
    fn a_lost_request_or_replies_from_before_the_capture_are_not_a_tunnel() {
        let mut s = EchoStream::default();
        // Replies to requests sent before the capture began.
        assert_eq!(s.reply(tag(7, 1), &linux_ping(1)), None);
        assert_eq!(s.reply(tag(7, 2), &linux_ping(2)), None);
        assert_eq!(s.request(tag(7, 3), &linux_ping(3)), None);
        // Duplicates, and one reply whose request the capture missed.
        assert_eq!(s.reply(tag(7, 3), &linux_ping(3)), None);
        assert_eq!(s.reply(tag(7, 3), &linux_ping(3)), None);
        assert_eq!(s.reply(tag(7, 4), &linux_ping(4)), None);
    }

    #[test]
    fn replies_carrying_other_data_are_a_tunnel_whatever_the_data() {
        // Plain text both ways (an HTTP request tunnelled without encryption): no entropy to
        // see, but the replies are not echoes.
        let mut s = EchoStream::default();
        let up = b"GET / HTTP/1.1\r\nHost: www.instagram.com\r\n\r\n";
        let down = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut found = None;
        for seq in 1..=2 {
            assert_eq!(s.request(tag(0x4242, seq), up), None);
            // The tunnel host's kernel answers too, with the request's data.
            assert_eq!(s.reply(tag(0x4242, seq), up), None);
            found = s.reply(tag(0x4242, seq), down);
        }
        assert_eq!(
            found,
            Some(Tunnel::OddReplies {
                differ: 2,
                unasked: 0
            })
        );
    }

    #[test]
    fn replies_that_answer_no_request_are_a_tunnel() {
        // hans and icmptunnel servers send replies under their own sequence numbers.
        let mut s = EchoStream::default();
        s.request(tag(1, 1), &[0; 20]);
        assert_eq!(s.reply(tag(1, 1000), &[1; 20]), None);
        assert_eq!(
            s.reply(tag(1, 1001), &[2; 20]),
            Some(Tunnel::OddReplies {
                differ: 0,
                unasked: 2
            })
        );
    }

    #[test]
    fn random_requests_are_a_tunnel() {
        let mut s = EchoStream::default();
        let mut x: u32 = 0x1234_5678;
        let mut random = || {
            (0..400)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect::<Vec<u8>>()
        };
        assert_eq!(s.request(1, &random()), None);
        assert_eq!(s.request(2, &random()), None);
        assert_eq!(s.request(3, &random()), Some(Tunnel::RandomRequests));
        // Too short to say.
        assert!(!random_looking(&random()[..60]));
    }

    #[test]
    fn a_long_stream_remembers_only_recent_requests() {
        let mut s = EchoStream::default();
        for seq in 0..200 {
            s.request(tag(3, seq), &linux_ping(seq));
        }
        assert_eq!(s.requests(), 200);
        // Answers to the last REMEMBERED requests match; older ones count as unasked.
        for seq in 200 - REMEMBERED as u16..200 {
            assert_eq!(s.reply(tag(3, seq), &linux_ping(seq)), None);
        }
        assert_eq!(s.reply(tag(3, 10), &linux_ping(10)), None);
        assert!(s.reply(tag(3, 11), &linux_ping(11)).is_some());
    }
}

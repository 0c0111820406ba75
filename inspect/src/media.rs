//! Calls: the set-up and the media of voice and video, which messaging apps send to their
//! operators' addresses with no name on the wire. Recognising them says *what* a flow is
//! (a call); the server's address, in a listed network, says *whose* it is.
//!
//! - STUN and TURN (RFC 8489, RFC 8656): a 20-byte header whose first two bits are zero,
//!   a length that counts the rest of the datagram in 4-byte units, and the fixed magic
//!   cookie `0x2112A442`. Every WebRTC call starts with STUN Binding requests; WhatsApp's,
//!   Messenger's and Telegram's calls do too.
//! - RTP (RFC 3550), for a call the capture joins after its set-up: version 2, a payload
//!   type outside RTCP's range, and from one sender the same SSRC with sequence numbers that
//!   go up one at a time and timestamps that do not go back. SRTP encrypts the payload, not
//!   this header.

use schoolgate_wire::Reader;

/// STUN's magic cookie (RFC 8489 §6).
const MAGIC_COOKIE: u32 = 0x2112_a442;
/// Consecutive RTP packets, same SSRC and the next sequence number, before a flow is called
/// media: two could be chance; random data meets the rules three times in about 2^-60.
pub const RTP_RUN: u8 = 3;

/// A STUN or TURN message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stun {
    /// The method (1 Binding, 3 Allocate, 4 Refresh, 6 Send, 7 Data, 8 CreatePermission,
    /// 9 ChannelBind).
    pub method: u16,
    /// 0 request, 1 indication, 2 success response, 3 error response.
    pub class: u8,
}

impl Stun {
    /// The message in words, for evidence.
    pub fn words(self) -> String {
        let method = match self.method {
            0x001 => "Binding",
            0x003 => "Allocate (TURN)",
            0x004 => "Refresh (TURN)",
            0x006 => "Send (TURN)",
            0x007 => "Data (TURN)",
            0x008 => "CreatePermission (TURN)",
            0x009 => "ChannelBind (TURN)",
            _ => "other",
        };
        let class = match self.class {
            0 => "request",
            1 => "indication",
            2 => "success response",
            _ => "error response",
        };
        format!("STUN {method} {class}")
    }
}

/// The STUN header of a datagram, if it is one.
pub fn stun(p: &[u8]) -> Option<Stun> {
    let mut r = Reader::new(p);
    let kind = r.u16()?;
    let length = usize::from(r.u16()?);
    let cookie = r.u32()?;
    r.skip(12)?; // transaction ID
    if kind & 0xc000 != 0 || cookie != MAGIC_COOKIE || length % 4 != 0 || r.remaining() != length {
        return None;
    }
    // The class bits are 0x0100 and 0x0010; the method fills the other twelve.
    let class = u8::from(kind & 0x0100 != 0) << 1 | u8::from(kind & 0x0010 != 0);
    let method = (kind & 0x000f) | (kind & 0x00e0) >> 1 | (kind & 0x3e00) >> 2;
    Some(Stun { method, class })
}

/// An RTP header's fields that tell a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtp {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// The RTP header of a datagram, if it can be one.
pub fn rtp(p: &[u8]) -> Option<Rtp> {
    let mut r = Reader::new(p);
    let first = r.u8()?;
    let second = r.u8()?;
    let sequence = r.u16()?;
    let timestamp = r.u32()?;
    let ssrc = r.u32()?;
    let payload_type = second & 0x7f;
    // Version 2; 72–76 with the marker bit are RTCP's 200–204 (RFC 5761 §4).
    if first >> 6 != 2 || (72..=76).contains(&payload_type) {
        return None;
    }
    // The contributing sources, and at least a byte of payload.
    r.skip(usize::from(first & 0x0f) * 4)?;
    if r.is_empty() {
        return None;
    }
    Some(Rtp {
        payload_type,
        sequence,
        timestamp,
        ssrc,
    })
}

/// One sender's packets, followed for the RTP shape.
#[derive(Debug, Default, Clone, Copy)]
pub struct RtpRun {
    last: Option<Rtp>,
    run: u8,
}

impl RtpRun {
    /// Takes the sender's next datagram; returns the stream once it has shown itself.
    pub fn push(&mut self, p: &[u8]) -> Option<Rtp> {
        let Some(now) = rtp(p) else {
            self.run = 0;
            self.last = None;
            return None;
        };
        let follows = self.last.is_some_and(|before| {
            before.ssrc == now.ssrc
                && before.payload_type == now.payload_type
                && now.sequence == before.sequence.wrapping_add(1)
                && now.timestamp.wrapping_sub(before.timestamp) < 0x8000_0000
        });
        self.run = if follows {
            self.run.saturating_add(1)
        } else {
            1
        };
        self.last = Some(now);
        (self.run >= RTP_RUN).then_some(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A STUN message of `kind` with `attributes` (RFC 8489 §5).
    fn stun_message(kind: u16, attributes: &[u8]) -> Vec<u8> {
        let mut m = kind.to_be_bytes().to_vec();
        m.extend((attributes.len() as u16).to_be_bytes());
        m.extend(MAGIC_COOKIE.to_be_bytes());
        m.extend([7; 12]);
        m.extend(attributes);
        m
    }

    /// An RTP packet (RFC 3550 §5.1): version 2, no padding, extension or CSRCs.
    fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend((0..payload).map(|i| (i * 151 % 251) as u8));
        p
    }

    #[test]
    fn stun_and_turn_messages() {
        // A Binding request with a SOFTWARE attribute, as WebRTC sends.
        let software = [0x80, 0x22, 0x00, 0x04, b'w', b'r', b't', b'c'];
        assert_eq!(
            stun(&stun_message(0x0001, &software)),
            Some(Stun {
                method: 1,
                class: 0
            })
        );
        // Its success response, a TURN Allocate request and a Data indication.
        assert_eq!(
            stun(&stun_message(0x0101, &[])),
            Some(Stun {
                method: 1,
                class: 2
            })
        );
        assert_eq!(stun(&stun_message(0x0003, &[])).unwrap().method, 3);
        let data = stun(&stun_message(0x0017, &[])).unwrap();
        assert_eq!((data.method, data.class), (7, 1));
        assert_eq!(data.words(), "STUN Data (TURN) indication");
        // The length must count the rest, in 4-byte units; the cookie must be there.
        let mut wrong = stun_message(0x0001, &software);
        wrong.push(0);
        assert_eq!(stun(&wrong), None);
        let mut no_cookie = stun_message(0x0001, &software);
        no_cookie[4] = 0;
        assert_eq!(stun(&no_cookie), None);
        assert_eq!(stun(&[0; 19]), None);
    }

    #[test]
    fn an_rtp_stream_from_one_sender() {
        let mut run = RtpRun::default();
        // Opus at 48 kHz, 20 ms frames: the timestamp goes up 960 a packet.
        let mut found = None;
        for i in 0..3u16 {
            found = run.push(&rtp_packet(
                111,
                65534u16.wrapping_add(i),
                4_294_966_000u32.wrapping_add(u32::from(i) * 960),
                0xdead_beef,
                80,
            ));
        }
        let found = found.expect("three in a row, across both wraps");
        assert_eq!((found.payload_type, found.ssrc), (111, 0xdead_beef));
    }

    #[test]
    fn what_is_not_an_rtp_stream() {
        // RTCP (a sender report is payload type 200 = 72 with the marker bit).
        assert_eq!(rtp(&rtp_packet(200, 1, 1, 1, 20)), None);
        // Version 1, and a header with no payload.
        let mut v1 = rtp_packet(0, 1, 1, 1, 20);
        v1[0] = 0x40;
        assert_eq!(rtp(&v1), None);
        assert_eq!(rtp(&rtp_packet(0, 1, 1, 1, 0)), None);
        // Sequence numbers that jump, a changing SSRC, time going back.
        for packets in [
            [(5, 100, 1), (7, 200, 1), (8, 300, 1)],
            [(5, 100, 1), (6, 200, 2), (7, 300, 3)],
            [(5, 900, 1), (6, 500, 1), (7, 100, 1)],
        ] {
            let mut run = RtpRun::default();
            let shown = packets
                .iter()
                .any(|(seq, ts, ssrc)| run.push(&rtp_packet(0, *seq, *ts, *ssrc, 160)).is_some());
            assert!(!shown, "{packets:?}");
        }
        // Random datagrams (a QUIC short header has 0x40 set, most encrypted data fails
        // the version or the sequence).
        let mut run = RtpRun::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let d: Vec<u8> = (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert!(run.push(&d).is_none());
        }
    }
}

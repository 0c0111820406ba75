//! TLS inside TLS: a proxy that wraps the pupil's own TLS connections in one TLS connection
//! to a server of its own (Trojan, VLESS and VMess over TLS, naiveproxy and their kind),
//! recognised by the sizes of the writes the inner handshake leaves in the outer flow.
//!
//! The outer connection looks like any HTTPS: a readable ClientHello, often a plausible
//! server name, port 443. What it carries cannot look like anything else, because the
//! inner TLS handshake has to happen inside it before the pupil's browser can send a byte:
//!
//! 1. the client's first application data is the inner ClientHello (200 bytes or more),
//!    behind the proxy's own header;
//! 2. the server answers with the inner server's flight;
//! 3. the client's next write is the inner handshake's end, whose size TLS fixes: a TLS 1.3
//!    Finished is a 5-byte record header, a 4-byte message header, the hash (32 or 48
//!    bytes), a content type and a 16-byte tag, 58 or 74 bytes, 64 or 80 with the
//!    ChangeCipherSpec record most clients send before it; a TLS 1.2 client's second flight
//!    (an X25519 or P-256 key share, ChangeCipherSpec and an AES-GCM or ChaCha20 Finished)
//!    is 85, 93, 118 or 126 bytes.
//!
//! In the outer flow each inner record grows by the outer record's overhead, which the
//! outer ServerHello gives (TLS 1.3: 22 bytes; TLS 1.2 AES-GCM: 29; ChaCha20: 21), and by
//! the proxy's framing, from a short list: none (Trojan, VLESS), a masked WebSocket frame
//! header (6), an HTTP/2 frame header (9, naiveproxy and gRPC-like transports), a VMess
//! chunk's length and tag (18), and both of the last (24).
//!
//! The client's application data up to the server's first answer is taken as the inner
//! hello, however many writes it took (a proxy may write its header before the hello has
//! come). A tunnel that waits for an answer before it starts (a WebSocket upgrade, a
//! CONNECT) is passed over, at most twice: a large write after an answer that is not the
//! handshake's end starts the count again.
//!
//! Ordinary HTTPS has no reason for its second write after the handshake to be exactly one
//! of those sizes after a first write large enough for a ClientHello and a server answer
//! large enough for a server's flight. The client's writes are told apart by TCP's PSH flag
//! and measured by sequence numbers, so the kernel filter may drop the middle of a long
//! write without changing what is measured.

use std::time::Duration;

use schoolgate_wire::Reader;

/// The least an inner ClientHello takes, with a server name and today's key shares.
pub const MIN_INNER_HELLO: u32 = 180;
/// The least an inner server's first flight takes: a ServerHello alone is about 90 bytes.
pub const MIN_INNER_SERVER: u32 = 90;
/// How long after the outer hello the inner handshake is waited for.
pub const WAIT: Duration = Duration::from_secs(5);
/// The sizes of a client's closing handshake flight (see the module's notes).
pub const INNER_FINISHED: [u32; 8] = [58, 64, 74, 80, 85, 93, 118, 126];
/// The framings a proxy puts round each piece of the inner stream (see the module's notes).
pub const FRAMINGS: [u32; 5] = [0, 6, 9, 18, 24];
/// The most of the server's first bytes read for its ServerHello.
const MAX_HELLO_BYTES: usize = 2048;

/// What the outer ServerHello says about the outer records' size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    /// Not all of the ServerHello yet.
    Incomplete,
    /// Each outer record adds this many bytes to what it carries.
    Overhead(u32),
    /// Not a ServerHello, or a cipher whose records do not have one overhead (CBC pads).
    Unknown,
}

/// Reads the outer overhead from the server's first bytes.
pub fn outer(server: &[u8]) -> Outer {
    if server.len() < 5 {
        return Outer::Incomplete;
    }
    match server_hello(server) {
        Some(outer) => outer,
        // Cut short: a record still arriving, unless it is longer than any ServerHello.
        None if server.len() >= MAX_HELLO_BYTES => Outer::Unknown,
        None => Outer::Incomplete,
    }
}

/// The overhead a ServerHello's version and cipher give; None when the bytes are not a
/// complete one.
fn server_hello(bytes: &[u8]) -> Option<Outer> {
    let mut r = Reader::new(bytes);
    if r.u8()? != 0x16 {
        return Some(Outer::Unknown);
    }
    r.skip(2)?;
    let len = usize::from(r.u16()?);
    let mut record = r.sub(len)?;
    if record.u8()? != 2 {
        return Some(Outer::Unknown);
    }
    let len = usize::try_from(record.u24()?).ok()?;
    let mut hello = record.sub(len)?;
    hello.skip(2 + 32)?;
    let session = usize::from(hello.u8()?);
    hello.skip(session)?;
    let cipher = hello.u16()?;
    hello.skip(1)?;
    let mut tls13 = false;
    if let Some(len) = hello.u16() {
        let mut exts = hello.sub(usize::from(len))?;
        while !exts.is_empty() {
            let kind = exts.u16()?;
            let len = usize::from(exts.u16()?);
            let mut body = exts.sub(len)?;
            if kind == 0x002b {
                tls13 = body.u16()? == 0x0304;
            }
        }
    }
    Some(match (tls13, cipher) {
        // TLS 1.3: a header, the content type, a 16-byte tag (CCM-8's is 8).
        (true, 0x1305) => Outer::Overhead(5 + 1 + 8),
        (true, _) => Outer::Overhead(5 + 1 + 16),
        // TLS 1.2 AES-GCM: an 8-byte explicit nonce and a 16-byte tag.
        (false, 0x009c..=0x009f | 0xc02b..=0xc032 | 0x00a2..=0x00a7) => Outer::Overhead(5 + 8 + 16),
        // TLS 1.2 ChaCha20-Poly1305: no explicit nonce.
        (false, 0xcca8..=0xccae) => Outer::Overhead(5 + 16),
        _ => Outer::Unknown,
    })
}

/// What the inner handshake left in the outer flow: the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// The client's first application data (one write or a few back to back).
    pub hello_write: u32,
    /// What the server sent between the two.
    pub server_bytes: u32,
    /// The client's next write, and the inner flight it holds.
    pub finished_write: u32,
    pub finished: u32,
    pub framing: u32,
    pub overhead: u32,
}

/// One step of the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// Nothing inside, or nothing more to learn: stop following the flow.
    Stop,
    Found(Inner),
}

/// A TLS flow followed past its ClientHello, through its first client writes.
#[derive(Debug, Clone)]
pub struct Watch {
    since: Duration,
    /// Where the client's next write starts.
    up_end: u32,
    /// The furthest the server's bytes reach, once it has sent any, and how many it has
    /// sent since the watch began.
    down_end: Option<u32>,
    down_total: u32,
    /// The client's writes ended since the ClientHello.
    writes: u8,
    /// The client's writes since the server last spoke: the candidate inner ClientHello
    /// (a proxy may send its header and the hello as two writes), their bytes and count.
    flight: u32,
    flight_writes: u32,
    /// The server's bytes at the flight's last write.
    mark: u32,
    /// Exchanges before the tunnel (a WebSocket upgrade) passed over.
    preambles: u8,
    /// The outer records' overhead, once the ServerHello has been read.
    pub outer: Outer,
}

/// Client writes in one flight before the flow is let go.
const MAX_FLIGHT_WRITES: u32 = 4;
/// Exchanges passed over before the tunnel starts: a WebSocket upgrade or an HTTP CONNECT
/// to the proxy, and one spare.
const MAX_PREAMBLES: u8 = 2;

impl Watch {
    /// Starts after the client's ClientHello, which ended at `up_end`.
    pub fn new(now: Duration, up_end: u32) -> Self {
        Self {
            since: now,
            up_end,
            down_end: None,
            down_total: 0,
            writes: 0,
            flight: 0,
            flight_writes: 0,
            mark: 0,
            preambles: 0,
            outer: Outer::Incomplete,
        }
    }

    /// Takes a segment of `len` data bytes at `seq`; `push` is its PSH flag.
    pub fn segment(
        &mut self,
        now: Duration,
        from_client: bool,
        seq: u32,
        len: u32,
        push: bool,
    ) -> Step {
        if now.saturating_sub(self.since) > WAIT || self.outer == Outer::Unknown {
            return Step::Stop;
        }
        let end = seq.wrapping_add(len);
        if !from_client {
            let new = match self.down_end {
                None => len,
                Some(d) if after(end, d) => end.wrapping_sub(d),
                Some(_) => 0,
            };
            if new > 0 {
                self.down_end = Some(end);
                self.down_total = self.down_total.saturating_add(new);
            }
            return Step::Wait;
        }
        if len == 0 || !push || !after(end, self.up_end) {
            return Step::Wait;
        }
        let size = end.wrapping_sub(self.up_end);
        self.up_end = end;
        self.writes = self.writes.saturating_add(1);
        if self.writes == 1 {
            // The outer handshake's end.
            return Step::Wait;
        }
        if self.flight_writes == 0 || self.down_total == self.mark {
            self.flight = self.flight.saturating_add(size);
            self.flight_writes += 1;
            self.mark = self.down_total;
            return if self.flight_writes > MAX_FLIGHT_WRITES {
                Step::Stop
            } else {
                Step::Wait
            };
        }
        // The server has answered the flight: this write ends the inner handshake, or the
        // flight was a preamble and this one starts the tunnel.
        let Outer::Overhead(overhead) = self.outer else {
            return Step::Stop;
        };
        let server_bytes = self.down_total.saturating_sub(self.mark);
        if let Some(inner) = self.inner(size, server_bytes, overhead) {
            return Step::Found(inner);
        }
        if self.preambles < MAX_PREAMBLES && size >= MIN_INNER_HELLO + overhead {
            self.preambles += 1;
            self.flight = size;
            self.flight_writes = 1;
            self.mark = self.down_total;
            return Step::Wait;
        }
        Step::Stop
    }

    /// Whether the flight, the server's answer and `size` fit an inner handshake under one
    /// framing.
    fn inner(&self, size: u32, server_bytes: u32, overhead: u32) -> Option<Inner> {
        if server_bytes < MIN_INNER_SERVER + overhead {
            return None;
        }
        let records = overhead.saturating_mul(self.flight_writes);
        FRAMINGS.into_iter().find_map(|framing| {
            let hello = self.flight.checked_sub(records + framing)?;
            let finished = size.checked_sub(overhead + framing)?;
            (hello >= MIN_INNER_HELLO && INNER_FINISHED.contains(&finished)).then_some(Inner {
                hello_write: self.flight,
                server_bytes,
                finished_write: size,
                finished,
                framing,
                overhead,
            })
        })
    }
}

/// Whether sequence number `a` is after `b`, in TCP's circular order.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A ServerHello record: `tls13` adds supported_versions 1.3.
    fn server_hello_record(cipher: u16, tls13: bool) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        body.extend(cipher.to_be_bytes());
        body.push(0);
        let mut exts = Vec::new();
        if tls13 {
            exts.extend([0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        }
        exts.extend([0x00, 0x33, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x00]);
        body.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend(exts);
        let mut msg = vec![2];
        msg.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        msg.extend(body);
        let mut record = vec![0x16, 3, 3];
        record.extend(u16::try_from(msg.len()).unwrap().to_be_bytes());
        record.extend(msg);
        record
    }

    #[test]
    fn the_outer_overhead_comes_from_the_server_hello() {
        let h13 = server_hello_record(0x1302, true);
        assert_eq!(outer(&h13), Outer::Overhead(22));
        assert_eq!(outer(&h13[..40]), Outer::Incomplete);
        assert_eq!(
            outer(&server_hello_record(0xc02f, false)),
            Outer::Overhead(29)
        );
        assert_eq!(
            outer(&server_hello_record(0xcca8, false)),
            Outer::Overhead(21)
        );
        // CBC: padding makes every record's overhead different.
        assert_eq!(outer(&server_hello_record(0xc013, false)), Outer::Unknown);
        assert_eq!(outer(b"HTTP/1.1 200 OK\r\n\r\n"), Outer::Unknown);
        assert_eq!(outer(&[0x15, 3, 3, 0, 2, 2, 40]), Outer::Unknown);
    }

    /// Plays the writes of a flow after its ClientHello, `(from_client, bytes)`; what the
    /// watch found, if anything, before it stopped.
    fn play(outer: Outer, writes: &[(bool, u32)]) -> Option<Inner> {
        let mut w = Watch::new(Duration::ZERO, 1000);
        w.outer = outer;
        let (mut up, mut down) = (1000u32, 5000u32);
        for (i, &(client, n)) in writes.iter().enumerate() {
            let at = Duration::from_millis(10 * i as u64);
            let step = if client {
                up += n;
                w.segment(at, true, up - n, n, true)
            } else {
                down += n;
                w.segment(at, false, down - n, n, true)
            };
            match step {
                Step::Wait => {}
                Step::Stop => return None,
                Step::Found(inner) => return Some(inner),
            }
        }
        None
    }

    const TLS13: Outer = Outer::Overhead(22);

    #[test]
    fn trojan_carrying_tls13_and_tls12() {
        // Measured with trojan 1.16 and curl through it, outer TLS 1.3 (AES-256-GCM):
        // the outer Finished, the Trojan header and curl's 517-byte hello, the inner
        // server's flight, then the inner CCS and SHA-384 Finished (80 + 22).
        let inner = play(
            TLS13,
            &[
                (false, 1337),
                (true, 80),
                (false, 158),
                (true, 607),
                (false, 1359),
                (true, 102),
            ],
        )
        .unwrap();
        assert_eq!((inner.finished, inner.framing), (80, 0));
        // Inner TLS 1.2: X25519 key share, CCS and an AES-GCM Finished (93 + 22).
        let inner = play(
            TLS13,
            &[
                (false, 241),
                (true, 80),
                (true, 292),
                (false, 79),
                (false, 1230),
                (true, 115),
            ],
        )
        .unwrap();
        assert_eq!(inner.finished, 93);
        // The Trojan header and the hello as two writes (the hello had not come yet).
        let inner = play(
            TLS13,
            &[
                (false, 1337),
                (true, 80),
                (false, 158),
                (true, 90),
                (true, 539),
                (false, 661),
                (true, 115),
            ],
        )
        .unwrap();
        assert_eq!((inner.hello_write, inner.finished), (629, 93));
        // The server's tickets between the header and the hello: the header is passed over.
        let inner = play(
            TLS13,
            &[
                (true, 80),
                (true, 90),
                (false, 158),
                (true, 539),
                (false, 661),
                (true, 115),
            ],
        )
        .unwrap();
        assert_eq!((inner.hello_write, inner.finished), (539, 93));
    }

    #[test]
    fn framings_of_other_proxies() {
        // VMess over TLS 1.2 (AES-GCM): 29 + 18 round a 64-byte Finished.
        let inner = play(
            Outer::Overhead(29),
            &[
                (true, 126),
                (false, 51),
                (true, 600),
                (false, 3000),
                (true, 64 + 29 + 18),
            ],
        )
        .unwrap();
        assert_eq!(inner.framing, 18);
        // VMess over WebSocket: the upgrade and its answer first, then the tunnel, each
        // piece in a masked frame (6) round a VMess chunk (18).
        let inner = play(
            TLS13,
            &[
                (true, 80),
                (true, 310),
                (false, 180),
                (true, 700),
                (false, 4000),
                (true, 80 + 22 + 24),
            ],
        )
        .unwrap();
        assert_eq!(inner.framing, 24);
    }

    #[test]
    fn ordinary_https_is_not_tls_inside_tls() {
        // HTTP/1.1 on a kept-alive connection: requests of a size, answers between.
        let requests: Vec<(bool, u32)> = [(true, 80)]
            .into_iter()
            .chain((0..6).flat_map(|_| [(true, 450), (false, 9000)]))
            .collect();
        assert_eq!(play(TLS13, &requests), None);
        // HTTP/2: the preface and first request, the server's settings and tickets,
        // the settings acknowledgement (9 + 22), the next request.
        assert_eq!(
            play(
                TLS13,
                &[
                    (true, 80),
                    (true, 320),
                    (false, 600),
                    (true, 31),
                    (true, 90)
                ]
            ),
            None
        );
        // The right size but no room for a hello before it, or no answer between.
        assert_eq!(
            play(TLS13, &[(true, 80), (true, 150), (false, 900), (true, 102)]),
            None
        );
        assert_eq!(
            play(TLS13, &[(true, 80), (true, 607), (false, 40), (true, 102)]),
            None
        );
        // Nothing is judged without the outer overhead.
        assert_eq!(
            play(
                Outer::Unknown,
                &[(true, 80), (true, 607), (false, 1359), (true, 102)]
            ),
            None
        );
    }

    #[test]
    fn writes_are_measured_by_sequence_numbers() {
        // A long first write whose middle the capture never saw: only its PSH end came.
        let mut w = Watch::new(Duration::ZERO, 1000);
        w.outer = Outer::Overhead(22);
        assert_eq!(w.segment(Duration::ZERO, false, 1, 3000, true), Step::Wait);
        assert_eq!(w.segment(Duration::ZERO, true, 1000, 80, true), Step::Wait);
        // 1,900 bytes: a segment of 1,448 without PSH (dropped), then the rest.
        assert_eq!(
            w.segment(Duration::ZERO, true, 1080 + 1448, 452, true),
            Step::Wait
        );
        // A retransmission changes nothing.
        assert_eq!(
            w.segment(Duration::ZERO, true, 1080 + 1448, 452, true),
            Step::Wait
        );
        assert_eq!(
            w.segment(Duration::ZERO, false, 3001, 5000, true),
            Step::Wait
        );
        let step = w.segment(Duration::ZERO, true, 2980, 86, true);
        assert!(
            matches!(
                step,
                Step::Found(Inner {
                    hello_write: 1900,
                    finished: 64,
                    ..
                })
            ),
            "{step:?}"
        );
        // Too late: the watch ends.
        let mut w = Watch::new(Duration::ZERO, 0);
        assert_eq!(
            w.segment(WAIT + Duration::from_secs(1), true, 0, 80, true),
            Step::Stop
        );
    }
}

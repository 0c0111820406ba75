//! Fuzz target: arbitrary bytes as the start of a TLS stream and as QUIC CRYPTO bytes must
//! never make the ClientHello reader panic.
#![no_main]

use schoolgate_inspect::tls::{Transport, from_handshake, from_records};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = from_records(data);
    let _ = from_handshake(data, Transport::Quic);
});

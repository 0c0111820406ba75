//! QUIC Initial packets made by another implementation (rustls's QUIC key schedule and
//! packet protection) and read back by `schoolgate_inspect::quic`: versions 1 and 2 and
//! draft 29, a ClientHello spanning two Initials that arrive in reverse order, and a
//! later Initial sent under a new connection ID.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::sync::Arc;

use rustls::Side;
use rustls::quic::{self, Version as RustlsVersion};
use schoolgate_inspect::quic::{Crypto, QuicError, Version, client_initial};
use schoolgate_inspect::tls::{self, Parsed, Transport};

/// The TLS ClientHello a QUIC client would send to `sni`, with transport parameters padded
/// by `params_len` bytes (a large post-quantum key share has the same effect on size).
fn client_hello(version: RustlsVersion, sni: &str, params_len: usize) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h3".to_vec()];
    // One transport parameter of a reserved (greasing) id, `params_len` bytes long.
    let mut params = vec![0x40, 0x1b];
    let len = u16::try_from(params_len).unwrap() | 0x4000;
    params.extend_from_slice(&len.to_be_bytes());
    params.resize(params.len() + params_len, 0x5a);
    let mut conn = quic::ClientConnection::new(
        Arc::new(config),
        version,
        sni.to_owned().try_into().unwrap(),
        params,
    )
    .unwrap();
    let mut hello = Vec::new();
    conn.write_hs(&mut hello);
    hello
}

/// A client Initial protected as RFC 9001 says, carrying one CRYPTO frame and padded to
/// 1,200 bytes. `key_dcid` is the connection ID its keys come from, `dcid` the one its
/// header names.
fn initial(
    version: RustlsVersion,
    key_dcid: &[u8],
    dcid: &[u8],
    pn: u32,
    offset: u64,
    data: &[u8],
) -> Vec<u8> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .unwrap()
        .quic_suite()
        .unwrap();
    let keys = suite.keys(key_dcid, Side::Client, version);
    let (kind, wire): (u8, u32) = match version {
        RustlsVersion::V2 => (0b01, 0x6b33_43cf),
        RustlsVersion::V1Draft => (0b00, 0xff00_001d),
        _ => (0b00, 1),
    };
    let mut payload = vec![0x06];
    payload.extend_from_slice(&(u32::try_from(offset).unwrap() | 0x8000_0000).to_be_bytes());
    payload.extend_from_slice(&(u16::try_from(data.len()).unwrap() | 0x4000).to_be_bytes());
    payload.extend_from_slice(data);
    let mut header = vec![0xc0 | kind << 4 | 0x03];
    header.extend_from_slice(&wire.to_be_bytes());
    header.push(u8::try_from(dcid.len()).unwrap());
    header.extend_from_slice(dcid);
    header.push(8);
    header.extend_from_slice(&[0xaa; 8]);
    header.push(0); // no token
    let room = 1200 - header.len() - 2 - 4 - 16;
    assert!(payload.len() <= room, "CRYPTO data too big for one Initial");
    payload.resize(room, 0); // PADDING frames
    let length = u16::try_from(4 + payload.len() + 16).unwrap() | 0x4000;
    header.extend_from_slice(&length.to_be_bytes());
    let pn_offset = header.len();
    header.extend_from_slice(&pn.to_be_bytes());
    let tag = keys
        .local
        .packet
        .encrypt_in_place(u64::from(pn), &header, &mut payload)
        .unwrap();
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let sample = packet[pn_offset + 4..pn_offset + 20].to_vec();
    let (first, rest) = packet.split_first_mut().unwrap();
    keys.local
        .header
        .encrypt_in_place(&sample, first, &mut rest[pn_offset - 1..pn_offset + 3])
        .unwrap();
    packet
}

fn sni_of(crypto: &Crypto) -> Option<String> {
    match tls::from_handshake(crypto.contiguous(), Transport::Quic) {
        Parsed::Hello(h) => h.sni,
        _ => None,
    }
}

#[test]
fn version_1_version_2_and_draft_29_initials_are_read() {
    let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    for (rv, ours) in [
        (RustlsVersion::V1, Version::V1),
        (RustlsVersion::V2, Version::V2),
        (RustlsVersion::V1Draft, Version::Draft29),
    ] {
        let hello = client_hello(rv, "www.instagram.com", 16);
        let packet = initial(rv, &dcid, &dcid, 0, 0, &hello);
        let read = client_initial(&packet, None).unwrap();
        assert_eq!(read.version, ours);
        assert_eq!(read.dcid, dcid);
        let mut crypto = Crypto::default();
        for (offset, data) in &read.crypto {
            crypto.add(*offset, data);
        }
        assert_eq!(crypto.contiguous(), &hello[..], "{ours:?}");
        let Parsed::Hello(h) = tls::from_handshake(crypto.contiguous(), Transport::Quic) else {
            panic!("{ours:?}: no ClientHello");
        };
        assert_eq!(h.sni.as_deref(), Some("www.instagram.com"));
        assert_eq!(h.alpn, ["h3"]);
        assert!(h.ja4.starts_with("q13d"), "{}", h.ja4);
    }
}

#[test]
fn a_hello_in_two_initials_is_joined_whichever_arrives_first() {
    let dcid = [7u8; 16];
    let hello = client_hello(RustlsVersion::V1, "vcs-va.tiktokv.com", 1400);
    assert!(hello.len() > 1200, "the hello must need two packets");
    let cut = hello.len() / 2;
    let first = initial(RustlsVersion::V1, &dcid, &dcid, 0, 0, &hello[..cut]);
    let second = initial(
        RustlsVersion::V1,
        &dcid,
        &dcid,
        1,
        cut as u64,
        &hello[cut..],
    );

    let mut crypto = Crypto::default();
    for (offset, data) in client_initial(&second, None).unwrap().crypto {
        crypto.add(offset, &data);
    }
    assert_eq!(sni_of(&crypto), None, "half a hello names nothing");
    assert!(matches!(
        tls::from_handshake(crypto.contiguous(), Transport::Quic),
        Parsed::Incomplete { .. }
    ));
    for (offset, data) in client_initial(&first, None).unwrap().crypto {
        crypto.add(offset, &data);
    }
    assert_eq!(sni_of(&crypto).as_deref(), Some("vcs-va.tiktokv.com"));
}

#[test]
fn a_later_initial_under_a_new_connection_id_needs_the_first_ones_keys() {
    let first_dcid = [1u8; 8];
    let server_cid = [9u8; 8];
    let hello = client_hello(RustlsVersion::V1, "example.org", 16);
    let packet = initial(RustlsVersion::V1, &first_dcid, &server_cid, 2, 0, &hello);
    assert_eq!(client_initial(&packet, None), Err(QuicError::Decrypt));
    let read = client_initial(&packet, Some(&first_dcid)).unwrap();
    assert_eq!(read.dcid, first_dcid);
    assert_eq!(read.crypto[0].1, hello);
}

#[test]
fn a_flipped_bit_anywhere_in_the_payload_fails_authentication() {
    let dcid = [3u8; 8];
    let hello = client_hello(RustlsVersion::V2, "example.org", 16);
    let packet = initial(RustlsVersion::V2, &dcid, &dcid, 0, 0, &hello);
    for at in [60, 400, 1199] {
        let mut bad = packet.clone();
        bad[at] ^= 0x10;
        assert_eq!(
            client_initial(&bad, None),
            Err(QuicError::Decrypt),
            "byte {at}"
        );
    }
}

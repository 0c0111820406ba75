//! Bodies of the fuzz targets over packets, shared with the seed-replay tests: arbitrary
//! bytes as a frame of each link type through the whole inspector (packet views, flow table,
//! TLS, QUIC, HTTP, DNS and every signature), and as a QUIC datagram.

use std::time::Duration;

use crate::inspector::{Config, Inspector};
use crate::packet::{LinkType, view};
use crate::quic::{Crypto, client_initial};
use crate::signature;

/// `data` split into frames (a length byte before each), each read as every link type and
/// passed to one inspector, so flows can span frames. Returns how many observations the
/// inspector made (the seed tests check the seeds reach the classifiers). Must never panic.
pub fn frames(data: &[u8]) -> usize {
    let mut inspector = Inspector::new(Config {
        max_flows: 64,
        max_done: 64,
        ..Config::default()
    });
    let mut out = Vec::new();
    let mut rest = data;
    let mut t = 0u64;
    while let Some((len, tail)) = rest.split_first() {
        let take = usize::from(*len).min(tail.len());
        let (frame, after) = tail.split_at(take);
        rest = after;
        t += 1;
        for link in [
            LinkType::Ethernet,
            LinkType::RawIp,
            LinkType::LinuxSll,
            LinkType::Null,
        ] {
            if let Some(p) = view(link, frame) {
                inspector.packet(Duration::from_millis(t), &p, &mut out);
            }
        }
    }
    out.len()
}

/// `data` as a QUIC client datagram and as every signature's input. Must never panic.
pub fn datagram(data: &[u8]) {
    let mut crypto = Crypto::default();
    if let Ok(initial) = client_initial(data, None) {
        for (offset, bytes) in &initial.crypto {
            crypto.add(*offset, bytes);
        }
    }
    let _ = client_initial(data, data.get(..8));
    let _ = crate::gquic::sni(data);
    let _ = signature::wireguard(data);
    let _ = signature::wireguard_data(data);
    if let Some(session) = signature::openvpn_client_reset(data) {
        let _ = signature::openvpn_server_reset(data, &session);
    }
    let _ = signature::ike_initiation(data);
    let _ = signature::ike_message(data);
    let _ = signature::nat_t(data);
    let _ = signature::ssh_banner(data);
    if let Some(hello) = signature::socks_hello(data) {
        let _ = signature::socks_reply(&hello, data);
    }
    let _ = signature::dnscrypt_answer(data);
    let _ = crate::certificate::from_server(data);
    let mut side = signature::OpenVpnSide::default();
    for chunk in data.chunks(64) {
        let _ = side.push(chunk);
    }
    let _ = signature::openvpn_tcp_side(data);
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = signature::dnscrypt_certificate_name(name);
    }
    let _ = crate::http::request(data);
    let _ = crate::dns::query(data);
}

/// Bytes as a capture file (`replay`), each frame then through the kernel filter's program
/// for every framing, as the kernel would run it. Must never panic.
pub fn capture_and_filter(data: &[u8]) {
    use crate::filter::{Framing, program, run};
    let programs = [Framing::Ethernet, Framing::LinuxSll, Framing::RawIp].map(program);
    if let Ok(frames) = crate::capture_file::frames(data) {
        for f in frames.iter().take(64) {
            for p in &programs {
                let _ = run(p, &f.data);
            }
        }
    }
    for p in &programs {
        let _ = run(p, data);
    }
}

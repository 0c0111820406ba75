//! Bodies of the fuzz targets over packets, shared with the seed-replay tests: arbitrary
//! bytes as a frame of each link type through the whole inspector (packet views, flow table,
//! TLS, QUIC, HTTP, DNS and every signature), and as a QUIC datagram, every signature's,
//! the fully-encrypted rules', STUN's, an RTP run's and an echo stream's input.

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
    let _ = crate::encrypted::fully_encrypted(data);
    let _ = crate::media::stun(data).map(crate::media::Stun::words);
    let mut rtp = crate::media::RtpRun::default();
    for chunk in data.chunks(24) {
        let _ = rtp.push(chunk);
    }
    // The bytes as a ServerHello, then as a TLS flow's segments after its hello (seven
    // bytes each: direction and PSH, sequence number, length).
    let _ = crate::wrapped::outer(data);
    let mut watch = crate::wrapped::Watch::new(std::time::Duration::ZERO, 0);
    watch.outer = crate::wrapped::Outer::Overhead(22);
    for (i, c) in data.chunks_exact(7).enumerate() {
        let mut r = schoolgate_wire::Reader::new(c);
        let (Some(flags), Some(seq), Some(len)) = (r.u8(), r.u32(), r.u16()) else {
            break;
        };
        let at = std::time::Duration::from_millis(i as u64 * 10);
        let step = watch.segment(at, flags & 1 == 1, seq, u32::from(len), flags & 2 == 2);
        if step != crate::wrapped::Step::Wait {
            break;
        }
    }
    // The bytes as an echo stream: chunks alternate request and reply, each tagged by its
    // first byte.
    let mut echo = crate::echo::EchoStream::default();
    for (i, chunk) in data.chunks(48).enumerate() {
        let tag = u32::from(chunk.first().copied().unwrap_or(0));
        let _ = if i % 2 == 0 {
            echo.request(tag, chunk)
        } else {
            echo.reply(tag, chunk)
        };
    }
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

#[cfg(test)]
mod tests {
    //! The checked-in fuzz seeds (fuzz/seeds/) replayed through the same calls as the fuzz
    //! targets, so `cargo test` keeps every crash once found from coming back.

    use std::path::Path;

    use crate::tls::{Parsed, Transport, from_handshake, from_records};

    /// The checked-in seeds of fuzz target `target`, by file name; at least `min` of them.
    fn seeds(target: &str, min: usize) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        assert!(
            seeds.len() >= min,
            "expected the checked-in seeds in {}",
            dir.display()
        );
        seeds
    }

    #[test]
    fn tls_client_hello_seeds_do_not_panic() {
        let mut hellos = 0;
        for (_, data) in seeds("tls_client_hello", 8) {
            if matches!(from_records(&data), Parsed::Hello(_)) {
                hellos += 1;
            }
            let _ = from_handshake(&data, Transport::Quic);
        }
        // The seeds hold whole hellos in one record, over three records, and with real ECH.
        assert!(hellos >= 3, "only {hellos} seeds read as a hello");
    }

    #[test]
    fn packet_seeds_do_not_panic() {
        for target in ["inspect_frames", "quic_and_signatures"] {
            let mut observed = Vec::new();
            for (name, data) in seeds(target, 7) {
                if super::frames(&data) > 0 {
                    observed.push(name);
                }
                super::datagram(&data);
            }
            if target == "inspect_frames" {
                // The frames reach the classifiers, not only the packet views.
                observed.sort();
                eprintln!("seeds observed: {observed:?}");
                assert!(
                    observed.len() >= 10,
                    "only {observed:?} made an observation"
                );
            }
        }
    }

    #[test]
    fn capture_and_filter_seeds_do_not_panic() {
        let mut read = 0;
        for (_, data) in seeds("capture_and_filter", 7) {
            if crate::capture_file::frames(&data).is_ok_and(|f| !f.is_empty()) {
                read += 1;
            }
            super::capture_and_filter(&data);
        }
        // pcap with three link types and pcapng: the seeds reach the frames.
        assert!(read >= 4, "only {read} seeds read as captures");
    }
}

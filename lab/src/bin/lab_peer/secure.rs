//! The encrypted services of the lab's "internet": a DNS-over-TLS resolver (for `kdig +tls`)
//! and a QUIC echo server with its client, so the firewall's rules are tried with the real
//! protocols rather than with look-alikes on the same ports.
//!
//! Certificates are made afresh at each start; the QUIC server writes its own where the
//! client reads it, and `kdig +tls` does not authenticate the resolver.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const QUIC_ALPN: &[u8] = b"lab-echo";

fn certificate(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let made = rcgen::generate_simple_self_signed(names).expect("certificate");
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    (made.cert.der().clone(), PrivateKeyDer::Pkcs8(key))
}

/// A TLS 1.3 server configuration with a fresh certificate for `names`, and that certificate.
fn server_config(
    names: &[&str],
    alpn: &[&[u8]],
) -> (rustls::ServerConfig, CertificateDer<'static>) {
    let (cert, key) = certificate(names);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    (config, cert)
}

/// DNS over TLS on each address, answering as the plain resolver does.
pub(crate) fn dot(addrs: &[SocketAddr], answer: fn(&[u8]) -> Option<Vec<u8>>) {
    let config = Arc::new(server_config(&["dns.lab"], &[]).0);
    let mut threads = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr).expect("bind dot");
        let config = Arc::clone(&config);
        threads.push(std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let config = Arc::clone(&config);
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    super::serve_dns_stream(rustls::StreamOwned::new(conn, tcp), answer);
                });
            }
        }));
    }
    eprintln!("lab-peer dot ready on {addrs:?}");
    for t in threads {
        let _ = t.join();
    }
}

/// A QUIC server on `addr` that echoes every stream; its certificate (for `quic.lab` and
/// `names`) is written to `cert`.
pub(crate) fn quic_server(addr: SocketAddr, cert: &Path, names: &[&str]) {
    let all: Vec<&str> = std::iter::once("quic.lab")
        .chain(names.iter().copied())
        .collect();
    let (tls, der) = server_config(&all, &[QUIC_ALPN]);
    std::fs::write(cert, der.as_ref()).expect("write certificate");
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let endpoint = quinn::Endpoint::server(config, addr).expect("bind quic");
        eprintln!("lab-peer quic ready on {addr}");
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(data) = recv.read_to_end(64 * 1024).await {
                            let _ = send.write_all(&data).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    });
                }
            });
        }
    });
}

/// Opens a QUIC connection to `addr` for server `name` (trusting the certificate in `cert`),
/// sends a line on a stream and waits for its echo. Exits 0 on the echo, 1 on any failure
/// within 3 s.
pub(crate) fn quic_get(addr: SocketAddr, cert: &Path, name: &str) {
    let der = std::fs::read(cert).expect("read certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(der))
        .expect("trust certificate");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    let config = quinn::ClientConfig::new(Arc::new(crypto));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(async move {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("address")
        } else {
            "[::]:0".parse().expect("address")
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| e.to_string())?;
        endpoint.set_default_client_config(config);
        let exchange = async {
            let conn = endpoint
                .connect(addr, name)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(b"hello over quic\n")
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            let echoed = recv.read_to_end(1024).await.map_err(|e| e.to_string())?;
            conn.close(0u32.into(), b"done");
            Ok::<Vec<u8>, String>(echoed)
        };
        match tokio::time::timeout(Duration::from_secs(3), exchange).await {
            Ok(r) => r,
            Err(_) => Err("no answer within 3 s".to_owned()),
        }
    });
    match outcome {
        Ok(echoed) if echoed == b"hello over quic\n" => println!("quic: echoed"),
        Ok(other) => {
            eprintln!("quic: wrong echo {other:?}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("quic: {e}");
            std::process::exit(1);
        }
    }
}

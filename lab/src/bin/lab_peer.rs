//! `lab-peer`: the "internet" side of the end-to-end lab. It runs inside a network namespace
//! and plays a public resolver (`dns`) or the web sites (`http`).
//!
//! The resolver answers every A query with the fake web server's address, except:
//! `forcesafesearch.google.com` and the other safe-search targets → 198.51.100.11 (so a test
//! can tell a rewrite happened), `nx.lab` → NXDOMAIN. AAAA → 2001:db8:100::10. HTTPS records
//! for `ech.lab` carry an `ech` parameter. TXT `whoami.lab` → "upstream-inet".
//!
//! `relay PATH ADDR:PORT` listens on a Unix socket and joins each connection to a TCP
//! server in its own namespace: how a test in the root namespace reaches a server (such as
//! chromedriver) listening on a lab host's loopback. Only a filesystem path crosses over.
//!
//! `dns-slow ADDR:PORT RATE` answers at most RATE queries a second and drops the rest: an
//! upstream the resolver's overload bench can saturate.
//!
//! It also plays a DNS-over-TLS resolver (`dot`) and a QUIC echo server and client (`quic`,
//! `quic-get`): see [`secure`].
#![allow(
    clippy::print_stderr,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;

#[path = "lab_peer/secure.rs"]
mod secure;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::svcb::{Alpn, EchConfigList, SVCB, SvcParamKey, SvcParamValue};
use hickory_proto::rr::rdata::{A, AAAA, HTTPS, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const WEB: &str = "198.51.100.10";
const SAFE: &str = "198.51.100.11";
const SAFE_TARGETS: [&str; 4] = [
    "forcesafesearch.google.com.",
    "restrict.youtube.com.",
    "strict.bing.com.",
    "safe.duckduckgo.com.",
];

fn answer(query: &Message) -> Message {
    let mut r = Message::response(query.metadata.id, query.metadata.op_code);
    r.metadata.recursion_available = true;
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.add_queries(query.queries.iter().cloned());
    let Some(q) = query.queries.first() else {
        r.metadata.response_code = ResponseCode::FormErr;
        return r;
    };
    let name = q.name().to_lowercase();
    let text = name.to_ascii();
    if text == "nx.lab." {
        r.metadata.response_code = ResponseCode::NXDomain;
        return r;
    }
    let own = own_address(&text);
    let data = match q.query_type() {
        RecordType::A if own.is_some() => own.map(|ip| RData::A(A(ip))),
        RecordType::AAAA if own.is_some() => None,
        RecordType::A => {
            let ip = if SAFE_TARGETS.contains(&text.as_str()) {
                SAFE
            } else {
                WEB
            };
            Some(RData::A(A::from_str(ip).unwrap()))
        }
        RecordType::AAAA => Some(RData::AAAA(AAAA::from_str("2001:db8:100::10").unwrap())),
        RecordType::TXT if text == "whoami.lab." => {
            Some(RData::TXT(TXT::new(vec!["upstream-inet".into()])))
        }
        RecordType::HTTPS if text == "ech.lab." => Some(RData::HTTPS(HTTPS(SVCB::new(
            1,
            Name::root(),
            vec![
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
                ),
                (
                    SvcParamKey::EchConfigList,
                    SvcParamValue::EchConfigList(EchConfigList(vec![0, 4, 0xfe, 0x0d, 0, 0])),
                ),
            ],
        )))),
        _ => None,
    };
    if let Some(d) = data {
        r.add_answer(Record::from_rdata(q.name().clone(), 300, d));
    }
    r
}

/// `photos.198-51-100-20.ip.lab.` → 198.51.100.20.
fn own_address(name: &str) -> Option<std::net::Ipv4Addr> {
    let rest = name.strip_suffix(".ip.lab.")?;
    let label = rest.rsplit('.').next()?;
    label.replace('-', ".").parse().ok()
}

fn echo(addrs: &[SocketAddr]) {
    let mut threads = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr).expect("bind echo");
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut s = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if s.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        }));
    }
    eprintln!("lab-peer echo ready on {addrs:?}");
    for t in threads {
        let _ = t.join();
    }
}

/// Keeps one connection to an echo server busy for `seconds`: a line every 100 ms, each
/// echoed back within 2 s. Exits 1 if the connection breaks.
fn talk(addr: SocketAddr, seconds: u64) {
    use std::time::{Duration, Instant};
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .unwrap_or_else(|e| {
            eprintln!("talk: cannot connect to {addr}: {e}");
            std::process::exit(1)
        });
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut s = stream;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    eprintln!("talk: connected to {addr}");
    while Instant::now() < end {
        let sent = format!("line {n}\n");
        let mut got = String::new();
        if s.write_all(sent.as_bytes()).is_err()
            || reader.read_line(&mut got).is_err()
            || got != sent
        {
            eprintln!("talk: the connection broke after {n} lines");
            std::process::exit(1);
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("talk: {n} lines echoed");
}

fn relay(path: &std::path::Path, target: SocketAddr) {
    use std::os::unix::net::{UnixListener, UnixStream};
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).expect("bind unix socket");
    eprintln!("lab-peer relay ready: {} → {target}", path.display());
    for unix in listener.incoming().flatten() {
        let Ok(tcp) = std::net::TcpStream::connect(target) else {
            eprintln!("relay: cannot reach {target}");
            continue;
        };
        // Each direction is copied until its end, which is then passed on.
        let (mut unix_in, mut tcp_out) = (unix.try_clone().unwrap(), tcp.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut unix_in, &mut tcp_out);
            let _ = tcp_out.shutdown(std::net::Shutdown::Write);
        });
        let (mut tcp_in, mut unix_out): (_, UnixStream) = (tcp, unix);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut tcp_in, &mut unix_out);
            let _ = unix_out.shutdown(std::net::Shutdown::Write);
        });
    }
}

/// The resolver's answer to one query in wire form, if it reads as one.
fn answer_wire(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    answer(&q).to_vec().ok()
}

/// Answers DNS messages framed with a two-byte length (RFC 1035 over TCP, RFC 7858 over TLS)
/// until the stream ends or says something that is not DNS.
pub(crate) fn serve_dns_stream(mut s: impl Read + Write, answer: fn(&[u8]) -> Option<Vec<u8>>) {
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut buf).is_err() {
            return;
        }
        let Some(out) = answer(&buf) else { return };
        let _ = s.write_all(&(out.len() as u16).to_be_bytes());
        let _ = s.write_all(&out);
        let _ = s.flush();
    }
}

fn dns(addrs: &[SocketAddr]) {
    let mut threads = Vec::new();
    for addr in addrs {
        let udp = UdpSocket::bind(addr).expect("bind udp");
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let _ = udp.send_to(&answer(&q).to_vec().unwrap(), peer);
            }
        }));
        let tcp = TcpListener::bind(addr).expect("bind tcp");
        threads.push(std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                std::thread::spawn(move || serve_dns_stream(stream, answer_wire));
            }
        }));
    }
    eprintln!("lab-peer dns ready on {addrs:?}");
    for t in threads {
        let _ = t.join();
    }
}

fn http(addrs: &[SocketAddr]) {
    let mut threads = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr).expect("bind http");
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut host = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                            host = h.trim().to_owned();
                        }
                        line.clear();
                    }
                    let body = format!("fake site {host}\n");
                    let mut s = reader.into_inner();
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        }));
    }
    eprintln!("lab-peer http ready on {addrs:?}");
    for t in threads {
        let _ = t.join();
    }
}

/// A resolver that can answer only `rate` queries a second over UDP (one thread, a token
/// bucket of a tenth of a second's worth): the rest are dropped, as a saturated upstream
/// drops them. For the resolver's overload bench.
fn dns_slow(addr: SocketAddr, rate: u32) {
    let udp = UdpSocket::bind(addr).expect("bind udp");
    let rate = f64::from(rate.max(1));
    let burst = (rate / 10.0).max(1.0);
    let mut tokens = burst;
    let mut at = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    eprintln!("lab-peer dns-slow ready on {addr} at {rate}/s");
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf) else {
            continue;
        };
        let now = std::time::Instant::now();
        tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(burst);
        at = now;
        if tokens < 1.0 {
            continue;
        }
        tokens -= 1.0;
        let Ok(q) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let _ = udp.send_to(&answer(&q).to_vec().unwrap(), peer);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path_arg = |i: usize| std::path::PathBuf::from(args.get(i).cloned().unwrap_or_default());
    let addr_arg = |i: usize| args.get(i).and_then(|s| s.parse::<SocketAddr>().ok());
    match (args.first().map(String::as_str), addr_arg(1)) {
        (Some("quic"), Some(a)) => {
            let names: Vec<&str> = args.iter().skip(3).map(String::as_str).collect();
            return secure::quic_server(a, &path_arg(2), &names);
        }
        (Some("quic-get"), Some(a)) => {
            let name = args.get(3).map_or("quic.lab", String::as_str);
            return secure::quic_get(a, &path_arg(2), name);
        }
        (Some("relay"), None) => {
            if let Some(target) = addr_arg(2) {
                return relay(&path_arg(1), target);
            }
        }
        _ => {}
    }
    if args.first().map(String::as_str) == Some("dns-slow") {
        match (addr_arg(1), args.get(2).and_then(|s| s.parse().ok())) {
            (Some(a), Some(rate)) => dns_slow(a, rate),
            _ => {
                eprintln!("usage: lab-peer dns-slow ADDR:PORT QUERIES-PER-SECOND");
                std::process::exit(2);
            }
        }
        return;
    }
    if args.first().map(String::as_str) == Some("talk") {
        match (
            args.get(1).and_then(|s| s.parse().ok()),
            args.get(2).and_then(|s| s.parse().ok()),
        ) {
            (Some(a), Some(secs)) => talk(a, secs),
            _ => {
                eprintln!("usage: lab-peer talk ADDR:PORT SECONDS");
                std::process::exit(2);
            }
        }
        return;
    }
    let addrs: Vec<SocketAddr> = args
        .iter()
        .skip(1)
        .map(|a| {
            a.parse()
                .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .expect("ADDR:PORT")
        })
        .collect();
    match args.first().map(String::as_str) {
        Some("dns") => dns(&addrs),
        Some("http") => http(&addrs),
        Some("echo") => echo(&addrs),
        Some("dot") => secure::dot(&addrs, answer_wire),
        _ => {
            eprintln!(
                "usage: lab-peer dns|http|echo|dot ADDR:PORT... | dns-slow ADDR:PORT RATE \
                 | talk ADDR:PORT SECONDS \
                 | quic ADDR:PORT CERT [NAME...] | quic-get ADDR:PORT CERT [NAME] \
                 | relay PATH ADDR:PORT"
            );
            std::process::exit(2);
        }
    }
}

//! The resolver when its upstream falls silent, and for popular names near their end: the
//! real daemon on loopback in front of an upstream whose answers' TTL and silence the test
//! sets. An answer that expired lately is served (TTL 30 s, RFC 8767) rather than SERVFAIL,
//! and counted; a name asked in the last tenth of its TTL is asked upstream again before it
//! expires, so its next asker is answered from the cache. Beyond the questions the forwarder
//! keeps out at once, new names are answered SERVFAIL at once, and cached names still are.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record};

use crate::run::{Daemon, ask_udp, eventually, free_port, query};
use hickory_proto::rr::RecordType;

/// An upstream answering every A question with 192.0.2.9 and the TTL in `ttl`, or nothing
/// while `silent`.
struct Upstream {
    addr: SocketAddr,
    ttl: Arc<AtomicU32>,
    silent: Arc<AtomicBool>,
    asked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start(ttl: u32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let this = Self {
            addr,
            ttl: Arc::new(AtomicU32::new(ttl)),
            silent: Arc::new(AtomicBool::new(false)),
            asked: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (ttl, silent, asked, stop) = (
            Arc::clone(&this.ttl),
            Arc::clone(&this.silent),
            Arc::clone(&this.asked),
            Arc::clone(&this.stop),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                asked.fetch_add(1, Ordering::SeqCst);
                if silent.load(Ordering::SeqCst) {
                    continue;
                }
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.add_queries(q.queries.iter().cloned());
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    ttl.load(Ordering::SeqCst),
                    RData::A("192.0.2.9".parse().unwrap()),
                ));
                let _ = socket.send_to(&r.to_vec().unwrap(), peer);
            }
        });
        this
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn policy(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        "version: 1
school: { name: Loopback School, timezone: Europe/London }
categories:
  social: { domains: [facebook.com] }
groups:
  pupils: { networks: [127.0.0.0/8] }
rules:
  - { name: Pupils off social, groups: [pupils], block: [social] }
gateway:
  dns: { block_response: nxdomain, rate_limit: 1000000 }
",
    )
    .unwrap();
    path
}

fn metrics_text(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn a_and_ttl(m: &Message) -> Option<(String, u32)> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some((a.to_string(), r.ttl)),
        _ => None,
    })
}

/// The daemon in front of `upstream`, once it has answered `www.bbc.co.uk` (which is then
/// cached): its directory, the process, its DNS address and its metrics address.
fn started(upstream: &Upstream) -> (tempfile::TempDir, Daemon, SocketAddr, String) {
    let dir = tempfile::tempdir().unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::loopback(
        &policy(dir.path()),
        &dns.to_string(),
        upstream.addr,
        &dir.path().join("state"),
        &["--metrics-listen", &metrics],
    );
    assert!(
        eventually(20, || ask_udp(dns, "www.bbc.co.uk.").is_some()),
        "the daemon never answered"
    );
    (dir, daemon, dns, metrics)
}

#[test]
fn a_silent_upstream_gets_stale_answers_served() {
    let upstream = Upstream::start(1);
    let (_dir, _daemon, dns, metrics) = started(&upstream);
    upstream.silent.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    // Expired, and nobody answers upstream: the old answer, for 30 s.
    let m = ask_udp(dns, "www.bbc.co.uk.").unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_and_ttl(&m), Some(("192.0.2.9".to_owned(), 30)));
    let text = metrics_text(&metrics);
    assert_eq!(
        metric(&text, "schoolgate_dns_stale_answers_total"),
        1,
        "{text}"
    );
    // A name never answered has nothing to fall back on.
    let m = ask_udp(dns, "www.never.example.").unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        metric(
            &metrics_text(&metrics),
            "schoolgate_dns_upstream_errors_total"
        ) >= 1
    );
}

#[test]
fn popular_names_are_fetched_again_before_they_expire() {
    let upstream = Upstream::start(10);
    let (_dir, _daemon, dns, metrics) = started(&upstream);
    let first = upstream.asked();
    // Within the first nine tenths: from the cache, nothing more.
    std::thread::sleep(Duration::from_secs(5));
    assert!(ask_udp(dns, "www.bbc.co.uk.").is_some());
    assert_eq!(upstream.asked(), first);
    // In the last tenth: still from the cache, and asked upstream again behind it.
    std::thread::sleep(Duration::from_millis(4200));
    let m = ask_udp(dns, "www.bbc.co.uk.").unwrap();
    assert_eq!(a_and_ttl(&m).map(|(_, ttl)| ttl), Some(1));
    assert!(
        eventually(3, || upstream.asked() == first + 1),
        "no prefetch: asked {} times",
        upstream.asked()
    );
    assert_eq!(
        metric(&metrics_text(&metrics), "schoolgate_dns_prefetches_total"),
        1
    );
    // After the first answer's end, the fetched one answers: no trip upstream.
    std::thread::sleep(Duration::from_millis(1500));
    let m = ask_udp(dns, "www.bbc.co.uk.").unwrap();
    assert!(a_and_ttl(&m).is_some_and(|(_, ttl)| ttl > 5), "{m:?}");
    assert_eq!(upstream.asked(), first + 1);
}

#[test]
fn beyond_the_questions_out_new_names_are_shed_with_servfail_and_cached_ones_still_answered() {
    let upstream = Upstream::start(300);
    let (_dir, _daemon, dns, metrics) = started(&upstream);
    upstream.silent.store(true, Ordering::SeqCst);
    // A few questions go unanswered first: each silence doubles the forwarder's wait, so
    // from then on a question out stays out for its whole 3 s.
    let warming: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || ask_udp(dns, &format!("w{i}.silent.example."))))
        .collect();
    for w in warming {
        let m = w.join().unwrap().unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let reader = client.try_clone().unwrap();
    let started = std::time::Instant::now();
    // Only answers within this time are counted: none of the questions out can have been
    // answered by then, so every SERVFAIL seen was shed at once.
    let window = Duration::from_millis(2500);
    let counting = std::thread::spawn(move || {
        let (mut servfail, mut other) = (0u64, 0u64);
        let mut buf = [0u8; 4096];
        while started.elapsed() < window {
            let Ok((n, _)) = reader.recv_from(&mut buf) else {
                continue;
            };
            match Message::from_vec(&buf[..n]).map(|m| m.metadata.response_code) {
                Ok(ResponseCode::ServFail) => servfail += 1,
                _ => other += 1,
            }
        }
        (servfail, other)
    });
    // Twice as many distinct names as may be out at once (4,096), at a pace the socket takes.
    for burst in 0..80u16 {
        for i in 0..100u16 {
            let mut q = query(&format!("n{burst}-{i}.flood.example."), RecordType::A);
            q.metadata.id = burst * 100 + i;
            client.send_to(&q.to_vec().unwrap(), dns).unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Beside them, a cached name is answered from the cache.
    let cached = ask_udp(dns, "www.bbc.co.uk.").unwrap();
    assert_eq!(cached.metadata.response_code, ResponseCode::NoError);
    assert!(
        started.elapsed() < window,
        "the flood took too long to send"
    );
    let (servfail, other) = counting.join().unwrap();
    assert!(
        servfail >= 1000,
        "{servfail} SERVFAIL, {other} others\n{}",
        metrics_text(&metrics)
    );
    assert_eq!(other, 0);
    let shed = metric(
        &metrics_text(&metrics),
        "schoolgate_dns_upstream_shed_total",
    );
    assert!(shed >= servfail, "{shed} shed, {servfail} SERVFAIL");
}

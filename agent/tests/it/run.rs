//! `schoolgate-agent run` on loopback: the real daemon, a fake upstream resolver, queries over
//! UDP and TCP, a policy edit taking effect without a restart, and a clean stop on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use schoolgate_gateway::dns::plan::{EDE_BLOCKED, ede_of};

/// A resolver that answers every A query with 192.0.2.7, except `nx.example`: NXDOMAIN.
pub(crate) struct FakeUpstream {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Queries received.
    asked: Arc<AtomicUsize>,
}

impl FakeUpstream {
    pub(crate) fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let asked = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.metadata.recursion_available = true;
                r.add_queries(q.queries.iter().cloned());
                let query = &q.queries[0];
                if query.name().to_ascii().eq_ignore_ascii_case("nx.example.") {
                    r.metadata.response_code = ResponseCode::NXDomain;
                } else if query.query_type() == RecordType::A {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        120,
                        RData::A("192.0.2.7".parse().unwrap()),
                    ));
                }
                let _ = socket.send_to(&r.to_vec().unwrap(), peer);
            }
        });
        Self { addr, stop, asked }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The daemon as a child process, killed if the test fails before stopping it; its log is
/// kept in a file and printed when the test fails (a daemon that never answered says why).
pub(crate) struct Daemon(pub(crate) Child, tempfile::NamedTempFile);

impl Daemon {
    /// `schoolgate-agent run` on loopback with `policy`, its resolver on `dns` forwarding to
    /// `upstream`, state in `state`, and `extra` flags; no firewall and no inspection.
    pub(crate) fn loopback(
        policy: &std::path::Path,
        dns: &str,
        upstream: SocketAddr,
        state: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_schoolgate-agent"))
            .args(["run", "--policy", policy.to_str().unwrap()])
            .args(["--dns-listen", dns])
            .args(["--upstream", &upstream.to_string()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(extra)
            .args(["--no-firewall", "--no-inspection"])
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self(child, log)
    }
}

impl Drop for Daemon {
    #[allow(clippy::print_stderr)] // the daemon's log, in the failed test's output
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.1.path()).unwrap_or_default();
            let start = log.len().saturating_sub(8000);
            let start = (start..log.len())
                .find(|i| log.is_char_boundary(*i))
                .unwrap_or(0);
            eprintln!("the daemon's log (its end):\n{}", &log[start..]);
        }
    }
}

/// A port free for UDP and TCP on 127.0.0.1 at the moment of asking, never the same twice in
/// a run. Taken below the kernel's ephemeral range (32768 and up), so that a socket some
/// other test or daemon opens on port 0 meanwhile (a forwarder's, a client's) cannot take it
/// before the daemon binds it.
pub(crate) fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(given.len());
        let port = 20_000 + u16::try_from(h.finish() % 12_000).unwrap();
        if given.contains(&port) {
            continue;
        }
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            given.push(port);
            return port;
        }
    }
}

fn policy_text(block_social: bool) -> String {
    let rule = if block_social {
        "  - { name: Pupils off social, groups: [pupils], block: [social] }\n"
    } else {
        ""
    };
    format!(
        "version: 1
school: {{ name: Loopback School, timezone: Europe/London }}
categories:
  social: {{ domains: [facebook.com] }}
groups:
  pupils: {{ networks: [127.0.0.0/8] }}
rules:
  - {{ name: Nothing on example.net, groups: [all], block: [example.net] }}
{rule}gateway:
  dns: {{ block_response: sinkhole }}
  block_page: {{ listen: \"127.0.0.53:80\" }}
"
    )
}

pub(crate) fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.set_edns(Edns::new());
    m
}

pub(crate) fn ask_udp(server: SocketAddr, name: &str) -> Option<Message> {
    send_udp(server, &query(name, RecordType::A))
}

/// `name`'s A records asked of `server` from the address `source`.
pub(crate) fn ask_udp_from(
    source: std::net::IpAddr,
    server: SocketAddr,
    name: &str,
) -> Option<Message> {
    send_udp_from(source, server, &query(name, RecordType::A))
}

fn send_udp(server: SocketAddr, request: &Message) -> Option<Message> {
    send_udp_from([127, 0, 0, 1].into(), server, request)
}

fn send_udp_from(
    source: std::net::IpAddr,
    server: SocketAddr,
    request: &Message,
) -> Option<Message> {
    let socket = UdpSocket::bind((source, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket.send_to(&request.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn ask_tcp(server: SocketAddr, name: &str) -> Message {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let bytes = query(name, RecordType::A).to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(&bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

fn ask_tcp_pipelined(server: SocketAddr, names: &[&str]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut out = Vec::new();
    for name in names {
        let bytes = query(name, RecordType::A).to_vec().unwrap();
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    stream.write_all(&out[..1]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(&out[1..]).unwrap();
    names
        .iter()
        .map(|_| {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            stream.read_exact(&mut buf).unwrap();
            Message::from_vec(&buf).unwrap()
        })
        .collect()
}

fn a_record(m: &Message) -> Option<String> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.to_string()),
        _ => None,
    })
}

/// Polls until `f` is true or `secs` pass.
pub(crate) fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Requests no resolver should accept: truncated, bad label lengths, a compression loop,
/// counts far beyond the bytes, random bytes.
fn malformed() -> Vec<Vec<u8>> {
    let header = |qd: u16, an: u16| {
        let mut h = vec![0x12, 0x34, 0x01, 0x00];
        for c in [qd, an, 0, 0] {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    };
    let mut out = vec![vec![0x12], vec![0x12, 0x34, 0x01]];
    // A label claiming 63 bytes with 3 present.
    let mut bad_label = header(1, 0);
    bad_label.extend_from_slice(&[63, b'a', b'b', b'c']);
    out.push(bad_label);
    // A name that points at itself.
    let mut looped = header(1, 0);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    out.push(looped);
    // 65535 questions and answers announced, one present.
    let mut huge = header(u16::MAX, u16::MAX);
    huge.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    out.push(huge);
    // Bytes from a fixed pseudo-random sequence.
    let mut x: u32 = 0x9e37_79b9;
    for len in [12, 40, 300, 1200] {
        out.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect(),
        );
    }
    out
}

#[test]
fn the_daemon_filters_forwards_reloads_and_stops() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, policy_text(true)).unwrap();
    let port = free_port();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut daemon = Daemon::loopback(
        &policy,
        &server.to_string(),
        upstream.addr,
        &dir.path().join("state"),
        &[],
    );
    assert!(
        eventually(10, || ask_udp(server, "www.bbc.co.uk.").is_some()),
        "the daemon never answered"
    );

    // Allowed names come from upstream; NXDOMAIN passes through.
    let m = ask_udp(server, "www.bbc.co.uk.").unwrap();
    assert_eq!(
        (m.metadata.id, a_record(&m).as_deref()),
        (0x4242, Some("192.0.2.7"))
    );
    // Asked again, in other letters and with another ID, the answer is the one kept: no
    // trip upstream, and the request's ID and question in the answer.
    let before = upstream.asked.load(Ordering::SeqCst);
    let mut again = query("WWW.BBC.co.UK.", RecordType::A);
    again.metadata.id = 0x1111;
    let m = send_udp(server, &again).unwrap();
    assert_eq!(m.metadata.id, 0x1111);
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.BBC.co.UK.");
    assert_eq!(a_record(&m).as_deref(), Some("192.0.2.7"));
    assert!(m.answers[0].ttl <= 120);
    assert_eq!(upstream.asked.load(Ordering::SeqCst), before);
    // Without EDNS the kept answer is another one, without an OPT record.
    let mut plain = query("www.bbc.co.uk.", RecordType::A);
    plain.edns = None;
    let m = send_udp(server, &plain).unwrap();
    assert!(m.edns.is_none());
    assert_eq!(a_record(&m).as_deref(), Some("192.0.2.7"));

    assert_eq!(
        ask_udp(server, "nx.example.")
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );

    // Blocked names are sinkholed at the block page, with the rule named.
    let m = ask_udp(server, "www.facebook.com.").unwrap();
    assert_eq!(a_record(&m).as_deref(), Some("127.0.0.53"));
    // The block page answers, and a device that sends half a request is cut off rather than
    // held on to (a request head must arrive within 10 s).
    let mut page = TcpStream::connect("127.0.0.53:80").unwrap();
    page.write_all(b"GET / HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    page.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 403");
    let mut stalled = TcpStream::connect("127.0.0.53:80").unwrap();
    stalled.write_all(b"GET / HTTP/1.1\r\nHost: x").unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a half-sent request was held for {:?}",
        started.elapsed()
    );
    assert_eq!(
        ede_of(&m),
        Some((
            EDE_BLOCKED,
            "blocked by school rule: Pupils off social".to_owned()
        ))
    );

    // TCP too, and the built-in defences.
    assert_eq!(
        a_record(&ask_tcp(server, "www.facebook.com.")).as_deref(),
        Some("127.0.0.53")
    );
    assert_eq!(
        a_record(&ask_tcp(server, "www.bbc.co.uk.")).as_deref(),
        Some("192.0.2.7")
    );
    // Pipelined (RFC 7766): three questions in one write, the first length split from its
    // message; three answers, in order.
    let answers = ask_tcp_pipelined(
        server,
        &["www.facebook.com.", "www.bbc.co.uk.", "www.example.net."],
    );
    assert_eq!(
        answers.iter().map(a_record).collect::<Vec<_>>(),
        ["127.0.0.53", "192.0.2.7", "127.0.0.53"].map(|a| Some(a.to_owned()))
    );
    assert_eq!(
        ask_udp(server, "use-application-dns.net.")
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );

    // Malformed requests get FORMERR or silence, never a crash; the daemon answers after.
    for garbage in malformed() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        socket.send_to(&garbage, server).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "{garbage:?}"
            );
        }
    }
    assert_eq!(
        a_record(&ask_udp(server, "www.bbc.co.uk.").unwrap()).as_deref(),
        Some("192.0.2.7")
    );

    // Editing the policy on disk takes effect without a restart.
    std::fs::write(&policy, policy_text(false)).unwrap();
    assert!(
        eventually(10, || ask_udp(server, "www.facebook.com.")
            .and_then(|m| a_record(&m))
            .as_deref()
            == Some("192.0.2.7")),
        "the edit was not applied"
    );
    // A kept answer never outlives a block: facebook.com is kept now, and blocked again at
    // once when the rule comes back.
    assert_eq!(
        a_record(&ask_udp(server, "www.facebook.com.").unwrap()).as_deref(),
        Some("192.0.2.7")
    );
    std::fs::write(&policy, policy_text(true)).unwrap();
    assert!(
        eventually(10, || ask_udp(server, "www.facebook.com.")
            .and_then(|m| a_record(&m))
            .as_deref()
            == Some("127.0.0.53")),
        "the kept answer outlived the block"
    );
    std::fs::write(&policy, policy_text(false)).unwrap();
    assert!(
        eventually(10, || ask_udp(server, "www.facebook.com.")
            .and_then(|m| a_record(&m))
            .as_deref()
            == Some("192.0.2.7")),
        "the rule was not lifted again"
    );
    // A broken edit leaves the policy in force.
    std::fs::write(&policy, "version: 1\nschool: {").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        a_record(&ask_udp(server, "www.example.net.").unwrap()).as_deref(),
        Some("127.0.0.53")
    );
    assert_eq!(
        a_record(&ask_udp(server, "www.facebook.com.").unwrap()).as_deref(),
        Some("192.0.2.7")
    );

    // SIGTERM stops it cleanly.
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        eventually(10, || matches!(daemon.0.try_wait(), Ok(Some(_)))),
        "the daemon did not stop"
    );
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0));
}

/// The journal's events of `kind`, as `schoolgate-agent events` prints them.
pub(crate) fn journaled(
    policy: &std::path::Path,
    state: &std::path::Path,
    kind: &str,
) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_schoolgate-agent"))
        .args(["events", "--policy", policy.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn the_daemon_reads_the_roster_and_reports_each_read() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let roster = dir.path().join("roster.csv");
    let state = dir.path().join("state");
    std::fs::write(&roster, "Username,Role\namira.k,Pupil\ngrace.o,Teacher\n").unwrap();
    // The roster's path is relative to the policy's directory. No block page: its fixed
    // address is the other daemon test's.
    std::fs::write(
        &policy,
        "version: 1\nschool: { name: Loopback School, timezone: Europe/London }\n\
         groups:\n  pupils: { directory: [Pupils] }\n\
         gateway:\n  dns: { block_response: nxdomain }\n  roster: roster.csv\n",
    )
    .unwrap();
    let server: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _daemon = Daemon::loopback(&policy, &server.to_string(), upstream.addr, &state, &[]);
    assert!(
        eventually(20, || !journaled(&policy, &state, "directory_loaded")
            .is_empty()),
        "the roster was never reported read"
    );
    assert_eq!(
        journaled(&policy, &state, "directory_loaded")[0]["count"],
        2
    );
    // A bad line: refused with its line and column, and reported. Each new export is written
    // beside the roster and renamed over it, as MIS exports and editors save.
    let save = |text: &str| {
        let next = dir.path().join("roster.csv.new");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &roster).unwrap();
    };
    save("Username,Role\namira.k,Pupil\ngrace.o,governor\n");
    assert!(
        eventually(20, || !journaled(&policy, &state, "directory_rejected")
            .is_empty()),
        "the bad roster was never reported"
    );
    let rejected = &journaled(&policy, &state, "directory_rejected")[0];
    let evidence = rejected["evidence"].as_str().unwrap();
    assert!(
        evidence.ends_with("roster.csv:3:2: the role \"governor\" is neither pupil nor staff (pupil, student, learner; staff, teacher, employee)"),
        "{evidence}"
    );
    assert_eq!(rejected["severity"], "medium");
    // Put right: read again.
    save("Username,Role\namira.k,Pupil\ngrace.o,Teacher\nben.t,pupil\n");
    assert!(
        eventually(20, || journaled(&policy, &state, "directory_loaded")
            .iter()
            .any(|e| e["count"] == 3)),
        "the mended roster was never read"
    );
}

/// The raw answer to `request` over UDP, its ID set to zero.
fn raw_answer(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket.send_to(request, server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let mut out = buf[..n].to_vec();
    out[..2].copy_from_slice(&[0, 0]);
    out
}

#[test]
fn a_blocked_name_asked_again_gets_the_same_answer_from_its_kept_bytes() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let state = dir.path().join("state");
    // Without the block page: its fixed address is the filtering test's, which may run at
    // the same time.
    let text = policy_text(true)
        .replace("block_response: sinkhole", "block_response: nxdomain")
        .replace("  block_page: { listen: \"127.0.0.53:80\" }\n", "");
    assert!(!text.contains("block_page"), "{text}");
    std::fs::write(&policy, text).unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _daemon = Daemon::loopback(&policy, &dns.to_string(), upstream.addr, &state, &[]);
    assert!(eventually(20, || ask_udp(dns, "example.org").is_some()));
    for (name, edns) in [
        ("www.facebook.com", true),
        ("m.facebook.com", false),
        ("Photos.FaceBook.com", true),
    ] {
        let mut q = query(name, RecordType::AAAA);
        if !edns {
            q.edns = None;
        }
        let first = raw_answer(dns, &q.to_vec().unwrap());
        for id in [7u16, 0x4242, 0xffff] {
            q.metadata.id = id;
            q.metadata.recursion_desired = id != 7;
            let again = raw_answer(dns, &q.to_vec().unwrap());
            let mut want = first.clone();
            // The RD flag is the request's.
            want[2] = (want[2] & !1) | u8::from(q.metadata.recursion_desired);
            assert_eq!(again, want, "{name} edns={edns} id={id}");
        }
        let m = Message::from_vec(&first).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.queries[0].name().to_ascii(), format!("{name}."));
        assert_eq!(m.edns.is_some(), edns);
    }
    // Each ask was reported: the first sighting, then its repeats counted.
    assert!(eventually(10, || {
        journaled(&policy, &state, "blocked")
            .iter()
            .filter(|e| e["name"] == "www.facebook.com")
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 2
    }));
}

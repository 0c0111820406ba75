//! RADIUS accounting as FreeRADIUS's `radclient` sends it (what a Wi-Fi controller sends):
//! read, checked against the shared secret, and answered so that radclient accepts the
//! answer's authenticator. A wrong secret attaches nobody and gets no answer. Loopback only;
//! radclient comes from Debian's freeradius-utils (`scripts/setup`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use schoolgate_people::radius::{self, Accounting, RadiusError, Status};

const SECRET: &str = "schoolgate-test-secret";

/// A one-shot accounting server on loopback: what it read from each packet.
fn server() -> (u16, mpsc::Receiver<Result<Accounting, RadiusError>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; radius::MAX_PACKET];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let read = radius::parse_request(&buf[..n], SECRET.as_bytes());
            if let Ok(request) = &read {
                let _ = socket.send_to(&radius::response(request, SECRET.as_bytes()), peer);
            }
            if tx.send(read).is_err() {
                break;
            }
        }
    });
    (port, rx)
}

/// Runs radclient once (one try, a one-second wait) with `attributes`; whether it accepted
/// the answer.
fn radclient(port: u16, secret: &str, attributes: &str) -> bool {
    let mut child = Command::new("radclient")
        .args(["-D", "/usr/share/freeradius", "-r", "1", "-t", "1", "-x"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["acct", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run radclient ({e}): run scripts/setup, which installs freeradius-utils")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attributes.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    out.status.success() && said.contains("Accounting-Response")
}

#[test]
fn a_controllers_accounting_is_read_and_answered() {
    let (port, read) = server();
    let start = "Acct-Status-Type = Start\n\
                 User-Name = \"SCHOOL\\\\amira.k\"\n\
                 Framed-IP-Address = 10.10.4.21\n\
                 Framed-IPv6-Address = fd00:10:4::2a\n\
                 Calling-Station-Id = \"52-54-00-12-34-56\"\n\
                 Acct-Session-Id = \"4D2A0001\"\n\
                 NAS-Identifier = \"wlc-1\"\n";
    assert!(
        radclient(port, SECRET, start),
        "radclient did not accept the answer"
    );
    let a = read.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(a.status, Status::Start);
    assert_eq!(a.user.as_deref(), Some("SCHOOL\\amira.k"));
    assert_eq!(a.ipv4, Some(Ipv4Addr::new(10, 10, 4, 21)));
    assert_eq!(a.ipv6, Some("fd00:10:4::2a".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(a.mac, Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
    assert_eq!(a.session.as_deref(), Some("4D2A0001"));
    assert_eq!(a.nas.as_deref(), Some("wlc-1"));

    let stop = "Acct-Status-Type = Stop\nUser-Name = \"amira.k\"\n\
                Framed-IP-Address = 10.10.4.21\nAcct-Session-Time = 3600\n";
    assert!(radclient(port, SECRET, stop));
    let a = read.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (a.status, a.user.as_deref()),
        (Status::Stop, Some("amira.k"))
    );

    // The controller's secret mistyped: nothing read, nothing answered.
    assert!(!radclient(port, "not-the-secret", start));
    let refused = read.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(refused, Err(RadiusError::Authenticator));
}

//! `lab-peer relay` joins a Unix socket to a TCP server, both ways, until each side ends:
//! what lets a test (or the demonstration) in the root namespace reach a server on a lab
//! host's loopback. Run here on this machine's own loopback. Being an integration test, it
//! also makes `cargo test --workspace` build `lab-peer` and `lab-flood` for the end-to-end
//! tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn relay_carries_both_directions_and_each_end() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("relay.sock");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_lab-peer"))
        .arg("relay")
        .arg(&socket)
        .arg(addr.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server answers one line with its upper-case form, then closes.
    let served = std::thread::spawn(move || {
        let (stream, _) = server.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut stream = stream;
        stream.write_all(line.to_uppercase().as_bytes()).unwrap();
        line
    });
    let mut client = UnixStream::connect(&socket).unwrap();
    client.write_all(b"hello through the relay\n").unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    relay.kill().unwrap();
    let _ = relay.wait();
    assert_eq!(served.join().unwrap(), "hello through the relay\n");
    assert_eq!(answer, "HELLO THROUGH THE RELAY\n");
}

//! OpenVPN at both ends of the lab: a server on the "internet" and a client on a LAN host,
//! sharing one self-signed certificate (enough for the handshake the gateway sees).

use crate::Lab;

/// An interface name unique to this test process: tun devices are per namespace, but names
/// are kept apart all the same.
fn device(side: &str) -> String {
    format!("ov{side}{}", std::process::id() % 100_000)
}

fn common(lab: &Lab, side: &str) -> Vec<String> {
    let d = lab.dir.path().display().to_string();
    [
        "openvpn",
        "--dev",
        &device(side),
        "--dev-type",
        "tun",
        "--proto",
        "udp",
        "--ca",
        &format!("{d}/vpn.pem"),
        "--cert",
        &format!("{d}/vpn.pem"),
        "--key",
        &format!("{d}/vpn.key"),
        "--verb",
        "3",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Makes the certificate and starts the server on `address`:1194/udp in `inet`, as
/// `openvpn-server`.
pub fn start_server(lab: &mut Lab, address: &str) {
    let d = lab.dir.path().display().to_string();
    let made = lab.exec(
        "inet",
        &[
            "sh",
            "-c",
            &format!(
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                 -subj /CN=lab-vpn -days 1 -keyout {d}/vpn.key -out {d}/vpn.pem 2>/dev/null"
            ),
        ],
    );
    assert!(made.status.success(), "openssl req failed");
    let mut args = common(lab, "s");
    args.extend(
        [
            "--local",
            address,
            "--port",
            "1194",
            "--tls-server",
            "--dh",
            "none",
            "--ifconfig",
            "10.98.0.1",
            "10.98.0.2",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn("inet", "openvpn-server", &args);
}

/// The command line of a client of the server at `address`.
pub fn client(lab: &Lab, address: &str) -> Vec<String> {
    let mut args = common(lab, "c");
    args.extend(
        [
            "--remote",
            address,
            "1194",
            "--nobind",
            "--tls-client",
            "--ifconfig",
            "10.98.0.2",
            "10.98.0.1",
        ]
        .map(str::to_owned),
    );
    args
}

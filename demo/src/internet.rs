//! The demonstration's "internet", in the lab's `inet` namespace: the public resolver the
//! policy forwards to, web sites (every name the resolver does not know better leads to one
//! fake site that says which name it was asked for), a resolver that answers TLS on 443 for
//! a DNS-over-HTTPS app with its address built in, an OpenVPN server and an HTTP proxy.

use schoolgate_lab::{Lab, SAFE_WEB, WEB, vpn, workspace_bin};

use crate::school::{PROXY, RESOLVER, VPN_SERVER};

/// Starts every service; each logs to its own file in the lab's directory.
pub(crate) fn start(lab: &mut Lab) -> Result<(), std::io::Error> {
    let peer = workspace_bin("lab-peer").display().to_string();
    lab.spawn(
        "inet",
        "resolver",
        &[&peer, "dns", &format!("{RESOLVER}:53")],
    );
    lab.spawn(
        "inet",
        "web",
        &[
            &peer,
            "http",
            &format!("{WEB}:80"),
            &format!("{SAFE_WEB}:80"),
        ],
    );
    lab.spawn("inet", "doh", &[&peer, "dot", &format!("{RESOLVER}:443")]);
    vpn::start_server(lab, VPN_SERVER);
    let conf = lab.path("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "User nobody\nGroup nogroup\nPort 8888\nListen {PROXY}\nConnectPort 443\nMaxClients 10\n"
        ),
    )?;
    lab.spawn(
        "inet",
        "proxy",
        &["tinyproxy", "-d", "-c", &conf.display().to_string()],
    );
    Ok(())
}

//! Listening to the packets the table logs (NFLOG over netlink), on a thread of its own.
//! What they mean is read by [`schoolgate_gateway::firewall::logged`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{ConfigCmd, ConfigMode, config_request};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};
use tracing::{debug, warn};

use schoolgate_gateway::firewall::logged::{Logged, SNAPLEN, packets};

/// How often a waiting thread looks whether it should stop.
const POLL: Duration = Duration::from_millis(250);

/// The listening thread; dropping it does not stop it, [`Listener::stop`] does.
#[derive(Debug)]
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Binds to NFLOG `group` (failing if another program holds it) and hands every logged
    /// packet to `on_packet` on a new thread.
    pub fn start(
        group: u16,
        mut on_packet: impl FnMut(Logged) + Send + 'static,
    ) -> std::io::Result<Self> {
        let socket = bind(group)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("nflog".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stopping.load(Ordering::Relaxed) {
                    match socket.recv(&mut &mut buf[..], 0) {
                        Ok(n) => {
                            for p in packets(buf.get(..n).unwrap_or_default()) {
                                on_packet(p);
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            // ENOBUFS: the kernel dropped logs while this thread was busy.
                            debug!(error = %e, "nflog receive");
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(group: u16) -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let _ = socket.set_rx_buf_sz(4 << 20);
    configure(
        &socket,
        config_request(
            NetfilterProtoFamily::Unspec,
            group,
            vec![
                ConfigCmd::Bind.into(),
                ConfigMode::new_packet(SNAPLEN).into(),
            ],
        ),
    )?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, i64::try_from(POLL.as_micros()).unwrap_or(250_000)),
    )
    .map_err(std::io::Error::from)?;
    Ok(socket)
}

/// Sends one configuration request and reads the kernel's acknowledgement.
fn configure(socket: &Socket, request: NetlinkMessage<NetfilterMessage>) -> std::io::Result<()> {
    let mut out = vec![0u8; request.buffer_len()];
    request.serialize(&mut out);
    socket.send(&out, 0)?;
    let mut buf = vec![0u8; 8_192];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    let reply = NetlinkMessage::<NetfilterMessage>::deserialize(buf.get(..n).unwrap_or_default())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => {
            let err = e.to_io();
            warn!(error = %err, "NFLOG configuration refused");
            Err(err)
        }
        _ => Ok(()),
    }
}

//! Live capture on a LAN interface: an AF_PACKET socket made here (so the kernel filter is
//! attached before the socket is bound and not one unfiltered packet slips in), handed to
//! pnet's datalink channel, which binds it to the interface and reads it. The same channel's
//! sender writes the resets inspection sends to devices.

use std::io;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};
use schoolgate_inspect::filter::{self, Framing};
use schoolgate_inspect::packet::LinkType;
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use super::{Frame, Frames, Next};

/// Every protocol (`ETH_P_ALL`), in network byte order as `socket(2)` wants it.
const ETH_P_ALL: u16 = 0x0003;
/// Large enough for a GRO/GSO frame, which the kernel hands up whole.
pub const READ_BUFFER: usize = 64 * 1024;
/// The socket's kernel receive buffer: room for a burst of flow starts while the reader is
/// busy.
const SOCKET_BUFFER: usize = 8 << 20;
/// How long a read waits before the reader checks whether to stop.
const WAIT: Duration = Duration::from_millis(200);

/// Why capture cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveCaptureError {
    #[error("no network interface named {0:?}")]
    NoInterface(String),
    #[error("interface {0:?} has no MAC address (capture needs an Ethernet interface)")]
    NoMac(String),
    #[error("cannot open a packet socket on {interface}: {source}")]
    Socket {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("pnet gave a channel of an unknown kind on {0}")]
    Channel(String),
}

/// Frames read from one interface.
pub struct Live {
    rx: Box<dyn DataLinkReceiver>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// Writes whole Ethernet frames out of the interface capture reads.
pub struct Sender {
    tx: Box<dyn DataLinkSender>,
    /// The interface's own MAC: the source of frames the gateway sends.
    pub mac: [u8; 6],
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("frame larger than the write buffer")))
    }
}

/// Opens capture on `interface`, with the kernel filter attached unless `unfiltered`.
pub fn open(interface: &str, unfiltered: bool) -> Result<(Live, Sender), LiveCaptureError> {
    let iface: NetworkInterface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == interface)
        .ok_or_else(|| LiveCaptureError::NoInterface(interface.to_owned()))?;
    let mac = iface
        .mac
        .map(|m| m.octets())
        .ok_or_else(|| LiveCaptureError::NoMac(interface.to_owned()))?;
    let socket_err = |source| LiveCaptureError::Socket {
        interface: interface.to_owned(),
        source,
    };
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )
    .map_err(socket_err)?;
    // A smaller buffer than asked for is still a working one.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    if !unfiltered {
        let program: Vec<SockFilter> = filter::program(Framing::Ethernet)
            .iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        socket.attach_filter(&program).map_err(socket_err)?;
    }
    let config = Config {
        read_buffer_size: READ_BUFFER,
        write_buffer_size: READ_BUFFER,
        read_timeout: Some(WAIT),
        write_timeout: Some(WAIT),
        // The gateway is every device's next hop: the frames that matter are addressed to it.
        promiscuous: false,
        // pnet owns the descriptor from here and closes it.
        socket_fd: Some(socket.into_raw_fd()),
        ..Config::default()
    };
    match pnet_datalink::channel(&iface, config) {
        Ok(Channel::Ethernet(tx, rx)) => Ok((Live { rx }, Sender { tx, mac })),
        Ok(_) => Err(LiveCaptureError::Channel(interface.to_owned())),
        Err(source) => Err(socket_err(source)),
    }
}

impl Frames for Live {
    fn next(&mut self) -> io::Result<Next<'_>> {
        match self.rx.next() {
            Ok(data) => {
                let time = crate::clock::since_epoch();
                Ok(Next::Frame(Frame {
                    time,
                    link: LinkType::Ethernet,
                    data,
                }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(Next::Idle)
            }
            Err(e) => Err(e),
        }
    }
}

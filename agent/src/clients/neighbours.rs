//! The kernel's neighbour table (ARP for IPv4, NDP for IPv6), read over rtnetlink: which MAC
//! is behind which address on the LAN.
//!
//! [`parse`] turns netlink reply bytes into entries without I/O; [`dump`] asks the kernel.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use schoolgate_engine::MacAddr;

/// What one read of netlink messages held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Entries added or updated, with a usable MAC.
    pub entries: Vec<(IpAddr, MacAddr)>,
    /// Addresses whose entry was deleted or became unusable (failed, incomplete).
    pub removed: Vec<IpAddr>,
    /// The dump is complete.
    pub done: bool,
}

/// Reads the neighbour entries in one buffer of netlink messages. Entries whose MAC is not
/// known (incomplete, failed) or is not Ethernet are left out.
pub fn parse(mut bytes: &[u8]) -> io::Result<Batch> {
    let mut out = Batch::default();
    while !bytes.is_empty() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let len = msg.header.length as usize;
        match msg.payload {
            NetlinkPayload::Done(_) => out.done = true,
            // A negative errno; the kernel never sends i32::MIN, but the bytes could say it
            // (the library's own conversion overflows on it).
            NetlinkPayload::Error(e) => {
                return Err(io::Error::from_raw_os_error(e.raw_code().saturating_abs()));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => match entry(&n) {
                Some(e) => out.entries.push(e),
                None => out.removed.extend(destination(&n)),
            },
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n)) => {
                out.removed.extend(destination(&n));
            }
            _ => {}
        }
        if len == 0 {
            break;
        }
        // Messages are padded to 4 bytes.
        let step = (len + 3) & !3;
        bytes = bytes.get(step..).unwrap_or_default();
    }
    Ok(out)
}

fn destination(n: &NeighbourMessage) -> Option<IpAddr> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

fn entry(n: &NeighbourMessage) -> Option<(IpAddr, MacAddr)> {
    if matches!(
        n.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    ) {
        return None;
    }
    let ip = destination(n)?;
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    })?;
    (mac != [0; 6]).then_some((ip, MacAddr(mac)))
}

/// The rtnetlink multicast group of neighbour changes (`RTMGRP_NEIGH`).
const RTMGRP_NEIGH: u32 = 4;

/// Listens for changes to the neighbour table and hands each batch to `apply`, until
/// `apply` returns `false` or the socket fails. Blocks: run it on its own thread.
pub fn listen(mut apply: impl FnMut(Batch) -> bool) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, RTMGRP_NEIGH))?;
    loop {
        let (bytes, _) = socket.recv_from_full()?;
        match parse(&bytes) {
            Ok(batch) => {
                if !apply(batch) {
                    return Ok(());
                }
            }
            Err(e) => tracing::debug!(error = %e, "neighbour notification"),
        }
    }
}

/// Asks the kernel for its whole neighbour table (this network namespace's).
pub fn dump() -> io::Result<Vec<(IpAddr, MacAddr)>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetNeighbour(
            NeighbourMessage::default(),
        )),
    );
    request.finalize();
    let mut buf = vec![0u8; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut entries = Vec::new();
    loop {
        let (reply, _) = socket.recv_from_full()?;
        if reply.is_empty() {
            break;
        }
        let batch = parse(&reply)?;
        entries.extend(batch.entries);
        if batch.done {
            break;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage};
    use netlink_packet_route::AddressFamily;

    fn message(payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), payload);
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn neighbour(ip: IpAddr, mac: &[u8], state: NeighbourState) -> Vec<u8> {
        let mut n = NeighbourMessage::default();
        n.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        n.header.state = state;
        n.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        message(NetlinkPayload::from(RouteNetlinkMessage::NewNeighbour(n)))
    }

    #[test]
    fn reads_reachable_and_stale_entries_only() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let mut bytes = neighbour(
            "10.77.0.30".parse().unwrap(),
            &mac,
            NeighbourState::Reachable,
        );
        bytes.extend(neighbour(
            "2001:db8:77::30".parse().unwrap(),
            &mac,
            NeighbourState::Stale,
        ));
        bytes.extend(neighbour(
            "10.77.0.31".parse().unwrap(),
            &[0; 6],
            NeighbourState::Failed,
        ));
        bytes.extend(neighbour(
            "10.77.0.32".parse().unwrap(),
            &[1, 2, 3],
            NeighbourState::Reachable,
        ));
        let batch = parse(&bytes).unwrap();
        assert!(!batch.done);
        // Failed, or without an Ethernet MAC: not usable, so forgotten.
        assert_eq!(
            batch.removed,
            vec![
                "10.77.0.31".parse::<IpAddr>().unwrap(),
                "10.77.0.32".parse().unwrap()
            ]
        );
        assert_eq!(
            batch.entries,
            vec![
                ("10.77.0.30".parse().unwrap(), MacAddr(mac)),
                ("2001:db8:77::30".parse().unwrap(), MacAddr(mac)),
            ]
        );
        let done = message(NetlinkPayload::Done(DoneMessage::default()));
        assert!(parse(&done).unwrap().done);
        // Truncated input is an error, not a panic.
        assert!(parse(bytes.get(..7).unwrap()).is_err());
    }

    #[test]
    fn an_error_message_is_an_error_whatever_its_code() {
        for code in [-1, i32::MIN, 5] {
            let mut error = ErrorMessage::default();
            error.code = std::num::NonZeroI32::new(code);
            let err = parse(&message(NetlinkPayload::Error(error))).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(code.saturating_abs()));
        }
    }

    /// The test's own namespace has at least a loopback; the dump must succeed (it may be
    /// empty: loopback has no neighbours).
    #[test]
    fn dump_asks_the_kernel() {
        dump().unwrap();
    }
}

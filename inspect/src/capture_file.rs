//! Capture files (classic pcap and pcapng), read from bytes already in memory: each frame
//! with its time and link type. The container formats are pcap-file's; this module only
//! turns its blocks into frames the same pipeline as live capture can take.

use std::borrow::Cow;
use std::time::Duration;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};

use crate::packet::LinkType;

/// A frame from a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Since the Unix epoch, as the capture recorded it.
    pub time: Duration,
    pub link: LinkType,
    pub data: Cow<'a, [u8]>,
}

/// Why a capture could not be read (further).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureFileError {
    #[error("not a pcap or pcapng file (first bytes {0:02x?})")]
    Format([u8; 4]),
    #[error(
        "link type {0} is not one inspection reads (Ethernet, raw IP, Linux cooked, BSD loopback)"
    )]
    LinkType(u32),
    #[error("damaged capture after {frames} frames: {source}")]
    Damaged {
        frames: usize,
        #[source]
        source: pcap_file::PcapError,
    },
}

/// Every frame of a pcap or pcapng capture held in `bytes`, in file order. Frames on an
/// interface whose link type is not read are skipped; a damaged block ends the capture
/// with an error after the frames before it.
pub fn frames(bytes: &[u8]) -> Result<Vec<Frame<'_>>, CaptureFileError> {
    let magic: [u8; 4] = bytes
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .unwrap_or_default();
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => pcapng(bytes),
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d] => pcap(bytes),
        other => Err(CaptureFileError::Format(other)),
    }
}

fn pcap(bytes: &[u8]) -> Result<Vec<Frame<'_>>, CaptureFileError> {
    let damaged = |frames, source| CaptureFileError::Damaged { frames, source };
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| damaged(0, e))?;
    let number = u32::from(parser.header().datalink);
    let link = LinkType::from_number(number).ok_or(CaptureFileError::LinkType(number))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (next, packet) = parser
            .next_packet(rest)
            .map_err(|e| damaged(out.len(), e))?;
        out.push(Frame {
            time: packet.timestamp,
            link,
            data: packet.data,
        });
        rest = next;
    }
    Ok(out)
}

fn pcapng(bytes: &[u8]) -> Result<Vec<Frame<'_>>, CaptureFileError> {
    let damaged = |frames, source| CaptureFileError::Damaged { frames, source };
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| damaged(0, e))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (next, block) = parser.next_block(rest).map_err(|e| damaged(out.len(), e))?;
        rest = next;
        let (time, data, link) = match block {
            Block::EnhancedPacket(p) => {
                let interface = parser.packet_interface(&p);
                let link = interface.map(|i| u32::from(i.linktype));
                let resolution = interface.and_then(|i| {
                    i.options.iter().find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    })
                });
                (scale(p.timestamp, resolution), p.data, link)
            }
            Block::SimplePacket(p) => {
                let link = parser.interfaces().first().map(|i| u32::from(i.linktype));
                (Duration::ZERO, p.data, link)
            }
            _ => continue,
        };
        if let Some(link) = link.and_then(LinkType::from_number) {
            out.push(Frame { time, link, data });
        }
    }
    Ok(out)
}

/// pcap-file hands an enhanced packet's timestamp over as that many nanoseconds, whatever
/// the interface's resolution (`if_tsresol`: 10^-n seconds, or 2^-n with the top bit set;
/// microseconds when absent). This turns the ticks into time.
fn scale(raw: Duration, resolution: Option<u8>) -> Duration {
    let ticks = raw.as_nanos();
    let nanos = match resolution.unwrap_or(6) {
        r if r & 0x80 != 0 => ticks.checked_mul(1_000_000_000).map(|t| t >> (r & 0x7f)),
        r if r <= 9 => ticks.checked_mul(10u128.pow(9 - u32::from(r))),
        r => Some(ticks / 10u128.pow(u32::from(r.min(38)) - 9)),
    };
    Duration::from_nanos(u64::try_from(nanos.unwrap_or(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_classic_pcap_of_raw_ip_frames() {
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&101u32.to_le_bytes());
        for (sec, data) in [(10u32, &b"\x45abc"[..]), (11, b"\x60de")] {
            file.extend_from_slice(&sec.to_le_bytes());
            file.extend_from_slice(&500u32.to_le_bytes());
            file.extend_from_slice(&(data.len() as u32).to_le_bytes());
            file.extend_from_slice(&(data.len() as u32).to_le_bytes());
            file.extend_from_slice(data);
        }
        let frames = frames(&file).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].link, LinkType::RawIp);
        assert_eq!(frames[0].time, Duration::new(10, 500_000));
        assert_eq!(&frames[1].data[..], b"\x60de");

        // Cut inside the second record: the first survives, and the error says how many.
        let cut = &file[..file.len() - 2];
        assert!(matches!(
            super::frames(cut),
            Err(CaptureFileError::Damaged { frames: 1, .. })
        ));
    }

    #[test]
    fn pcapng_ticks_become_time() {
        let ticks = Duration::from_nanos(1_600_000_000_123_456);
        assert_eq!(
            scale(ticks, None),
            Duration::new(1_600_000_000, 123_456_000)
        );
        assert_eq!(scale(ticks, Some(9)), ticks);
        assert_eq!(
            scale(Duration::from_nanos(1 << 20), Some(0x80 | 20)),
            Duration::from_secs(1)
        );
        assert_eq!(
            scale(Duration::from_nanos(5_000), Some(12)),
            Duration::from_nanos(5)
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert!(matches!(
            frames(b"GIF89a"),
            Err(CaptureFileError::Format(_))
        ));
        assert!(matches!(
            frames(b""),
            Err(CaptureFileError::Format([0, 0, 0, 0]))
        ));
        let mut usb = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        usb.extend_from_slice(&[0; 8]);
        usb.extend_from_slice(&65535u32.to_le_bytes());
        usb.extend_from_slice(&189u32.to_le_bytes());
        assert!(matches!(frames(&usb), Err(CaptureFileError::LinkType(189))));
    }
}

//! Where frames come from: a LAN interface (`live`, pnet on an AF_PACKET socket with the
//! kernel filter attached) or a capture file (`FileFrames`). Both sit behind [`Frames`], so
//! the inspection pipeline neither knows nor cares which one feeds it.

pub mod live;

use std::io;
use std::time::Duration;

use schoolgate_inspect::capture_file;
use schoolgate_inspect::packet::LinkType;

/// One frame and when it was captured (since the Unix epoch).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub time: Duration,
    pub link: LinkType,
    pub data: &'a [u8],
}

/// What a source has next.
#[derive(Debug)]
pub enum Next<'a> {
    Frame(Frame<'a>),
    /// Nothing arrived within the source's wait; ask again (after checking whether to stop).
    Idle,
    /// The source is exhausted (the end of a file).
    End,
}

/// A source of frames, read on one thread.
pub trait Frames: Send {
    fn next(&mut self) -> io::Result<Next<'_>>;
}

/// The frames of a capture file already in memory, with the times it recorded.
#[derive(Debug)]
pub struct FileFrames<'a> {
    frames: std::vec::IntoIter<capture_file::Frame<'a>>,
    current: Option<capture_file::Frame<'a>>,
}

impl<'a> FileFrames<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, capture_file::CaptureFileError> {
        Ok(Self {
            frames: capture_file::frames(bytes)?.into_iter(),
            current: None,
        })
    }
}

impl Frames for FileFrames<'_> {
    fn next(&mut self) -> io::Result<Next<'_>> {
        self.current = self.frames.next();
        Ok(match &self.current {
            Some(f) => Next::Frame(Frame {
                time: f.time,
                link: f.link,
                data: &f.data,
            }),
            None => Next::End,
        })
    }
}

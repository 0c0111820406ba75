//! `replay` and `watch`: the inspection pipeline over a capture file or a live interface,
//! each observation judged by the policy and printed, as text or JSON lines, and nothing
//! acted on. The same [`Inspector`] and [`judge`] run in the daemon, through the same
//! [`Pipeline`]; only the source of frames and what follows the verdict differ.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use schoolgate_engine::{Client, MacAddr, Policy};
use schoolgate_inspect::capture_file::CaptureFileError;
use schoolgate_inspect::inspector::{Config, Observation};

use crate::capture::{FileFrames, Frames, Next};
use crate::inspection::Pipeline;
use schoolgate_inspect::judge::{Verdict, judge};
use serde::Serialize;

/// How to print observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// How to replay.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Judge every observation at this instant; otherwise at the time it was captured.
    pub at: Option<Timestamp>,
    pub format: Format,
    /// Run the capture socket's kernel filter over each frame first, as the live capture
    /// does; frames it drops are counted, not inspected.
    pub filter: bool,
}

/// What a replay went through.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Every frame read (from an interface: every frame the kernel filter passed).
    pub packets: u64,
    /// Frames the kernel filter dropped (with [`Options::filter`]).
    pub filtered: u64,
    pub flows: u64,
    pub observations: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureFileError),
    #[error("cannot write the output: {0}")]
    Write(#[from] io::Error),
}

/// One printed observation (`--json`): the fields the console and tests read.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub ts: String,
    pub client: String,
    pub server: String,
    pub transport: &'static str,
    pub name: Option<&'a str>,
    pub app: Option<&'a str>,
    pub category: Option<&'a str>,
    pub technique: Option<&'static str>,
    pub action: &'static str,
    pub evidence: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<&'a str>,
}

impl<'a> Line<'a> {
    pub fn new(obs: &'a Observation, verdict: &Verdict<'a>) -> Self {
        let ts = instant(obs.time).map(|t| t.to_string()).unwrap_or_default();
        Self {
            ts,
            client: obs.client.to_string(),
            server: obs.server.to_string(),
            transport: obs.carrier.as_str(),
            name: obs.name.as_deref(),
            app: verdict.app,
            category: verdict.category,
            technique: verdict.technique.map(|t| t.as_str()),
            action: verdict.action.as_str(),
            evidence: &obs.evidence,
            ja4: obs.ja4.as_deref(),
        }
    }

    fn text(&self) -> String {
        let dash = |o: Option<&str>| o.unwrap_or("-").to_owned();
        format!(
            "{} {} -> {} {} {} app={} category={} technique={} action={}",
            self.ts,
            self.client,
            self.server,
            self.transport,
            dash(self.name),
            dash(self.app),
            dash(self.category),
            dash(self.technique),
            self.action
        )
    }
}

/// Inspects every frame of the capture in `bytes` and writes one line per observation.
pub fn replay(
    policy: &Policy,
    bytes: &[u8],
    options: Options,
    out: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    let mut frames = FileFrames::new(bytes)?;
    observe(policy, &mut frames, options, None, out)
}

/// Inspects frames from `frames` until it ends or `until` passes, and writes one line per
/// observation.
pub fn observe(
    policy: &Policy,
    frames: &mut dyn Frames,
    options: Options,
    until: Option<Instant>,
    out: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    let Options { at, format, filter } = options;
    let mut pipeline = Pipeline::new(Config::default(), filter);
    loop {
        if until.is_some_and(|u| crate::clock::instant() >= u) {
            break;
        }
        let frame = match frames.next()? {
            Next::Frame(f) => f,
            // A quiet moment: show what was seen so far.
            Next::Idle => {
                out.flush()?;
                continue;
            }
            Next::End => break,
        };
        for obs in pipeline.frame(frame).drain(..) {
            let now = at.unwrap_or_else(|| instant(obs.time).unwrap_or(Timestamp::UNIX_EPOCH));
            let client = Client::new(obs.client.ip(), obs.client_mac.map(MacAddr));
            let verdict = judge(policy, &client, policy.identify(&client), &obs, now, false);
            let line = Line::new(&obs, &verdict);
            match format {
                Format::Json => {
                    serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
                    out.write_all(b"\n")?;
                }
                Format::Text => writeln!(out, "{}", line.text())?,
            }
        }
    }
    out.flush()?;
    let stats = pipeline.inspector().stats;
    Ok(Summary {
        packets: stats.packets + stats.not_ip + pipeline.filtered,
        filtered: pipeline.filtered,
        flows: pipeline.inspector().table().created,
        observations: stats.observations,
    })
}

/// A capture time as an instant, if it is one jiff can hold.
fn instant(time: Duration) -> Option<Timestamp> {
    Timestamp::new(
        i64::try_from(time.as_secs()).ok()?,
        i32::try_from(time.subsec_nanos()).ok()?,
    )
    .ok()
}

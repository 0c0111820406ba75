//! What the agent does about what its detectors saw. A name the resolver refused and a
//! connection inspection ended are one thing to report, [`blocked`], whichever saw it; a
//! bypass attempt is reported and answered by [`crate::bypass`]. The sender (`Who`) is
//! worked out once by the detector and handed in.

use jiff::Timestamp;
use schoolgate_engine::Policy;

use crate::events::{Event, Kind, Severity, Ticket};
use crate::shared::{Shared, Who};

/// A name or connection a rule blocked, as the resolver or inspection saw it.
#[derive(Debug, Clone, Default)]
pub struct Blocked {
    /// The name asked for or seen (bounded by the caller).
    pub name: Option<String>,
    pub rule: Option<String>,
    pub category: Option<String>,
    /// Where the device was trying to reach, for a connection.
    pub destination: Option<String>,
    /// What was seen, in plain words.
    pub evidence: String,
}

/// Reports `blocked` for `who`: a first sighting goes to the journal at once, repeats are
/// counted. The ticket of the first sighting, which the resolver waits on before it answers.
pub fn blocked(
    shared: &Shared,
    policy: &Policy,
    who: &Who,
    now: Timestamp,
    blocked: Blocked,
) -> Option<Ticket> {
    let mut e = Event::new(Kind::Blocked, now, Severity::Low);
    (e.device, e.group) = shared.describe(policy, who, now);
    e.name = blocked.name;
    e.rule = blocked.rule;
    e.category = blocked.category;
    e.destination = blocked.destination;
    e.evidence = Some(blocked.evidence);
    shared.events.sighting(e)
}

//! Events: what the agent tells the safeguarding lead and IT staff.
//!
//! - [`event`]: the event and its wire form.
//! - [`aggregate`]: many sightings into one event; who was already seen today.
//! - [`sink`]: the channel to a writer task and the JSON-lines file it writes.

pub mod aggregate;
pub mod event;
pub mod sink;

pub use event::{DeviceInfo, Event, Kind, Severity, Technique, bounded};
pub use sink::{Events, JOURNAL_WAIT, Ticket};

//! Events: what the agent tells the safeguarding lead and IT staff.
//!
//! The event itself, its kinds and bounds are the contract's (`schoolgate-contract`),
//! shared with the console.
//!
//! - [`aggregate`]: many sightings into one event; who was already seen today.
//! - [`sink`]: the channel to a writer task and the JSON-lines file it writes.

pub use schoolgate_gateway::events::aggregate;
pub mod sink;

pub use schoolgate_contract::text::bounded;
pub use schoolgate_contract::{DeviceInfo, Event, Kind, Severity, Technique};
pub use sink::{Events, JOURNAL_WAIT, Ticket};

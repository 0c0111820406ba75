//! Events: what the agent tells the safeguarding lead and IT staff.
//!
//! The event itself, its kinds and bounds are the contract's (`schoolgate-contract`),
//! shared with the console; aggregating many sightings into one event is the gateway
//! core's (`schoolgate_gateway::events::aggregate`).
//!
//! - [`queue`]: what the services call ([`Events`]): the bounded queue to the writer, the
//!   tickets a blocked answer waits on, and the losses counted.

pub mod queue;

pub use queue::{Events, JOURNAL_WAIT, Ticket};
pub use schoolgate_contract::text::bounded;
pub use schoolgate_contract::{DeviceInfo, Event, Kind, Severity, Technique};

//! Report: what the agent saw and did, told to the safeguarding lead and IT staff.
//!
//! Every event passes the same way: the services hand it to [`events`] (aggregated,
//! queued, never blocking DNS), [`writer`] appends it to the [`journal`] on disk, and
//! [`shipper`] sends the journal to the console and takes the console's commands.
//! [`metrics`] counts what every service did, for Prometheus.
//!
//! - [`events`]: the events queue and its tickets.
//! - [`writer`]: the task that writes queued events to the journal.
//! - [`journal`]: the append-only segments events are kept in until the console has them.
//! - [`shipper`]: the journal sent to the console over HTTPS; the console's commands taken.
//! - [`metrics`]: Prometheus counters and their text form.

pub mod events;
pub mod journal;
pub mod metrics;
pub mod shipper;
pub mod writer;

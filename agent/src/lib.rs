//! The gateway agent: the daemon shell around the policy engine.
//!
//! This crate is the only place that touches files, sockets, the firewall and the clock.
//! Decisions themselves come from `schoolgate-engine`.
//!
//! - [`blockpage`]: the page blocked names lead to, and the fast reset of their HTTPS.
//! - [`bypass`]: what is done about a bypass attempt (event, quarantine).
//! - [`capture`]: frames from a LAN interface (pnet, kernel filter) or a capture file.
//! - [`clients`]: who is asking: MACs from the neighbour table, names from DHCP leases.
//! - [`clock`]: the time, read in one place (and shifted for trials).
//! - [`daemon`]: `run`: settings from policy and flags, and the services started from them.
//! - [`dns`]: the filtering resolver.
//! - [`inspection`]: frames → observations → verdicts → events, resets, quarantine.
//! - [`policy_file`]: reads `policy.yaml` and its list files from disk.
//! - [`quarantine`]: devices confined after a bypass attempt.
//! - [`recent`]: "at most once per window" memory, bounded.
//! - [`reload`]: keeps the live policy, watches its files and swaps in good edits.
//! - [`replay`]: packet inspection over a capture file, judged and printed.
//! - [`shared`]: what the services share, and who a request came from.
//! - [`watch`]: watching files (through their directories) for changes.
//! - [`events`]: events, their aggregation, and where they are written.
//! - [`journal`]: the append-only journal events are written to and shipped from.
//! - [`shipper`]: the journal sent to the console over HTTPS; the console's commands taken.
//! - [`metrics`]: Prometheus counters and their text form.

pub mod act;
pub mod blockpage;
pub mod bypass;
pub mod capture;
pub mod clients;
pub mod clock;
pub mod daemon;
pub mod dns;
pub mod events;
pub mod firewall;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod inspection;
pub mod journal;
pub mod metrics;
pub mod policy_file;
pub mod quarantine;
pub mod recent;
pub mod reload;
pub mod replay;
pub mod shared;
pub mod shipper;
pub mod watch;

//! The gateway agent: the daemon shell around the policy engine and the gateway core.
//!
//! This crate is the only place that touches files, sockets, the firewall and the clock.
//! Decisions come from `schoolgate-engine`, packets are read by `schoolgate-inspect`, and the
//! pure planning (DNS answers, the firewall's table, journal records, aggregation) is
//! `schoolgate-gateway`'s. The modules read in the order data passes through them:
//!
//! - capture: [`capture`] (frames from a LAN interface or a capture file), [`clients`] (who
//!   is asking: MACs from the neighbour table, names from DHCP leases), [`shared`] (the live
//!   policy, the directory and the quarantine, and who a request came from).
//! - classify and decide: [`dns`] (the filtering resolver), [`inspection`] (frames →
//!   observations → verdicts), [`blockpage`] (the page blocked names lead to, and the fast
//!   reset of their HTTPS), [`replay`] (inspection over a capture file, printed).
//! - act: [`act`] (one actor turns each outcome into events, quarantines and firewall
//!   changes; resets, releases, the console's commands), [`firewall`] (the nftables table
//!   the actor and the resolver's answers change).
//! - report: [`report`] (events queued, written to the journal, shipped to the console;
//!   metrics).
//!
//! Around them: [`daemon`] (settings from policy and flags, and the services started from
//! them), [`reload`] and [`policy_file`] (the live policy, its files watched), [`people`]
//! (the directory of pupils and staff from the roster, watched), [`upstream`]
//! (the upstream resolvers, asked by the resolver and the firewall's learner), [`clock`]
//! (the time, read in one place), [`recent`] ("at most once per window" memory), [`watch`]
//! (watching files through their directories).

pub mod act;
pub mod blockpage;
pub mod capture;
pub mod clients;
pub mod clock;
pub mod daemon;
pub mod dns;
pub mod feeds;
pub mod firewall;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod inspection;
pub mod people;
pub mod policy_file;
pub mod recent;
pub mod reload;
pub mod replay;
pub mod report;
pub mod shared;
pub mod trust;
pub mod upstream;
pub mod watch;

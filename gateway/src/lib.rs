//! schoolgate's gateway core: everything the agent decides about packets, queries and events
//! that takes bytes, the policy and `now` and returns values. The agent is the shell around
//! it (sockets, files, nft, netlink, threads, the clock); nothing here reads a file, opens a
//! socket or reads the clock (`tests/tidy.rs` holds that).
//!
//! - [`dns`]: a request's plan (`plan`), its question read in place (`question`), cached
//!   answers (`cache`, `wire`), per-client rate limits (`ratelimit`), DNS over TCP's
//!   framing (`tcp`).
//! - [`firewall`]: the nftables table (`ruleset`), addresses learned from DNS and listed by
//!   the policy and which are refused now (`learned`, `listed`, `ranges`), what the sets
//!   hold (`installed`), NFLOG's logged packets (`logged`), the rule counters (`counters`).
//! - [`journal`]: the journal's record framing (`record`).
//! - [`events`]: sightings gathered into events (`aggregate`).
//! - [`feed`]: a list feed's bytes (plain domains, hosts, AdBlock, UT1 archives) read and
//!   checked into list entries.

pub mod dns;
pub mod events;
pub mod feed;
pub mod firewall;
pub mod journal;

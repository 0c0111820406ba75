//! schoolgate's console: where the designated safeguarding lead reviews alerts with their
//! evidence and records what was done, and IT staff watch the agents.
//!
//! The agents' wire contract (events, batches, their bounds) is `schoolgate-contract`'s.
//!
//! - [`db`]: the database (SQLite or PostgreSQL through one set of queries).
//! - [`auth`]: roles, passwords, tokens, login throttling.
//! - [`config`]: `console.yaml` in the data directory.
//! - [`files`]: the data directory's own files (database, sealing key), owner-only.
//! - [`web`]: the router, pages and the agents' API.
//! - [`fuzz`]: the agents' batch as the fuzz target and its seed tests feed it.
//! - [`mail`]: e-mail to the safeguarding lead when high-severity alerts arrive.
//! - [`thresholds`]: threshold rules: many events of a kind become an incident.
//! - [`zone`]: the school's time zone, in which every time is shown and days begin.

pub mod auth;
pub mod config;
pub mod db;
pub mod files;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod mail;
pub mod thresholds;
pub mod web;
pub mod zone;

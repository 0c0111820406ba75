//! Helpers shared by the end-to-end tests in `tests/tests/`.
//!
//! - [`lab`]: a school network built from network namespaces.
//! - [`console`]: the console's command line, server and database, run for a lab.
//! - [`vpn`]: OpenVPN at both ends of the lab.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod console;
pub mod lab;
pub mod vpn;

//! Helpers shared by the end-to-end tests in `tests/tests/`.
//!
//! - [`lab`]: a school network built from network namespaces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod lab;

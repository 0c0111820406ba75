//! Helpers shared by the end-to-end tests in `tests/tests/`: the lab (`schoolgate-lab`), under
//! the names the tests use.
//!
//! - [`lab`]: a school network built from network namespaces.
//! - [`console`]: the console's command line, server and database, run for a lab.
//! - [`vpn`]: OpenVPN at both ends of the lab.

pub use schoolgate_lab as lab;
pub use schoolgate_lab::{console, require_lab, vpn};

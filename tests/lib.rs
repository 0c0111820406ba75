//! Helpers shared by the end-to-end tests in `tests/tests/`: the lab (`schoolgate-lab`), under
//! the names the tests use, and the programs' own `--help` for the checks that hold scripts
//! and docs to it.
//!
//! - [`lab`]: a school network built from network namespaces.
//! - [`console`]: the console's command line, server and database, run for a lab.
//! - [`vpn`]: OpenVPN at both ends of the lab.
//! - [`program_help`]: `PROGRAM SUBCOMMAND… --help`, from the code as it stands.

use std::process::Command;
use std::sync::OnceLock;

pub use schoolgate_lab as lab;
pub use schoolgate_lab::{console, require_lab, require_tools, vpn};

/// `PROGRAM ARGS --help` from the workspace's build of that program, or `None` if the
/// program refuses the arguments. The workspace's programs are built once per test process
/// first (all together, as `cargo test --workspace` builds them, so nothing is rebuilt with
/// other features), and the text is the code's as it stands, not an older build's.
#[allow(
    clippy::panic,
    reason = "a program that does not build fails the calling test"
)]
pub fn program_help(program: &str, args: &[&str]) -> Option<String> {
    static BUILT: OnceLock<bool> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        Command::new(env!("CARGO"))
            .args(["build", "-q", "--workspace", "--bins", "--locked"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .is_ok_and(|s| s.success())
    });
    if !built {
        panic!("the workspace's programs do not build");
    }
    let out = Command::new(lab::workspace_bin(program))
        .args(args)
        .arg("--help")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

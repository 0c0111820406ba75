//! The programs the demonstration runs: the agent, the console and the lab's peers, built by
//! this workspace beside the demonstration itself. Started by `cargo run`, it builds them
//! first with the same profile (`cargo run` builds only the package it runs).

use std::path::PathBuf;
use std::process::{Command, ExitStatus};

/// What the demonstration starts, by file name.
pub(crate) const PROGRAMS: [&str; 3] = ["schoolgate-agent", "schoolgate-console", "lab-peer"];
const PACKAGES: [&str; 3] = ["schoolgate-agent", "schoolgate-console", "schoolgate-lab"];

#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("cannot tell where this program is: {0}")]
    Exe(std::io::Error),
    #[error("cannot run `{}`: {source}", cargo.display())]
    Spawn {
        cargo: PathBuf,
        source: std::io::Error,
    },
    #[error("`cargo build --profile {profile}` for the agent, console and lab failed ({status})")]
    Failed { profile: String, status: ExitStatus },
    #[error(
        "{} is not built; build it with `cargo build --profile {profile} -p schoolgate-agent \
         -p schoolgate-console -p schoolgate-lab`",
        path.display()
    )]
    Missing { path: PathBuf, profile: String },
}

/// Builds the programs when started by `cargo run` (unless `no_build`), and makes sure each
/// is there.
pub(crate) fn ensure(no_build: bool) -> Result<(), BuildError> {
    let exe = std::env::current_exe().map_err(BuildError::Exe)?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    // `target/debug` holds the `dev` profile; every other profile has its own name.
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    if let (false, Some(cargo)) = (no_build, std::env::var_os("CARGO")) {
        let cargo = PathBuf::from(cargo);
        let mut build = Command::new(&cargo);
        build.args(["build", "--profile", &profile]);
        for p in PACKAGES {
            build.args(["-p", p]);
        }
        println!("Building the agent, the console and the lab's programs ({profile} profile)…");
        let status = build.status().map_err(|source| BuildError::Spawn {
            cargo: cargo.clone(),
            source,
        })?;
        if !status.success() {
            return Err(BuildError::Failed { profile, status });
        }
    }
    for program in PROGRAMS {
        let path = dir.join(program);
        if !path.exists() {
            return Err(BuildError::Missing { path, profile });
        }
    }
    Ok(())
}

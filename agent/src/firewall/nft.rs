//! Loading the table into the kernel with the `nft` tool: one transaction per load, read from
//! standard input. The text comes from [`ruleset`](schoolgate_gateway::firewall::ruleset) and never holds anything a
//! device sent.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use schoolgate_gateway::firewall::ruleset::{FAMILY, TABLE};

/// Why `nft` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("`nft {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// The `nft` program to run.
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            program: PathBuf::from("nft"),
        }
    }
}

impl Nft {
    /// Loads `text` as one transaction: all of it or none.
    pub fn load(&self, text: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(text)).map(drop)
    }

    /// Checks `text` without loading it.
    pub fn check(&self, text: &str) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(text)).map(drop)
    }

    /// The agent's table as JSON, or `None` if there is none.
    pub fn list_table(&self) -> Result<Option<String>, NftError> {
        match self.run(&["-j", "list", "table", FAMILY, TABLE], None) {
            Ok(out) => Ok(Some(out)),
            Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The whole ruleset in nft's text form (for comparing before and after).
    pub fn list_ruleset(&self) -> Result<String, NftError> {
        self.run(&["list", "ruleset"], None)
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let spawn_error = |source| NftError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).map_err(spawn_error)?;
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NftError::Failed {
                args: args.join(" "),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

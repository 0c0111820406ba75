//! The `schoolgate-console` binary: command-line glue.

mod cli;

use clap::Parser;

fn main() {
    let _cli = cli::Cli::parse();
}

//! The `timmconv` binary: parse, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use timmconv::cli::{self, Outcome};

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Finding) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

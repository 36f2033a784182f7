//! The command-line interface (feature `cli`): argument parsing, one file per subcommand, and
//! the printer that decides what goes to stdout and stderr.

pub mod args;
pub mod commands;
pub mod input;
pub mod printer;

pub use args::Cli;

/// What a command asks the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran and found a problem (a scan finding, a parity mismatch).
    Finding,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(path) = cli
        .registry
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        crate::registry::use_file(path)?;
    }
    match cli.command {
        args::Command::Inspect(a) => commands::inspect::run(a),
        args::Command::Convert(a) => commands::convert::run(*a),
        args::Command::Models(a) => commands::models::run(a),
        args::Command::Info(a) => commands::info::run(a),
        args::Command::Identify(a) => commands::identify::run(a),
        args::Command::Verify(a) => commands::verify::run(a),
    }
}

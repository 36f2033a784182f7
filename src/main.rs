//! The `timmconv` binary: parse, run, map errors to exit codes. Its modules (`cli/`) are
//! argument parsing, one file per subcommand, and printing; every decision is the library's.

use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::Outcome;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Finding) => ExitCode::from(1),
        // a closed pipe (`timmconv models | head`) is the reader's choice, not an error
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // messages quote names read from files: escape what could forge terminal output
            eprintln!("error: {}", timmconv::error::printable(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

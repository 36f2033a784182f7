//! The `timmconv` binary: parse, run, map errors to exit codes. Its modules are argument
//! parsing, one file per subcommand, and the printer that decides what goes to stdout and
//! stderr; every decision is the library's (`timmconv`, the package one folder up).

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod printer;
mod table;
mod wording;

use args::Cli;

fn main() -> ExitCode {
    #[cfg(unix)]
    report_sigbus();
    let args = Cli::parse();
    match run(args) {
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

/// Inputs are read through maps (docs/security.md): one that another process shortens while
/// it is read faults with SIGBUS, which would end the process without a word. This says what
/// happened on stderr and exits 2, like any other bad input; the output being written, staged
/// in an unnamed file, never appears.
#[cfg(unix)]
#[allow(unsafe_code)]
fn report_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MESSAGE: &[u8] = b"error: an input file was shortened by another program while \
            timmconv read it (SIGBUS); the output it was writing was not created\n";
        // SAFETY: write and _exit are async-signal-safe; returning would fault again
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::_exit(2);
        }
    }
    // SAFETY: the handler calls async-signal-safe functions only; `action` is fully initialised
    // (zeroed, then its mask emptied and its handler set)
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// What a command asks the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran and found a problem (a scan finding, a parity mismatch).
    Finding,
}

/// Runs a parsed command line.
fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let registry = cli.registry.clone().or_else(|| {
        std::env::var_os("TIMMCONV_REGISTRY")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    if let Some(file) = registry {
        timmconv::registry::use_file(&file)?;
    }
    match cli.command {
        args::Command::Inspect(a) => commands::inspect::run(a),
        args::Command::Convert(a) => commands::convert::run(*a),
        args::Command::Batch(a) => commands::batch::run(a),
        args::Command::Models(a) => commands::models::run(a),
        args::Command::Info(a) => commands::info::run(a),
        args::Command::Identify(a) => commands::identify::run(a),
        args::Command::Verify(a) => commands::verify::run(a),
    }
}

/// Refuses a `--plot` file name that is not `.svg`: the charts are SVG, and SVG bytes in a
/// `.png` (or any other picture's name) would open as a broken picture.
fn check_svg_name(path: &std::path::Path) -> anyhow::Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() == Some("svg") {
        return Ok(());
    }
    anyhow::bail!(
        "--plot {}: timmconv draws SVG only; give a name ending in .svg (for a PNG, convert it, \
         such as with `rsvg-convert chart.svg -o chart.png`)",
        path.display()
    )
}

/// Writes a chart (or any small output) beside `path` and renames it into place, so an error
/// leaves no partial file; through the library's one output path, so a FIFO, a device or a
/// link is never replaced.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let policy = timmconv::write::CommitPolicy {
        overwrite: true,
        sync: false,
    };
    timmconv::write::write_bytes(path, bytes, policy)
        .map_err(|e| anyhow::anyhow!(e).context(format!("cannot write {}", path.display())))
}

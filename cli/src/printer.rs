//! The one place that writes: data and JSON to stdout, progress and warnings to stderr.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints a line of data on stdout.
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints a note on stderr.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("{text}");
}

/// Prints an error on stderr (one that does not end the command: a failed batch job).
pub fn error(text: impl std::fmt::Display) {
    eprintln!("error: {text}");
}

/// Prints a warning on stderr.
pub fn warn(text: impl std::fmt::Display) {
    eprintln!("warning: {text}");
}

/// A progress bar on stderr for `total` bytes, shown only on a terminal and for large inputs.
pub fn progress(total: u64, quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || total < (64 << 20) || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// `text` padded with spaces to `width` characters (left-aligned). Unlike `{:<width$}`, any
/// width works: a 70 000-character tensor name is printed, not a panic.
pub fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    let mut out = String::with_capacity(text.len() + width.saturating_sub(n));
    out.push_str(text);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    out
}

pub use timmconv::error::printable;

/// Formats a byte count for people.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Follows a download on stderr: a bar on a terminal, nothing otherwise or when `quiet`.
pub fn download(quiet: bool) -> impl FnMut(u64, u64) {
    let mut bar: Option<Option<indicatif::ProgressBar>> = None;
    move |done, total| {
        let b = bar.get_or_insert_with(|| {
            if quiet || !std::io::stderr().is_terminal() {
                return None;
            }
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "downloading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(b)
        });
        if let Some(b) = b {
            b.set_length(total);
            b.set_position(done);
            if done >= total {
                b.finish_and_clear();
                bar = None;
            }
        }
    }
}

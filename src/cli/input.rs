//! Turns the INPUT argument (a path, `local-dir:FOLDER` or `hf-hub:ORG/REPO[@REV]`) into files
//! on disk, with a download progress bar on stderr.

use std::path::Path;

use crate::cli::printer;
use crate::source::{self, Origin, Source};

/// Resolves `input`; downloads show a progress bar unless `quiet`.
pub fn resolve(input: &Path, quiet: bool) -> anyhow::Result<Source> {
    let Some(text) = input.to_str() else {
        // not UTF-8, so not a hub name: a path, checked when it is opened
        return Ok(Source {
            weights: input.to_path_buf(),
            config: None,
            origin: Origin::File,
        });
    };
    let mut bar: Option<Option<indicatif::ProgressBar>> = None;
    let mut file = String::new();
    let mut progress = |name: &str, done: u64, total: u64| {
        if bar.is_none() || file != name {
            if let Some(Some(b)) = &bar {
                b.finish_and_clear();
            }
            file = name.to_owned();
            let b = printer::download_progress(name, total, quiet);
            bar = Some(b);
        }
        if let Some(Some(b)) = &bar {
            b.set_position(done);
        }
    };
    let found = source::resolve(text, &mut progress)?;
    if let Some(Some(b)) = bar {
        b.finish_and_clear();
    }
    if let (
        Origin::Hub {
            downloaded: true,
            repo,
            commit,
        },
        false,
    ) = (&found.origin, quiet)
    {
        printer::note(format_args!(
            "downloaded {} (commit {commit}) into {}",
            repo.display_name(),
            found.weights.display()
        ));
    }
    Ok(found)
}

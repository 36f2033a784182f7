//! Where an output goes: every check of an output path (before any work, and again just before
//! the move) and the final move of a staged folder. Only a regular file, or a folder holding
//! nothing but what an export writes, is ever replaced; the input never is.

use std::path::Path;

use crate::error::{Error, OutputPathError, Result};

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Checks the output path before any work: not the input, not an existing file unless
/// overwriting.
pub(super) fn check_file(input: Option<&Path>, output: &Path, overwrite: bool) -> Result<()> {
    crate::write::check_replaceable(output, false)?;
    if input.is_some_and(|i| same_file(i, output)) {
        return Err(Error::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    if output.exists() && !overwrite {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
        });
    }
    Ok(())
}

/// The files a hub folder holds; the only ones `--force` may replace.
pub(super) const FOLDER_FILES: [&str; 2] = ["model.safetensors", "config.json"];

/// Refuses to replace `output` unless it is a folder holding nothing but the files a hub
/// export writes, and not the input: `--force` replaces an export, it never deletes anything
/// else that lives there.
pub(super) fn check_folder(input: Option<&Path>, output: &Path, overwrite: bool) -> Result<()> {
    crate::write::check_replaceable(output, true)?;
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    if !overwrite {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
        });
    }
    if !meta.is_dir() {
        return Err(Error::OutputNotAFolder {
            path: output.to_path_buf(),
        });
    }
    let entries = std::fs::read_dir(output).map_err(|e| Error::io(output, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(output, e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !FOLDER_FILES.iter().any(|f| name == *f) {
            return Err(Error::OutputHoldsOthers {
                path: output.to_path_buf(),
                entry: crate::error::printable(&name.to_string_lossy()).into_owned(),
            });
        }
    }
    let Some(input) = input else {
        return Ok(());
    };
    if let (Ok(i), Ok(o)) = (input.canonicalize(), output.canonicalize()) {
        if i.starts_with(&o) {
            return Err(Error::InputInOutput {
                input: input.to_path_buf(),
                path: output.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Renames the staged folder to `output`. An existing export there (checked by
/// [`check_folder`]) is set aside first and put back if the rename fails; afterwards only the
/// files an export holds are removed from it, and the set-aside folder only if that left it
/// empty.
pub(super) fn move_folder(staging: tempfile::TempDir, output: &Path) -> Result<()> {
    if std::fs::symlink_metadata(output).is_err() {
        std::fs::rename(staging.path(), output).map_err(|e| Error::io(output, e))?;
        let _ = staging.keep();
        return Ok(());
    }
    let aside = staging.path().with_extension("old");
    std::fs::rename(output, &aside).map_err(|e| Error::io(output, e))?;
    if let Err(e) = std::fs::rename(staging.path(), output) {
        let _ = std::fs::rename(&aside, output);
        return Err(Error::io(output, e));
    }
    let _ = staging.keep();
    for f in FOLDER_FILES {
        let _ = crate::write::remove_file_later(&aside.join(f));
    }
    // fails, keeping whatever appeared there meanwhile, unless the folder is empty
    let _ = std::fs::remove_dir(&aside);
    Ok(())
}

/// Refuses an `output` that names `input` (a file read as input, such as the `config.json`
/// beside the weights), however either is spelt.
pub(super) fn check_not(input: &Path, output: &Path) -> Result<()> {
    let id = |p: &Path| crate::write::OutputId::of(p).ok();
    if id(output).is_some() && id(output) == id(input) {
        return Err(Error::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks where an output will go before anything is read or downloaded, with errors that say
/// what to do: a missing parent folder, a folder given for a file, a file given for
/// a folder ([`Layout::Hub`](super::Layout::Hub)). The writers check again, before any work
/// and just before the output takes its name.
pub fn check_output_path(output: &Path, layout: super::Layout) -> Result<()> {
    let folder_layout = layout == super::Layout::Hub;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        let (output, parent) = (output.to_path_buf(), parent.to_path_buf());
        return Err(if parent.exists() {
            OutputPathError::ParentNotAFolder { output, parent }
        } else {
            OutputPathError::ParentMissing { output, parent }
        }
        .into());
    }
    if !folder_layout && output.is_dir() {
        return Err(OutputPathError::IsAFolder {
            path: output.to_path_buf(),
        }
        .into());
    }
    crate::write::check_replaceable(output, folder_layout)?;
    if folder_layout && output.exists() && !output.is_dir() {
        return Err(OutputPathError::NotAFolder {
            path: output.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

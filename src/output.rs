//! Checks of the output path made before any work, with errors that say what to do: a missing
//! folder, a folder where a file is wanted, a FIFO or device. They never name the temporary
//! file the writer stages the output in.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What an output path should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One safetensors file.
    File,
    /// A hub folder (`model.safetensors` and `config.json`).
    Folder,
}

/// The folder `output` is created in (`.` for a bare file name).
pub fn parent_of(output: &Path) -> PathBuf {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn refuse(output: &Path, what: String) -> Error {
    Error::Options(format!("output {}: {what}", output.display()))
}

/// Checks that `output` can become a `kind`: its folder exists, and what is there already is of
/// the right kind (replacing it is decided later, with `--force`).
pub fn check(output: &Path, kind: OutputKind) -> Result<()> {
    if output.as_os_str().is_empty() {
        return Err(Error::Options("the output path is empty".into()));
    }
    let parent = parent_of(output);
    match std::fs::metadata(&parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refuse(
                output,
                format!("{} is not a folder", parent.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(
                output,
                format!(
                    "the folder {} does not exist; create it first (mkdir -p {})",
                    parent.display(),
                    parent.display()
                ),
            ))
        }
        Err(e) => return Err(Error::io(parent, e)),
    }
    let Ok(meta) = std::fs::metadata(output) else {
        return Ok(());
    };
    let t = meta.file_type();
    match kind {
        OutputKind::File if t.is_dir() => Err(refuse(
            output,
            format!(
                "is a folder; give a file name (such as {}), or use --layout hub to write a hub \
                 folder",
                output.join("model.safetensors").display()
            ),
        )),
        OutputKind::File if !t.is_file() => Err(refuse(
            output,
            "is a FIFO, socket or device, not a file timmconv writes; give a file name".into(),
        )),
        OutputKind::Folder if !t.is_dir() && !t.is_file() => Err(refuse(
            output,
            "is a FIFO, socket or device; give a folder name for --layout hub".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(&dir.path().join("no/x.safetensors"), OutputKind::File).unwrap_err();
        assert!(
            e.to_string().contains("does not exist; create it first"),
            "{e}"
        );
        let e = check(dir.path(), OutputKind::File).unwrap_err();
        assert!(e.to_string().contains("or use --layout hub"), "{e}");
        assert!(check(dir.path(), OutputKind::Folder).is_ok());
        assert!(check(&dir.path().join("new.safetensors"), OutputKind::File).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check(&file.join("x.safetensors"), OutputKind::File).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }
}

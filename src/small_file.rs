//! Small text files that a user or a cache names (a hub folder's `config.json`, a cache's
//! `refs/REVISION`, a registry file, a batch manifest): read only when they are regular files,
//! and only up to a named byte budget. A FIFO, a socket, a device or a link to one is refused
//! from its metadata, before it is opened (opening a FIFO blocks; reading `/dev/zero` never
//! ends), and the descriptor that is opened is checked again, since the path may have changed
//! in between.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("config.json");
//! std::fs::write(&path, "{}")?;
//! let text = timmconv::small_file::read_text(&path, "MAX_CONFIG_BYTES", 1 << 20)?;
//! assert_eq!(text.as_deref(), Some("{}"));
//! let missing = timmconv::small_file::read_text(&dir.path().join("nope"), "MAX_CONFIG_BYTES", 1);
//! assert!(missing?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, FileType};
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest `config.json` read, from a hub folder, the cache or a download.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The largest registry file (`--registry FILE`, `TIMMCONV_REGISTRY`) read; the embedded one is
/// about 3 MB.
pub const MAX_REGISTRY_BYTES: u64 = 64 << 20;

/// The largest `refs/REVISION` file of the Hugging Face cache read: it holds one 40-digit
/// commit hash.
pub const MAX_REF_BYTES: u64 = 1 << 10;

/// What a file that is not a regular one is, in words, for a message (`"a FIFO"`).
pub fn kind(t: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// The regular file `path`, opened for reading without blocking on a FIFO: `Ok(None)` when
/// nothing is there, [`Error::NotARegularFile`] for anything else that is.
pub fn open_regular(path: &Path) -> Result<Option<File>> {
    match open_existing(path) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// [`open_regular`] for a file that must be there: a missing one is the operating system's
/// error on `path`.
pub fn open_existing(path: &Path) -> Result<File> {
    // the metadata first (following links), so a FIFO or a device is never opened at all
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let not_regular = |t: FileType| Error::NotARegularFile {
        path: path.to_path_buf(),
        what: kind(t),
    };
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // swapped in between, a FIFO must not block the open; O_NONBLOCK does nothing to a
        // regular file's reads
        use std::os::unix::fs::OpenOptionsExt;
        options
            .custom_flags(i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or_default());
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok(file)
}

/// The text of the regular file `path`, at most `limit` bytes (the limit named `limit_name`);
/// `Ok(None)` when nothing is there. Refuses, without blocking or reading, a FIFO, socket,
/// device or folder, or a link to one; refuses a file over the limit without reading past it.
///
/// # Errors
///
/// [`Error::NotARegularFile`], [`Error::Limit`], an I/O error, or text that is not UTF-8.
pub fn read_text(path: &Path, limit_name: &'static str, limit: u64) -> Result<Option<String>> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    read_from(file, path, limit_name, limit).map(Some)
}

/// [`read_text`] for a file that must be there: a missing one is the operating system's error.
///
/// # Errors
///
/// As [`read_text`], and a missing file.
pub fn read_existing_text(path: &Path, limit_name: &'static str, limit: u64) -> Result<String> {
    read_from(open_existing(path)?, path, limit_name, limit)
}

fn read_from(file: File, path: &Path, limit_name: &'static str, limit: u64) -> Result<String> {
    let over = |size: u64| {
        Error::limit(
            limit_name,
            format!("bytes of {}", path.display()),
            size,
            limit,
        )
    };
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size > limit {
        return Err(over(size));
    }
    // the file may grow after the size was read: never read more than one byte past the limit
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(over(read));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text ({e})"),
            ),
        )
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config.json");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        for p in [&fifo, &link] {
            let err = read_text(p, "MAX_CONFIG_BYTES", 10).unwrap_err();
            assert!(
                matches!(err, Error::NotARegularFile { what, .. } if what.contains("FIFO")),
                "{err}"
            );
        }
        let err = read_text(dir.path(), "MAX_CONFIG_BYTES", 10).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("refs");
        std::fs::write(&p, "x".repeat(11)).unwrap();
        let err = read_text(&p, "MAX_REF_BYTES", 10).unwrap_err();
        assert!(err.to_string().contains("MAX_REF_BYTES"), "{err}");
        std::fs::write(&p, "x".repeat(10)).unwrap();
        assert_eq!(
            read_text(&p, "MAX_REF_BYTES", 10).unwrap().unwrap().len(),
            10
        );
    }
}

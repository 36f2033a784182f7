//! What a conversion reads: a checkpoint file, or one held in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::checkpoint::crc::CrcFeed;
use crate::checkpoint::{Checkpoint, OpenOptions};
use crate::error::{Error, Result};

/// The checkpoint a conversion reads, before it is opened.
#[derive(Debug, Clone)]
pub(super) enum Input {
    /// A file, mapped read-only.
    File(PathBuf),
    /// Bytes in memory (shared, so that cloning a builder copies nothing).
    Bytes(Arc<Vec<u8>>),
}

impl Input {
    /// Opens the checkpoint with `opts`; the bytes of an in-memory input move into it.
    pub(super) fn open(self, opts: &OpenOptions) -> Result<(Origin, Checkpoint)> {
        match self {
            Input::File(p) => {
                let ckpt = Checkpoint::open(&p, opts)?;
                Ok((Origin(Some(p)), ckpt))
            }
            Input::Bytes(b) => {
                let bytes = Arc::try_unwrap(b).unwrap_or_else(|shared| (*shared).clone());
                Ok((Origin(None), Checkpoint::from_bytes(bytes, opts)?))
            }
        }
    }

    /// The file, for a file input.
    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            Input::File(p) => Some(p),
            Input::Bytes(_) => None,
        }
    }
}

/// Where an opened checkpoint came from: its file, or memory.
#[derive(Debug, Clone)]
pub(super) struct Origin(Option<PathBuf>);

/// How an output written to a stream is named in an I/O error.
pub(super) const STREAM: &str = "(output stream)";

/// How an input held in memory is named where a path would be.
pub(super) const IN_MEMORY: &str = "(in memory)";

impl Origin {
    /// The file, for a file input.
    pub(super) fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }

    /// The name errors give the input: its path, or `(in memory)`.
    pub(super) fn name(&self) -> PathBuf {
        self.0.clone().unwrap_or_else(|| PathBuf::from(IN_MEMORY))
    }

    /// `e`, naming the input's file when there is one.
    pub(super) fn attach(&self, e: Error) -> Error {
        match &self.0 {
            Some(p) => e.with_path(p),
            None => e,
        }
    }

    /// Opens `ckpt`'s input again with `opts` (another state dict).
    pub(super) fn reopen(&self, ckpt: Checkpoint, opts: &OpenOptions) -> Result<Checkpoint> {
        match (&self.0, ckpt.into_bytes()) {
            (Some(p), _) => Checkpoint::open(p, opts),
            (None, Some(bytes)) => Checkpoint::from_bytes(bytes, opts),
            (None, None) => Err(Error::Internal(
                "an in-memory checkpoint lost its bytes".into(),
            )),
        }
    }

    /// Hex SHA-256 of the input as `ckpt` read it: the file that was opened and checked (not
    /// whatever the path names now), or the bytes. The same reads check every stored zip
    /// member's CRC-32.
    pub(super) fn sha256(&self, ckpt: &Checkpoint) -> Result<String> {
        match (&self.0, ckpt.file()) {
            (Some(p), Some(f)) => sha256_open_file(f, p, &mut ckpt.crc_feed()),
            (Some(p), None) => sha256_file(p),
            (None, _) => {
                let bytes = ckpt.raw_bytes();
                ckpt.crc_feed().feed(0, bytes)?;
                Ok(sha256_hex(bytes))
            }
        }
    }
}

/// Hex SHA-256 of bytes.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file, read in blocks (nothing of it stays resident).
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    // a regular file only: a FIFO named as an input would block the hash forever
    let f = crate::small_file::open_existing(path)?;
    sha256_open_file(&f, path, &mut CrcFeed::none())
}

/// How much of a file the hash takes at a time.
const HASH_PIECE: usize = 1 << 20;

/// Hex SHA-256 of an open file, read from its start through a map on Linux and with positioned
/// reads elsewhere (the file's own offset is left alone either way, so other readers of the
/// same handle are undisturbed). The same bytes go to `crc`, which checks the CRC-32 of every
/// stored zip member they cover.
pub(super) fn sha256_open_file(
    f: &std::fs::File,
    path: &Path,
    crc: &mut CrcFeed<'_>,
) -> Result<String> {
    let mut h = Sha256::new();
    // Linux: straight from a map of the file, 1 MiB at a time (no copy into a buffer first: the
    // hashing thread is a hashing conversion's critical path)
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        let id = (meta.dev(), meta.ino());
        if let Some(mut map) = crate::fileio::MappedInput::new(f, meta.len(), id) {
            let hashed = map.pieces(
                0,
                meta.len(),
                |_| HASH_PIECE,
                |at, piece| {
                    h.update(piece);
                    crc.feed(at as usize, piece).map_err(|e| e.with_path(path))
                },
            )?;
            if hashed {
                return Ok(hex(&h.finalize()));
            }
        }
    }
    // 1 MiB: SHA-256 runs at its own speed from 64 KiB up; larger only adds to the peak RSS,
    // twice in a `batch --jobs 2`
    let mut buf = vec![0u8; HASH_PIECE];
    let mut off = 0u64;
    loop {
        let n = match crate::fileio::read_at(f, &mut buf, off) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        crc.feed(off as usize, &buf[..n])
            .map_err(|e| e.with_path(path))?;
        off += n as u64;
    }
    Ok(hex(&h.finalize()))
}

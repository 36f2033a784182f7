//! Streaming safetensors writer: header first, then each tensor's bytes as they are produced,
//! into a temporary file in the destination folder that is renamed into place when complete.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::dtype::DType;
use crate::error::{Error, Result};

/// Prefix of the temporary files timmconv writes next to an output; never a finished file.
pub const TEMP_PREFIX: &str = ".timmconv-partial-";

/// One tensor to write.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl Entry {
    fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// The order safetensors itself writes: by dtype alignment, largest first, then by name.
pub fn reference_order(entries: &[Entry]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&entries[a], &entries[b]);
        eb.dtype
            .to_safetensors()
            .cmp(&ea.dtype.to_safetensors())
            .then_with(|| ea.name.cmp(&eb.name))
    });
    order
}

/// The safetensors header (JSON padded with spaces to 8 bytes) for `entries` written in `order`.
pub fn header(
    entries: &[Entry],
    order: &[usize],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for &i in order {
        let e = &entries[i];
        let end = offset + e.nbytes();
        map.insert(
            e.name.clone(),
            json!({"dtype": e.dtype.to_safetensors(), "shape": e.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut bytes =
        serde_json::to_vec(&Value::Object(map)).map_err(|e| Error::SafeTensors(e.to_string()))?;
    let padded = bytes.len().next_multiple_of(8);
    bytes.resize(padded, b' ');
    Ok(bytes)
}

/// What to write for one tensor: bytes in memory, or a range of an open file that the kernel
/// copies (`copy_file_range`) without passing through this process.
pub enum Chunk<'a> {
    /// Bytes to write.
    Bytes(Cow<'a, [u8]>),
    /// `len` bytes at `offset` of `file`.
    FileRange {
        /// The source file.
        file: &'a File,
        /// Byte offset in it.
        offset: u64,
        /// Bytes to copy.
        len: u64,
    },
}

impl Chunk<'_> {
    fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::FileRange { len, .. } => *len,
        }
    }
}

/// An output file being written: a temporary file in the destination's folder until
/// [`Output::commit`] renames it into place. Dropped without commit, it is removed.
pub struct Output {
    file: BufWriter<tempfile::NamedTempFile>,
    dest: PathBuf,
}

impl Output {
    /// Starts writing towards `dest`.
    pub fn create(dest: &Path) -> Result<Output> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        Ok(Output {
            file: BufWriter::with_capacity(4 << 20, tmp),
            dest: dest.to_path_buf(),
        })
    }

    fn ioerr(&self, e: std::io::Error) -> Error {
        Error::io(&self.dest, e)
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.dest, e))
    }

    /// Appends `len` bytes from `offset` of `src`, copied by the kernel where it can.
    pub fn copy_range(&mut self, src: &File, offset: u64, len: u64) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.dest, e))?;
        let mut off = offset;
        let end = offset + len;
        while off < end {
            let want = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off),
                self.file.get_ref().as_file(),
                None,
                want,
            ) {
                Ok(0) => {
                    return Err(self.ioerr(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("input ended at byte {off}, expected {end}"),
                    )))
                }
                Ok(_) => {}
                // another filesystem, an old kernel, a special file: copy through memory
                Err(_) => return self.copy_through_buffer(src, off, end - off),
            }
        }
        Ok(())
    }

    fn copy_through_buffer(&mut self, src: &File, mut off: u64, len: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let end = off + len;
        let mut buf = vec![0u8; (4 << 20).min(usize::try_from(len).unwrap_or(usize::MAX))];
        while off < end {
            let n = buf
                .len()
                .min(usize::try_from(end - off).unwrap_or(usize::MAX));
            src.read_exact_at(&mut buf[..n], off)
                .map_err(|e| self.ioerr(e))?;
            self.file
                .write_all(&buf[..n])
                .map_err(|e| Error::io(&self.dest, e))?;
            off += n as u64;
        }
        Ok(())
    }

    /// Overwrites bytes at `offset` of what was written (the header, once the metadata is known).
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.flush().map_err(|e| Error::io(&self.dest, e))?;
        self.file
            .get_ref()
            .as_file()
            .write_all_at(bytes, offset)
            .map_err(|e| self.ioerr(e))
    }

    /// Flushes and renames into place; refuses to replace an existing file unless `overwrite`.
    /// With `sync`, the data reaches the disk before the rename (survives a power loss, at the
    /// price of waiting for the disk); without it, like `cp`, the page cache holds it.
    pub fn commit(self, overwrite: bool, sync: bool) -> Result<()> {
        let dest = self.dest;
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        if sync {
            tmp.as_file().sync_all().map_err(|e| Error::io(&dest, e))?;
        }
        let result = if overwrite {
            tmp.persist(&dest).map(|_| ())
        } else {
            tmp.persist_noclobber(&dest).map(|_| ())
        };
        result.map_err(|e| Error::io(&dest, e.error))
    }
}

/// Receives the chunks of one tensor.
pub type Sink<'s> = dyn FnMut(Chunk<'_>) -> Result<()> + 's;

/// Writes a safetensors file at `dest`: `entries` in the reference order, each one's data from
/// `produce(index, sink)`, which hands the tensor's bytes to `sink` in one or more chunks that
/// must add up to exactly the entry's size. The header is written with
/// `metadata` first and rewritten at the end with what `finalize` returns, which must serialise
/// to the same length (so a checksum computed meanwhile can go in). `progress` is told the bytes
/// written after each tensor. Nothing is left at `dest` on error.
#[allow(clippy::too_many_arguments)]
pub fn write_safetensors(
    dest: &Path,
    entries: &[Entry],
    metadata: &BTreeMap<String, String>,
    overwrite: bool,
    sync: bool,
    mut produce: impl FnMut(usize, &mut Sink<'_>) -> Result<()>,
    mut progress: impl FnMut(u64),
    finalize: impl FnOnce() -> Result<BTreeMap<String, String>>,
) -> Result<()> {
    let order = reference_order(entries);
    let draft = header(entries, &order, metadata)?;
    let mut out = Output::create(dest)?;
    out.write(&(draft.len() as u64).to_le_bytes())?;
    out.write(&draft)?;
    for i in order.iter().copied() {
        let e = &entries[i];
        let want = e.nbytes() as u64;
        let mut written = 0u64;
        produce(i, &mut |chunk: Chunk<'_>| {
            written += chunk.len();
            if written > want {
                return Err(Error::tensor(
                    &e.name,
                    format!("produced more than its {want} bytes"),
                ));
            }
            match &chunk {
                Chunk::Bytes(b) => out.write(b)?,
                Chunk::FileRange { file, offset, len } => out.copy_range(file, *offset, *len)?,
            }
            progress(chunk.len());
            Ok(())
        })?;
        if written != want {
            return Err(Error::tensor(
                &e.name,
                format!("produced {written} bytes, expected {want}"),
            ));
        }
    }
    let final_meta = finalize()?;
    if &final_meta != metadata {
        let fin = header(entries, &order, &final_meta)?;
        if fin.len() != draft.len() {
            return Err(Error::SafeTensors(format!(
                "final header is {} bytes, the draft {}",
                fin.len(),
                draft.len()
            )));
        }
        out.patch(8, &fin)?;
    }
    out.commit(overwrite, sync)
}

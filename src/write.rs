//! Streaming safetensors writer: header first, then each tensor's bytes as they are produced,
//! into a temporary file in the destination folder that is renamed into place when complete.

use std::borrow::Cow;
use std::collections::BTreeMap;
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
            json!({"dtype": format!("{:?}", e.dtype.to_safetensors()), "shape": e.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut bytes =
        serde_json::to_vec(&Value::Object(map)).map_err(|e| Error::SafeTensors(e.to_string()))?;
    let padded = bytes.len().next_multiple_of(8);
    bytes.resize(padded, b' ');
    Ok(bytes)
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
            file: BufWriter::with_capacity(8 << 20, tmp),
            dest: dest.to_path_buf(),
        })
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let dest = &self.dest;
        self.file.write_all(bytes).map_err(|e| Error::io(dest, e))
    }

    /// Flushes, syncs and renames into place; refuses to replace an existing file unless
    /// `overwrite`.
    pub fn commit(self, overwrite: bool) -> Result<()> {
        let dest = self.dest;
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&dest, e))?;
        let result = if overwrite {
            tmp.persist(&dest).map(|_| ())
        } else {
            tmp.persist_noclobber(&dest).map(|_| ())
        };
        result.map_err(|e| Error::io(&dest, e.error))
    }
}

/// Writes a safetensors file at `dest`: `entries` in the reference order, each one's bytes
/// from `produce(index)`, which must return exactly the entry's size. `progress` is told the
/// bytes written after each tensor. Nothing is left at `dest` on error.
pub fn write_safetensors<'a>(
    dest: &Path,
    entries: &[Entry],
    metadata: &BTreeMap<String, String>,
    overwrite: bool,
    mut produce: impl FnMut(usize) -> Result<Cow<'a, [u8]>>,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let order = reference_order(entries);
    let header = header(entries, &order, metadata)?;
    let mut out = Output::create(dest)?;
    out.write(&(header.len() as u64).to_le_bytes())?;
    out.write(&header)?;
    for i in order {
        let bytes = produce(i)?;
        let e = &entries[i];
        if bytes.len() != e.nbytes() {
            return Err(Error::tensor(
                &e.name,
                format!("produced {} bytes, expected {}", bytes.len(), e.nbytes()),
            ));
        }
        out.write(&bytes)?;
        progress(bytes.len() as u64);
    }
    out.commit(overwrite)
}

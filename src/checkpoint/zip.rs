//! torch.save zip archives: `<root>/data.pkl`, `<root>/data/<key>`, `<root>/byteorder`.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use ::zip::{CompressionMethod, ZipArchive};

use super::tree::{Builder, PidLayout};
use super::{Format, Parsed, StorageLoc};
use crate::error::{Error, Result};
use crate::pickle::{unpickle, Mode, MAX_PICKLE_BYTES};

/// Most entries a checkpoint archive may have.
pub const MAX_ZIP_ENTRIES: usize = 1 << 20;
/// Highest ratio of declared to compressed size accepted for a deflated entry (deflate's own
/// maximum is about 1032:1; anything above is a lie or a bomb).
pub const MAX_DEFLATE_RATIO: u64 = 1032;

fn zerr(e: impl std::fmt::Display) -> Error {
    Error::Zip(e.to_string())
}

fn archive(bytes: &[u8]) -> Result<ZipArchive<Cursor<&[u8]>>> {
    ZipArchive::new(Cursor::new(bytes)).map_err(zerr)
}

fn entry(za: &mut ZipArchive<Cursor<&[u8]>>, index: usize, file_len: usize) -> Result<StorageLoc> {
    let f = za.by_index_raw(index).map_err(zerr)?;
    let name = f.name().to_owned();
    if f.encrypted() {
        return Err(Error::Zip(format!("entry `{name}` is encrypted")));
    }
    let size =
        usize::try_from(f.size()).map_err(|_| Error::Zip(format!("entry `{name}` too large")))?;
    let loc = match f.compression() {
        CompressionMethod::Stored => {
            let start = usize::try_from(f.data_start())
                .map_err(|_| Error::Zip(format!("entry `{name}` starts past the end")))?;
            if f.compressed_size() != f.size()
                || start.checked_add(size).is_none_or(|end| end > file_len)
            {
                return Err(Error::Zip(format!(
                    "entry `{name}` (offset {start}, {size} bytes) runs past the end of the {file_len}-byte file"
                )));
            }
            StorageLoc::Range { start, len: size }
        }
        CompressionMethod::Deflated => {
            if f.size()
                > f.compressed_size()
                    .saturating_mul(MAX_DEFLATE_RATIO)
                    .saturating_add(1024)
            {
                return Err(Error::limit(
                    "MAX_DEFLATE_RATIO",
                    format!("declared size of compressed entry `{name}`"),
                    f.size(),
                    f.compressed_size().saturating_mul(MAX_DEFLATE_RATIO),
                ));
            }
            StorageLoc::Deflated { index, len: size }
        }
        other => {
            return Err(Error::Zip(format!(
                "entry `{name}` uses compression {other:?}; only stored and deflated are read"
            )))
        }
    };
    Ok(loc)
}

/// Decompresses entry `index`, which must inflate to exactly `len` bytes.
pub(super) fn inflate(bytes: &[u8], index: usize, len: usize) -> Result<Vec<u8>> {
    let mut za = archive(bytes)?;
    let f = za.by_index(index).map_err(zerr)?;
    let name = f.name().to_owned();
    let mut out =
        Vec::with_capacity(len.min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO as usize)));
    f.take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Zip(format!("entry `{name}`: {e}")))?;
    if out.len() != len {
        return Err(Error::Zip(format!(
            "entry `{name}` inflates to {} bytes, its header says {len}",
            out.len()
        )));
    }
    Ok(out)
}

fn read_entry<'a>(
    bytes: &'a [u8],
    loc: StorageLoc,
    limit: usize,
    what: &str,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    if loc.len() > limit {
        return Err(Error::limit(
            "MAX_PICKLE_BYTES",
            what,
            loc.len() as u64,
            limit as u64,
        ));
    }
    Ok(match loc {
        StorageLoc::Range { start, len } => std::borrow::Cow::Borrowed(&bytes[start..start + len]),
        StorageLoc::Deflated { index, len } => std::borrow::Cow::Owned(inflate(bytes, index, len)?),
    })
}

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let mut za = archive(bytes)?;
    if za.len() > MAX_ZIP_ENTRIES {
        return Err(Error::limit(
            "MAX_ZIP_ENTRIES",
            "zip entries",
            za.len() as u64,
            MAX_ZIP_ENTRIES as u64,
        ));
    }
    let names: Vec<String> = za.file_names().map(str::to_owned).collect();
    let roots: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix("/data.pkl"))
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .collect();
    let root = match roots.as_slice() {
        [root] => root.to_string(),
        [] => {
            return Err(Error::UnknownFormat(
                "zip archive without `<root>/data.pkl`: not a torch.save checkpoint".into(),
            ))
        }
        many => {
            return Err(Error::Zip(format!(
                "several archive roots hold a data.pkl: {}",
                many.join(", ")
            )))
        }
    };
    let mut storages = HashMap::new();
    let data_prefix = format!("{root}/data/");
    let mut pkl = None;
    let mut byteorder = None;
    for index in 0..za.len() {
        let Some(name) = za.name_for_index(index).map(str::to_owned) else {
            continue;
        };
        if let Some(key) = name.strip_prefix(&data_prefix) {
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                storages.insert(key.to_owned(), entry(&mut za, index, bytes.len())?);
            }
        } else if name == format!("{root}/data.pkl") {
            pkl = Some(entry(&mut za, index, bytes.len())?);
        } else if name == format!("{root}/byteorder") {
            byteorder = Some(entry(&mut za, index, bytes.len())?);
        }
    }
    if let Some(e) = byteorder {
        let order = read_entry(bytes, e, 16, "byteorder record")?;
        match &*order {
            b"little" => {}
            b"big" => {
                return Err(Error::UnsupportedFormat(
                    "the checkpoint was saved on a big-endian machine (byteorder = big); \
                     re-save it on a little-endian one"
                        .into(),
                ))
            }
            other => {
                return Err(Error::Zip(format!(
                    "byteorder record is {:?}, expected \"little\"",
                    String::from_utf8_lossy(other)
                )))
            }
        }
    }
    let Some(pkl) = pkl else {
        return Err(Error::Zip("data.pkl vanished".into()));
    };
    let pickle = read_entry(bytes, pkl, MAX_PICKLE_BYTES, "data.pkl size")?;
    let u = unpickle(&pickle, 0, Mode::Load).map_err(|e| match e {
        Error::Pickle { offset, what } => Error::Pickle {
            offset,
            what: format!("{what} (in {root}/data.pkl)"),
        },
        other => other,
    })?;
    let root_node = Builder::new(&u.arena, PidLayout::Zip).build(&u.value)?;
    Ok(Parsed {
        format: Format::TorchZip,
        protocol: Some(u.protocol),
        globals: u.globals,
        root: root_node,
        storages,
        metadata: None,
    })
}

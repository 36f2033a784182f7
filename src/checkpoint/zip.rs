//! torch.save zip archives: `<root>/data.pkl`, `<root>/data/<key>`, `<root>/byteorder`.
//!
//! The zip crate parses the central directory; this module then checks that torch (which
//! reads archives through miniz) would see the same files: the raw central-directory names
//! (a Unicode-path extra field renames an entry for the zip crate but not for miniz), local
//! headers that agree with the central directory, no two entries over the same bytes, and no
//! two names that differ only in ASCII case, because torch's record lookup ignores case. The
//! root folder is the first entry's, as `PyTorchFileReader` takes it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};

use ::zip::{CompressionMethod, ZipArchive};

use super::tree::{Builder, PidLayout};
use super::{Format, Parsed, StorageLoc};
use crate::error::{Error, Result};
use crate::pickle::{unpickle, Mode, MAX_PICKLE_BYTES};

/// Most entries a checkpoint archive may have (checked from the end-of-central-directory record
/// before the directory is parsed: the zip crate holds about 600 bytes per entry).
pub const MAX_ZIP_ENTRIES: usize = 1 << 17;
/// Highest ratio of declared to compressed size accepted for a deflated entry (deflate's own
/// maximum is about 1032:1; anything above is a lie or a bomb).
pub const MAX_DEFLATE_RATIO: u64 = 1032;
/// Declared size above which a deflated member must compress at most
/// [`MAX_LARGE_DEFLATE_RATIO`] to 1: a storage is inflated into memory, and real weights
/// compress to about their size, so a 256 MiB-plus member that is nearly all repetition is a
/// bomb (10 GiB of zeros fit in 10 MB), not a checkpoint.
pub const LARGE_MEMBER_BYTES: u64 = 256 << 20;
/// Highest ratio of declared to compressed size for a member over [`LARGE_MEMBER_BYTES`].
pub const MAX_LARGE_DEFLATE_RATIO: u64 = 16;

const LOCAL_SIG: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_SIG: [u8; 4] = *b"PK\x01\x02";
const EOCD_SIG: [u8; 4] = *b"PK\x05\x06";
const EOCD64_LOCATOR_SIG: [u8; 4] = *b"PK\x06\x07";
const EOCD64_SIG: [u8; 4] = *b"PK\x06\x06";
/// The end-of-central-directory record is 22 bytes plus a comment of at most 65535.
const EOCD_SEARCH: usize = 22 + 0xffff;

fn zerr(e: impl std::fmt::Display) -> Error {
    Error::Zip(e.to_string())
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Stored,
    Deflated,
    Other(u16),
}

/// One archive member, as torch would find it.
#[derive(Debug, Clone)]
pub(super) struct Member {
    /// The raw central-directory name (what miniz compares).
    pub name: String,
    method: Method,
    encrypted: bool,
    /// First byte of the data.
    data_start: usize,
    compressed: usize,
    size: usize,
    crc: u32,
}

impl Member {
    /// Where the member's bytes are, for reading them later.
    pub fn loc(&self) -> Result<StorageLoc> {
        if self.encrypted {
            return Err(Error::Zip(format!("entry `{}` is encrypted", self.name)));
        }
        match self.method {
            Method::Stored => Ok(StorageLoc::Range {
                start: self.data_start,
                len: self.size,
            }),
            Method::Deflated => Ok(StorageLoc::Deflated {
                start: self.data_start,
                compressed: self.compressed,
                len: self.size,
                crc: self.crc,
            }),
            Method::Other(m) => Err(Error::Zip(format!(
                "entry `{}` uses compression method {m}; only stored and deflated are read",
                self.name
            ))),
        }
    }
}

/// A checked archive: its members and torch's case-insensitive index of them.
pub(super) struct Archive {
    pub members: Vec<Member>,
    index: HashMap<Vec<u8>, usize>,
    /// The folder every record is looked up in (the first entry's).
    pub root: String,
}

impl Archive {
    /// Parses and checks the archive (see the module docs).
    pub fn open(bytes: &[u8]) -> Result<Archive> {
        let declared = check_end_record(bytes)?;
        let mut za = ZipArchive::new(Cursor::new(bytes)).map_err(zerr)?;
        // the zip crate keeps one entry per name; torch (miniz) sees every one
        if za.len() as u64 != declared {
            return Err(Error::Zip(format!(
                "the central directory lists {declared} entries but only {} distinct names; \
                 torch would see the entries a name hides",
                za.len()
            )));
        }
        let mut members = Vec::with_capacity(za.len());
        let mut spans = Vec::with_capacity(za.len());
        let mut index = HashMap::with_capacity(za.len());
        let mut central_start = usize::MAX;
        for i in 0..za.len() {
            let f = za.by_index_raw(i).map_err(zerr)?;
            let at = |v: u64| usize::try_from(v).ok().filter(|&x| x < bytes.len());
            let (Some(central), Some(header)) =
                (at(f.central_header_start()), at(f.header_start()))
            else {
                return Err(Error::Zip(format!(
                    "entry {i} (`{}`) starts past the end of the file",
                    f.name()
                )));
            };
            central_start = central_start.min(central);
            let raw = central_name(bytes, central)
                .ok_or_else(|| Error::Zip(format!("central directory entry {i} is truncated")))?;
            if raw != f.name().as_bytes() {
                return Err(Error::Zip(format!(
                    "entry {i} is named {:?} in the central directory but {:?} through an \
                     extra field; torch reads the raw name, so the two would read different files",
                    String::from_utf8_lossy(raw),
                    f.name()
                )));
            }
            let name = f.name().to_owned();
            let method = match f.compression() {
                CompressionMethod::Stored => Method::Stored,
                CompressionMethod::Deflated => Method::Deflated,
                #[allow(deprecated)]
                other => Method::Other(other.to_u16()),
            };
            let (compressed, size) = (f.compressed_size(), f.size());
            check_local_header(bytes, header, raw, &name)?;
            let data_start = usize::try_from(f.data_start()).map_err(zerr)?;
            let end = usize::try_from(compressed)
                .ok()
                .and_then(|c| data_start.checked_add(c))
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    Error::Zip(format!(
                        "entry `{name}` ({compressed} bytes at offset {data_start}) runs past the \
                         end of the {}-byte file",
                        bytes.len()
                    ))
                })?;
            match method {
                Method::Stored if compressed != size => {
                    return Err(Error::Zip(format!(
                        "stored entry `{name}` declares {size} bytes but holds {compressed}"
                    )))
                }
                Method::Deflated => {
                    let (ratio, limit) = if size > LARGE_MEMBER_BYTES {
                        (MAX_LARGE_DEFLATE_RATIO, "MAX_LARGE_DEFLATE_RATIO")
                    } else {
                        (MAX_DEFLATE_RATIO, "MAX_DEFLATE_RATIO")
                    };
                    let allowed = compressed.saturating_mul(ratio).saturating_add(1024);
                    if size > allowed {
                        return Err(Error::limit(
                            limit,
                            format!("declared size of compressed entry `{name}`"),
                            size,
                            allowed,
                        ));
                    }
                }
                _ => {}
            }
            let lower = name.to_ascii_lowercase().into_bytes();
            if let Some(&j) = index.get(&lower) {
                let other: &Member = &members[j];
                return Err(Error::Zip(format!(
                    "entries `{}` and `{name}` have the same name up to case; torch's record \
                     lookup ignores case and could read either",
                    other.name
                )));
            }
            index.insert(lower, i);
            spans.push((header, end, i));
            members.push(Member {
                name,
                method,
                encrypted: f.encrypted(),
                data_start,
                compressed: usize::try_from(compressed).map_err(zerr)?,
                size: usize::try_from(size).map_err(zerr)?,
                crc: f.crc32(),
            });
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if let [(_, end_a, a), (start_b, _, b)] = pair {
                if start_b < end_a {
                    return Err(Error::Zip(format!(
                        "entries `{}` and `{}` overlap in the file; an archive torch writes never \
                         shares bytes between entries",
                        members[*a].name, members[*b].name
                    )));
                }
            }
        }
        if let Some(&(_, end, i)) = spans.last() {
            if end > central_start {
                return Err(Error::Zip(format!(
                    "entry `{}` overlaps the central directory",
                    members[i].name
                )));
            }
        }
        let Some(first) = members.first() else {
            return Err(Error::UnknownFormat(
                "an empty zip archive: not a torch.save checkpoint".into(),
            ));
        };
        let Some((root, _)) = first.name.split_once('/') else {
            return Err(Error::UnknownFormat(format!(
                "the first zip entry `{}` is not in a folder; torch.save archives keep every \
                 record under one",
                first.name
            )));
        };
        Ok(Archive {
            root: root.to_owned(),
            members,
            index,
        })
    }

    /// The record `name` under the root folder, found the way torch finds it (ASCII case
    /// ignored).
    pub fn record(&self, name: &str) -> Option<&Member> {
        let full = format!("{}/{name}", self.root).to_ascii_lowercase();
        self.index.get(full.as_bytes()).map(|&i| &self.members[i])
    }

    /// Whether any member lies under `<root>/<folder>/`.
    pub fn has_folder(&self, folder: &str) -> bool {
        let prefix = format!("{}/{folder}/", self.root).to_ascii_lowercase();
        self.members
            .iter()
            .any(|m| m.name.to_ascii_lowercase().starts_with(&prefix))
    }
}

/// The file name bytes of the central-directory entry at `at`.
fn central_name(bytes: &[u8], at: usize) -> Option<&[u8]> {
    if bytes.get(at..at + 4)? != CENTRAL_SIG {
        return None;
    }
    let n = usize::from(u16_at(bytes, at + 28)?);
    bytes.get(at + 46..at + 46 + n)
}

/// The local header must carry the same name as the central directory.
fn check_local_header(bytes: &[u8], at: usize, raw: &[u8], name: &str) -> Result<()> {
    let local = (bytes.get(at..at + 4) == Some(&LOCAL_SIG[..]))
        .then(|| u16_at(bytes, at + 26))
        .flatten()
        .and_then(|n| bytes.get(at + 30..at + 30 + usize::from(n)));
    match local {
        Some(local) if local == raw => Ok(()),
        Some(local) => Err(Error::Zip(format!(
            "entry `{name}` is named {:?} in its local header at offset {at}; the central \
             directory and the local headers must agree",
            String::from_utf8_lossy(local)
        ))),
        None => Err(Error::Zip(format!(
            "entry `{name}` has no local header at offset {at}"
        ))),
    }
}

/// Finds the end-of-central-directory record as miniz does (the last signature), refuses an
/// archive with several candidates (a comment hiding a second directory), and refuses an
/// entry count over [`MAX_ZIP_ENTRIES`] before anything is parsed. Returns the entry count.
fn check_end_record(bytes: &[u8]) -> Result<u64> {
    let tail_start = bytes.len().saturating_sub(EOCD_SEARCH);
    let tail = &bytes[tail_start..];
    let found: Vec<usize> = tail
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == EOCD_SIG)
        .map(|(i, _)| tail_start + i)
        .collect();
    let eocd = match found.as_slice() {
        [] => return Err(Error::Zip("no end-of-central-directory record".into())),
        [one] => *one,
        [.., last] => {
            return Err(Error::Zip(format!(
                "{} end-of-central-directory signatures in the last 64 KiB (the last at offset \
                 {last}); readers may pick different ones, so the archive is ambiguous",
                found.len()
            )))
        }
    };
    let mut entries = u64::from(u16_at(bytes, eocd + 10).unwrap_or(0));
    if entries == 0xffff {
        // zip64: the locator sits just before the record and points at the zip64 record
        let zip64 = eocd
            .checked_sub(20)
            .filter(|&l| bytes.get(l..l + 4) == Some(&EOCD64_LOCATOR_SIG[..]))
            .and_then(|l| u64_at(bytes, l + 8))
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| bytes.get(o..o + 4) == Some(&EOCD64_SIG[..]))
            .and_then(|o| u64_at(bytes, o + 32));
        entries = zip64.ok_or_else(|| Error::Zip("broken zip64 end record".into()))?;
    }
    if entries > MAX_ZIP_ENTRIES as u64 {
        return Err(Error::limit(
            "MAX_ZIP_ENTRIES",
            "zip entries",
            entries,
            MAX_ZIP_ENTRIES as u64,
        ));
    }
    Ok(entries)
}

/// Inflates the raw deflate stream of `compressed` bytes at `start`, which must produce
/// exactly `len` bytes with CRC-32 `crc`.
pub(super) fn inflate(
    bytes: &[u8],
    start: usize,
    compressed: usize,
    len: usize,
    crc: u32,
) -> Result<Vec<u8>> {
    let data = start
        .checked_add(compressed)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| Error::Zip(format!("deflated entry at offset {start} is truncated")))?;
    let mut out = Vec::with_capacity(len);
    flate2::read::DeflateDecoder::new(data)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Zip(format!("deflated entry at offset {start}: {e}")))?;
    if out.len() != len {
        return Err(Error::Zip(format!(
            "deflated entry at offset {start} inflates to {} bytes, its header says {len}",
            out.len()
        )));
    }
    if crc32fast::hash(&out) != crc {
        return Err(Error::Zip(format!(
            "deflated entry at offset {start} fails its CRC-32 check"
        )));
    }
    Ok(out)
}

/// The bytes of a record of at most `limit` bytes (a pickle, the byteorder).
pub(super) fn read_record<'a>(
    bytes: &'a [u8],
    m: &Member,
    limit: usize,
    limit_name: &'static str,
) -> Result<Cow<'a, [u8]>> {
    let loc = m.loc()?;
    if loc.len() > limit {
        return Err(Error::limit(
            limit_name,
            format!("size of `{}`", m.name),
            loc.len() as u64,
            limit as u64,
        ));
    }
    Ok(match loc {
        StorageLoc::Range { start, len } => Cow::Borrowed(
            bytes
                .get(start..start + len)
                .ok_or_else(|| Error::Zip(format!("`{}` runs past the end", m.name)))?,
        ),
        StorageLoc::Deflated {
            start,
            compressed,
            len,
            crc,
        } => Cow::Owned(inflate(bytes, start, compressed, len, crc)?),
    })
}

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let archive = Archive::open(bytes)?;
    let root = archive.root.clone();
    let Some(pkl) = archive.record("data.pkl") else {
        return Err(Error::UnknownFormat(format!(
            "zip archive without `{root}/data.pkl`: not a torch.save checkpoint"
        )));
    };
    if let Some(m) = archive.record("byteorder") {
        let order = read_record(bytes, m, 16, "MAX_PICKLE_BYTES")?;
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
    let pickle = read_record(bytes, pkl, MAX_PICKLE_BYTES, "MAX_PICKLE_BYTES")?;
    let u = unpickle(&pickle, 0, Mode::Load).map_err(|e| match e {
        Error::Pickle { offset, what } => Error::Pickle {
            offset,
            what: format!("{what} (in {})", pkl.name),
        },
        other => other,
    })?;
    let builder = Builder::new(&u.arena, PidLayout::Zip);
    let root_node = builder.build(&u.value)?;
    // each storage the pickle declares, found as torch finds `data/<key>`
    let mut storages = HashMap::new();
    for key in builder.storages()?.into_keys() {
        if let Some(m) = archive.record(&format!("data/{key}")) {
            storages.insert(key, m.loc()?);
        }
    }
    Ok(Parsed {
        format: Format::TorchZip,
        protocol: Some(u.protocol),
        globals: u.globals,
        root: root_node,
        storages,
        metadata: None,
    })
}

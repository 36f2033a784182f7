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
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};

use ::zip::{CompressionMethod, ZipArchive};

use super::crc::{CrcTable, MemberCrc, Stored};
use super::tree::{Builder, PidLayout};
use super::{Format, Parsed, StorageLoc};
use crate::error::{Error, Result, ZipProblem};
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
    Error::zip(ZipProblem::Malformed, e.to_string())
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
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
    /// The central-directory name for messages (raw bytes, invalid UTF-8 replaced).
    pub name: String,
    /// The raw central-directory name: what miniz compares, whatever its encoding.
    raw: Vec<u8>,
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
            return Err(Error::zip(
                ZipProblem::Unsupported,
                format!("entry `{}` is encrypted", self.name),
            ));
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
            Method::Other(m) => Err(Error::zip(
                ZipProblem::Unsupported,
                format!(
                    "entry `{}` uses compression method {m}; only stored and deflated are read",
                    self.name
                ),
            )),
        }
    }
}

/// A checked archive: its members and torch's case-insensitive index of them.
pub(super) struct Archive {
    pub members: Vec<Member>,
    index: HashMap<Vec<u8>, usize>,
    /// The folder every record is looked up in (the first entry's), for messages.
    pub root: String,
    /// The same folder's raw bytes, for lookups.
    root_raw: Vec<u8>,
}

impl Archive {
    /// Parses and checks the archive (see the module docs). `file`, the opened file behind
    /// `bytes` if there is one, is where the zip reader and the local-header check read: with
    /// positioned reads, a header costs a page of the process's memory, where a fault on the map
    /// maps a whole large folio of the page cache (up to 2 MB on Linux 6.x) for each of the
    /// hundreds of members a checkpoint has.
    pub fn open(bytes: &[u8], file: Option<&File>) -> Result<Archive> {
        let dir = central_directory(bytes)?;
        let declared = dir.entries;
        let reader: Box<dyn ReadSeek + '_> = match file {
            Some(f) => Box::new(BufReader::with_capacity(4096, f)),
            None => Box::new(Cursor::new(bytes)),
        };
        let mut za = ZipArchive::new(reader).map_err(zerr)?;
        // the zip crate keeps one entry per name; torch (miniz) sees every one
        if za.len() as u64 != declared {
            return Err(Error::zip(
                ZipProblem::Ambiguous,
                format!(
                    "the central directory lists {declared} entries but only {} distinct names; \
                 torch would see the entries a name hides",
                    za.len()
                ),
            ));
        }
        let mut members = Vec::with_capacity(za.len());
        let mut spans = Vec::with_capacity(za.len());
        let mut index = HashMap::with_capacity(za.len());
        // miniz walks the directory entry by entry from the offset its end record names; the
        // zip crate must have read the very same entries, in order, at the same places
        let mut next_central = dir.offset;
        for i in 0..za.len() {
            let f = za.by_index_raw(i).map_err(zerr)?;
            let at = |v: u64| usize::try_from(v).ok().filter(|&x| x < bytes.len());
            let (Some(central), Some(header)) =
                (at(f.central_header_start()), at(f.header_start()))
            else {
                return Err(Error::zip(
                    ZipProblem::Truncated,
                    format!("entry {i} (`{}`) starts past the end of the file", f.name()),
                ));
            };
            if central != next_central {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                    "central directory entry {i} is read at offset {central}, but the directory \
                     torch reads (from the end record) has it at offset {next_central}; the \
                     archive holds more than one directory"
                ),
                ));
            }
            let entry = CentralEntry::at(bytes, central).ok_or_else(|| {
                Error::zip(
                    ZipProblem::Malformed,
                    format!("central directory entry {i} is truncated"),
                )
            })?;
            next_central = central + entry.len;
            let raw = entry.name;
            let name = String::from_utf8_lossy(raw).into_owned();
            if let Some(id) = entry.path_field {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                    "entry {i} (`{name}`) carries a Unicode name extra field (0x{id:04x}); torch \
                     reads the raw name and other readers the field's, so the two could read \
                     different files"
                ),
                ));
            }
            if raw != f.name_raw() {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                    "central directory entry {i} is named {name:?} at offset {central}, but the \
                     zip reader saw {:?}",
                    String::from_utf8_lossy(f.name_raw())
                ),
                ));
            }
            let Some((compressed, size, local_offset)) = entry.miniz_values() else {
                return Err(Error::zip(
                    ZipProblem::Malformed,
                    format!(
                        "entry `{name}` has saturated 32-bit sizes or offset but no zip64 field \
                     that holds them"
                    ),
                ));
            };
            if local_offset != f.header_start() {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                    "entry `{name}` records its local header at offset {local_offset}, but the \
                     zip reader placed it at {header}; data before the archive is not read"
                ),
                ));
            }
            let method = match f.compression() {
                CompressionMethod::Stored => Method::Stored,
                CompressionMethod::Deflated => Method::Deflated,
                #[allow(deprecated)]
                other => Method::Other(other.to_u16()),
            };
            // the sizes miniz (torch) reads, not the zip crate's: they differ when a 24-byte
            // zip64 field accompanies 32-bit values that are not saturated
            check_local_header(bytes, file, header, raw, &name)?;
            let data_start = usize::try_from(f.data_start()).map_err(zerr)?;
            let end = usize::try_from(compressed)
                .ok()
                .and_then(|c| data_start.checked_add(c))
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    Error::zip(
                        ZipProblem::Truncated,
                        format!(
                        "entry `{name}` ({compressed} bytes at offset {data_start}) runs past the \
                         end of the {}-byte file",
                        bytes.len()
                    ),
                    )
                })?;
            match method {
                Method::Stored if compressed != size => {
                    return Err(Error::zip(
                        ZipProblem::Malformed,
                        format!(
                            "stored entry `{name}` declares {size} bytes but holds {compressed}"
                        ),
                    ))
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
            let lower = raw.to_ascii_lowercase();
            if let Some(&j) = index.get(&lower) {
                let other: &Member = &members[j];
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                        "entries `{}` and `{name}` have the same name up to case; torch's record \
                     lookup ignores case and could read either",
                        other.name
                    ),
                ));
            }
            index.insert(lower, i);
            spans.push((header, end, i));
            members.push(Member {
                name,
                raw: raw.to_vec(),
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
                    return Err(Error::zip(
                        ZipProblem::Ambiguous,
                        format!(
                        "entries `{}` and `{}` overlap in the file; an archive torch writes never \
                         shares bytes between entries",
                        members[*a].name, members[*b].name
                    ),
                    ));
                }
            }
        }
        if next_central != dir.offset + dir.size {
            return Err(Error::zip(
                ZipProblem::Ambiguous,
                format!(
                    "the central directory at offset {} is {} bytes long, but its entries fill {}",
                    dir.offset,
                    dir.size,
                    next_central - dir.offset
                ),
            ));
        }
        if let Some(&(_, end, i)) = spans.last() {
            if end > dir.offset {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!("entry `{}` overlaps the central directory", members[i].name),
                ));
            }
        }
        let Some(first) = members.first() else {
            return Err(Error::UnknownFormat(
                "an empty zip archive: not a torch.save checkpoint".into(),
            ));
        };
        let Some(slash) = first.raw.iter().position(|&b| b == b'/') else {
            return Err(Error::UnknownFormat(format!(
                "the first zip entry `{}` is not in a folder; torch.save archives keep every \
                 record under one",
                first.name
            )));
        };
        let root_raw = first.raw[..slash].to_vec();
        Ok(Archive {
            root: String::from_utf8_lossy(&root_raw).into_owned(),
            root_raw,
            members,
            index,
        })
    }

    /// The record `name` under the root folder, found the way torch finds it (ASCII case
    /// ignored).
    pub fn record(&self, name: &str) -> Option<&Member> {
        let mut full = self.root_raw.to_ascii_lowercase();
        full.push(b'/');
        full.extend(name.to_ascii_lowercase().bytes());
        self.index.get(&full).map(|&i| &self.members[i])
    }

    /// Every member whose CRC-32 can be checked (stored or deflated, not encrypted), for
    /// [`CrcTable`].
    pub fn crc_table(&self) -> CrcTable {
        CrcTable::new(
            self.members
                .iter()
                .filter(|m| !m.encrypted)
                .filter_map(|m| {
                    let stored = match m.method {
                        Method::Stored => Stored::Plain,
                        Method::Deflated => Stored::Deflated { size: m.size },
                        Method::Other(_) => return None,
                    };
                    Some(MemberCrc::new(
                        m.name.clone(),
                        m.data_start,
                        m.compressed,
                        stored,
                        m.crc,
                    ))
                })
                .collect(),
        )
    }

    /// Whether any member lies under `<root>/<folder>/`.
    pub fn has_folder(&self, folder: &str) -> bool {
        let mut prefix = self.root_raw.to_ascii_lowercase();
        prefix.push(b'/');
        prefix.extend(folder.to_ascii_lowercase().bytes());
        prefix.push(b'/');
        self.members
            .iter()
            .any(|m| m.raw.to_ascii_lowercase().starts_with(&prefix))
    }
}

/// The fields of one central-directory entry that miniz reads, taken from the raw bytes.
struct CentralEntry<'a> {
    name: &'a [u8],
    /// The whole entry's length: the fixed 46 bytes, name, extra field and comment.
    len: usize,
    /// The 32-bit local header offset (`u32::MAX` when a zip64 field holds it).
    local_offset: u32,
    /// The id of a Unicode path extra field (0x7075) or Unicode comment field (0x6375).
    path_field: Option<u16>,
    /// The 32-bit compressed and uncompressed sizes.
    compressed32: u32,
    size32: u32,
    /// The data of the first zip64 extended information field (0x0001), if any.
    zip64: Option<&'a [u8]>,
}

impl<'a> CentralEntry<'a> {
    fn at(bytes: &'a [u8], at: usize) -> Option<Self> {
        if bytes.get(at..at + 4)? != CENTRAL_SIG {
            return None;
        }
        let n = usize::from(u16_at(bytes, at + 28)?);
        let m = usize::from(u16_at(bytes, at + 30)?);
        let k = usize::from(u16_at(bytes, at + 32)?);
        let local_offset = u32_at(bytes, at + 42)?;
        let name = bytes.get(at + 46..at + 46 + n)?;
        let extra = bytes.get(at + 46 + n..at + 46 + n + m)?;
        bytes.get(at + 46 + n + m..at + 46 + n + m + k)?;
        let mut path_field = None;
        let mut zip64 = None;
        let mut rest = extra;
        while rest.len() >= 4 {
            let id = u16::from_le_bytes([rest[0], rest[1]]);
            let size = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
            if id == 0x7075 || id == 0x6375 {
                path_field = Some(id);
            }
            if id == 0x0001 && zip64.is_none() {
                zip64 = Some(rest.get(4..4 + size).unwrap_or_default());
            }
            rest = rest.get(4 + size..).unwrap_or_default();
        }
        Some(CentralEntry {
            name,
            len: 46 + n + m + k,
            local_offset,
            path_field,
            compressed32: u32_at(bytes, at + 20)?,
            size32: u32_at(bytes, at + 24)?,
            zip64,
        })
    }

    /// `(compressed, size, local header offset)` as miniz reads them: the 32-bit values,
    /// except that when any is saturated (0xffffffff) each saturated one, in the order size,
    /// compressed, offset, is the next 8 bytes of the zip64 field. The zip crate instead reads
    /// all three from a 24-byte zip64 field whatever the 32-bit values say. `None` when the
    /// field is missing or too short for what miniz reads from it.
    fn miniz_values(&self) -> Option<(u64, u64, u64)> {
        const MAX: u32 = u32::MAX;
        let (c, s, o) = (self.compressed32, self.size32, self.local_offset);
        if c != MAX && s != MAX && o != MAX {
            return Some((u64::from(c), u64::from(s), u64::from(o)));
        }
        let mut field = self.zip64?;
        let mut next = |v: u32| -> Option<u64> {
            if v != MAX {
                return Some(u64::from(v));
            }
            let x = u64::from_le_bytes(field.get(..8)?.try_into().ok()?);
            field = &field[8..];
            Some(x)
        };
        let size = next(s)?;
        let compressed = next(c)?;
        let offset = next(o)?;
        Some((compressed, size, offset))
    }
}

/// The local header must carry the same name as the central directory.
fn check_local_header(
    bytes: &[u8],
    file: Option<&File>,
    at: usize,
    raw: &[u8],
    name: &str,
) -> Result<()> {
    // the fixed header and as many name bytes as the directory's name has, or what is there
    let head = span(bytes, file, at, 30 + raw.len())?;
    let len = (head.get(..4) == Some(&LOCAL_SIG[..]))
        .then(|| u16_at(&head, 26))
        .flatten()
        .map(usize::from);
    match len {
        Some(n) if n == raw.len() && head.get(30..30 + n) == Some(raw) => Ok(()),
        Some(n) => Err(Error::zip(
            ZipProblem::Ambiguous,
            format!(
                "entry `{name}` is named {:?} in its local header at offset {at}; the central \
             directory and the local headers must agree",
                String::from_utf8_lossy(&span(bytes, file, at + 30, n)?)
            ),
        )),
        None => Err(Error::zip(
            ZipProblem::Malformed,
            format!("entry `{name}` has no local header at offset {at}"),
        )),
    }
}

/// Up to `len` bytes at `at` (fewer at the end of the archive): read from `file` when there is
/// one (see [`Archive::open`]), else sliced from `bytes`.
fn span<'a>(bytes: &'a [u8], file: Option<&File>, at: usize, len: usize) -> Result<Cow<'a, [u8]>> {
    let len = len.min(bytes.len().saturating_sub(at));
    Ok(match file {
        Some(f) => {
            let mut buf = vec![0u8; len];
            crate::fileio::read_exact_at(f, &mut buf, at as u64).map_err(|e| {
                Error::zip(
                    ZipProblem::Read,
                    format!("reading {len} bytes at offset {at}: {e}"),
                )
            })?;
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(bytes.get(at..at + len).unwrap_or_default()),
    })
}

/// What the zip crate reads the archive through: the mapped bytes or the file.
trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Where miniz finds the central directory, and how many entries it reads there.
struct Directory {
    offset: usize,
    size: usize,
    entries: u64,
}

/// Finds the central directory exactly as miniz (torch's `PyTorchFileReader`) does: the last
/// end-record signature with a whole record after it, then the zip64 end record whenever a
/// valid zip64 locator sits just before it, whatever the classic record's counts say.
///
/// On top of that it refuses what only a crafted archive has, since readers resolve those
/// differently: more than one end-record signature in the last 64 KiB, a comment that does not
/// end exactly at the end of the file (torch writes none), a zip64 record that disagrees with a
/// classic record that is not saturated, several disks, and more than [`MAX_ZIP_ENTRIES`]
/// entries, checked before anything is parsed.
fn central_directory(bytes: &[u8]) -> Result<Directory> {
    const EOCD_LEN: usize = 22;
    const LOCATOR_LEN: usize = 20;
    const EOCD64_LEN: usize = 56;
    let tail_start = bytes.len().saturating_sub(EOCD_SEARCH);
    let tail = &bytes[tail_start..];
    let found: Vec<usize> = tail
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == EOCD_SIG)
        .map(|(i, _)| tail_start + i)
        .collect();
    let eocd = match found.as_slice() {
        [] => {
            return Err(Error::zip(
                ZipProblem::Truncated,
                "no end-of-central-directory record".into(),
            ))
        }
        [one] => *one,
        [.., last] => {
            return Err(Error::zip(
                ZipProblem::Ambiguous,
                format!(
                "{} end-of-central-directory signatures in the last 64 KiB (the last at offset \
                 {last}); readers may pick different ones, so the archive is ambiguous",
                found.len()
            ),
            ))
        }
    };
    let field16 = |at: usize| u64::from(u16_at(bytes, eocd + at).unwrap_or(0));
    let field32 = |at: usize| u64::from(u32_at(bytes, eocd + at).unwrap_or(0));
    if bytes.len() - eocd < EOCD_LEN {
        return Err(Error::zip(
            ZipProblem::Truncated,
            format!(
                "the end-of-central-directory record at offset {eocd} is cut short by the end of \
             the file"
            ),
        ));
    }
    let comment = field16(20) as usize;
    if eocd + EOCD_LEN + comment != bytes.len() {
        return Err(Error::zip(
            ZipProblem::Ambiguous,
            format!(
                "the end-of-central-directory record at offset {eocd} declares a {comment}-byte \
             comment, which ends at offset {} but the file ends at {}; readers disagree on \
             which record counts",
                eocd + EOCD_LEN + comment,
                bytes.len()
            ),
        ));
    }
    let (disk, cd_disk) = (field16(4), field16(6));
    let (mut entries, mut on_disk) = (field16(10), field16(8));
    let (mut size, mut offset) = (field32(12), field32(16));
    // miniz reads the zip64 record whenever a locator with its signature precedes the record
    let locator = eocd
        .checked_sub(LOCATOR_LEN)
        .filter(|_| eocd >= LOCATOR_LEN + EOCD64_LEN)
        .filter(|&l| bytes.get(l..l + 4) == Some(&EOCD64_LOCATOR_SIG[..]));
    if let Some(l) = locator {
        let at = u64_at(bytes, l + 8).unwrap_or(u64::MAX);
        let record = usize::try_from(at)
            .ok()
            .filter(|&o| o <= bytes.len() - EOCD64_LEN)
            .ok_or_else(|| {
                Error::zip(
                    ZipProblem::Malformed,
                    format!(
                    "the zip64 locator at offset {l} points at offset {at}, past the end of the \
                     file"
                ),
                )
            })?;
        if bytes.get(record..record + 4) == Some(&EOCD64_SIG[..]) {
            let disks = u32_at(bytes, l + 16).unwrap_or(0);
            let at64 = |o: usize| u64_at(bytes, record + o).unwrap_or(u64::MAX);
            let (e64, d64, s64, o64) = (at64(32), at64(24), at64(40), at64(48));
            if disks != 1 || at64(4) < EOCD64_LEN as u64 - 12 {
                return Err(Error::zip(
                    ZipProblem::Malformed,
                    format!(
                    "the zip64 end record at offset {record} is malformed or spans several disks"
                ),
                ));
            }
            // a classic field either saturated (zip64 holds the value) or equal to it
            let agrees = |classic: u64, max: u64, wide: u64| classic == max || classic == wide;
            if !(agrees(entries, 0xffff, e64)
                && agrees(size, 0xffff_ffff, s64)
                && agrees(offset, 0xffff_ffff, o64))
            {
                return Err(Error::zip(
                    ZipProblem::Ambiguous,
                    format!(
                    "the zip64 end record at offset {record} names a central directory at offset \
                     {o64} ({e64} entries), the classic record one at offset {offset} ({entries} \
                     entries); readers disagree on which counts"
                ),
                ));
            }
            (entries, on_disk, size, offset) = (e64, d64, s64, o64);
        }
    }
    if disk != 0 || cd_disk != 0 || on_disk != entries {
        return Err(Error::zip(
            ZipProblem::Unsupported,
            "the archive spans several disks; torch writes one file".into(),
        ));
    }
    if entries > MAX_ZIP_ENTRIES as u64 {
        return Err(Error::limit(
            "MAX_ZIP_ENTRIES",
            "zip entries",
            entries,
            MAX_ZIP_ENTRIES as u64,
        ));
    }
    let end = offset.saturating_add(size);
    if end > eocd as u64 || size < entries * 46 {
        return Err(Error::zip(
            ZipProblem::Malformed,
            format!(
                "the central directory ({size} bytes at offset {offset}, {entries} entries) does \
             not fit before the end record at offset {eocd}"
            ),
        ));
    }
    Ok(Directory {
        offset: offset as usize,
        size: size as usize,
        entries,
    })
}

/// Inflates the raw deflate stream of `compressed` bytes at `start`, which must produce
/// exactly `len` bytes with CRC-32 `crc` (the member `name`, for messages).
pub(super) fn inflate(
    bytes: &[u8],
    start: usize,
    compressed: usize,
    len: usize,
    crc: u32,
    name: &str,
) -> Result<Vec<u8>> {
    let data = start
        .checked_add(compressed)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            Error::zip(
                ZipProblem::Truncated,
                format!("deflated entry at offset {start} is truncated"),
            )
        })?;
    let mut out = Vec::with_capacity(len);
    flate2::read::DeflateDecoder::new(data)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::zip(
                ZipProblem::Malformed,
                format!("deflated entry at offset {start}: {e}"),
            )
        })?;
    if out.len() != len {
        return Err(Error::zip(
            ZipProblem::Malformed,
            format!(
                "deflated entry at offset {start} inflates to {} bytes, its header says {len}",
                out.len()
            ),
        ));
    }
    let actual = crc32fast::hash(&out);
    if actual != crc {
        return Err(Error::ZipCrc {
            member: name.to_owned(),
            expected: crc,
            actual,
        });
    }
    Ok(out)
}

/// The bytes of a record of at most `limit` bytes (a pickle, the byteorder), CRC-32 checked:
/// a record is read whole, so the check costs no extra read.
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
        StorageLoc::Range { start, len } => {
            let data = bytes.get(start..start + len).ok_or_else(|| {
                Error::zip(
                    ZipProblem::Truncated,
                    format!("`{}` runs past the end", m.name),
                )
            })?;
            let actual = crc32fast::hash(data);
            if actual != m.crc {
                return Err(Error::ZipCrc {
                    member: m.name.clone(),
                    expected: m.crc,
                    actual,
                });
            }
            Cow::Borrowed(data)
        }
        StorageLoc::Deflated {
            start,
            compressed,
            len,
            crc,
        } => Cow::Owned(inflate(bytes, start, compressed, len, crc, &m.name)?),
    })
}

pub(super) fn parse(bytes: &[u8], file: Option<&File>) -> Result<Parsed> {
    let archive = Archive::open(bytes, file)?;
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
                return Err(Error::zip(
                    ZipProblem::Unsupported,
                    format!(
                        "byteorder record is {:?}, expected \"little\"",
                        String::from_utf8_lossy(other)
                    ),
                ))
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
        crc: archive.crc_table(),
        format: Format::TorchZip,
        protocol: Some(u.protocol),
        globals: u.globals,
        root: root_node,
        storages,
        metadata: None,
    })
}

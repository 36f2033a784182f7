//! `inspect --scan`: every global a file's pickles reference, classified, without loading any
//! tensor and without refusing (so one report lists them all).
//!
//! The scan fails closed: it reads the pickles torch would run, in the container torch would
//! see, and anything it cannot read to the end, or that torch could read differently, is a
//! [`Problem`] that makes the file unsafe, never a silent stop. What it guarantees and what
//! it does not is in docs/security.md.

use serde::Serialize;

use super::zip::{read_record, Archive};
use super::Format;
use crate::error::{Error, Result};
use crate::pickle::{scan_pickle, GlobalClass, GlobalRef, MAX_PICKLE_BYTES};

/// Pickles a legacy torch.save file holds before its raw storages: magic number, protocol
/// version, sys_info, the object, the storage keys; torch runs each in turn.
const LEGACY_PICKLES: usize = 5;

/// One global found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which pickle inside the file (`archive/data.pkl`, or `pickle 4`, the fifth of a legacy
    /// file's run of pickles).
    pub pickle: String,
    /// `module.name`.
    pub global: String,
    /// Byte offset of the opcode: in the zip entry, or in the file for a legacy run of pickles.
    pub offset: usize,
    /// Classification.
    pub class: GlobalClass,
}

/// Something the scan could not vouch for: a pickle it could not read to the end, or a
/// container that torch may read differently. Any problem makes the file unsafe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: a pickle or the container.
    pub place: String,
    /// What went wrong.
    pub what: String,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scan {
    /// Every global referenced, in file order.
    pub findings: Vec<Finding>,
    /// What could not be vouched for.
    pub problems: Vec<Problem>,
}

impl Scan {
    /// Safe: no dangerous or unknown global, and nothing left unread.
    pub fn is_safe(&self) -> bool {
        self.problems.is_empty()
            && !self
                .findings
                .iter()
                .any(|f| matches!(f.class, GlobalClass::Dangerous | GlobalClass::Unknown))
    }

    fn globals(&mut self, pickle: &str, globals: Vec<GlobalRef>) {
        self.findings.extend(globals.into_iter().map(|g| Finding {
            pickle: pickle.to_owned(),
            global: format!("{}.{}", g.module, g.name),
            offset: g.offset,
            class: g.class,
        }));
    }

    fn problem(&mut self, place: impl Into<String>, what: impl Into<String>) {
        self.problems.push(Problem {
            place: place.into(),
            what: what.into(),
        });
    }

    /// Scans the pickle at `start` of `data`; returns where it ended, if it did.
    fn pickle(&mut self, place: &str, data: &[u8], start: usize) -> Option<usize> {
        let s = scan_pickle(data, start);
        self.globals(place, s.globals);
        match s.end {
            Ok(end) => Some(end),
            Err(e) => {
                // where a later pickle of a legacy file starts helps whoever looks at it
                let place = if start > 0 {
                    format!("{place} (file offset {start})")
                } else {
                    place.to_owned()
                };
                self.problem(
                    place,
                    format!(
                        "could not be read to the end ({e}); Python's unpickler would have run \
                         every call before that point and may read on differently"
                    ),
                );
                None
            }
        }
    }
}

/// Lists and classifies every global in the pickles of `bytes` (a torch.save zip, a legacy
/// file, a bare pickle, or safetensors, which has none).
///
/// # Errors
///
/// A file that is no pickle at all, or an archive whose structure is refused (see
/// [`Checkpoint::open`](super::Checkpoint::open)), is an error rather than a report; so is a
/// zip member whose bytes fail their CRC-32 ([`Error::ZipCrc`]): a scan reads every member
/// of an archive to check it.
pub fn scan(bytes: &[u8]) -> Result<Scan> {
    scan_with(bytes, None)
}

fn scan_with(bytes: &[u8], file: Option<&std::fs::File>) -> Result<Scan> {
    let mut out = Scan::default();
    match super::sniff(bytes) {
        Ok(Format::TorchZip) => scan_zip(bytes, file, &mut out)?,
        Ok(Format::SafeTensors) => {}
        Err(Error::UnsupportedFormat(what)) if is_tar(bytes) => {
            // torch.load still reads these (its `legacy_load`), unpickling their members
            out.problem("tar archive", what);
        }
        Ok(Format::TorchLegacy) | Err(_) => {
            // torch.load runs a non-zip file's pickles one after another (magic number,
            // version, sys_info, object, storage keys); a bare pickle is the first of them
            let first = scan_pickle(bytes, 0);
            if let (Err(e), []) = (&first.end, first.globals.as_slice()) {
                if !bytes.is_empty() && matches!(e, Error::Pickle { offset: 0, .. }) {
                    return Err(Error::UnknownFormat(format!(
                        "neither a torch.save zip, a pickle nor safetensors ({e})"
                    )));
                }
            }
            let mut pos = 0;
            for n in 0..LEGACY_PICKLES {
                if pos >= bytes.len() {
                    break;
                }
                match out.pickle(&format!("pickle {n}"), bytes, pos) {
                    Some(end) => pos = end,
                    None => break,
                }
            }
        }
    }
    Ok(out)
}

fn is_tar(bytes: &[u8]) -> bool {
    super::is_tar(bytes)
}

fn scan_zip(bytes: &[u8], file: Option<&std::fs::File>, out: &mut Scan) -> Result<()> {
    let archive = Archive::open(bytes, file)?;
    // a verdict on a file vouches for its bytes too: every member's CRC-32, as `testzip()`
    archive.crc_table().check_all(bytes, file)?;
    if archive.record("data.pkl").is_none() {
        out.problem(
            format!("{}/", archive.root),
            "no data.pkl under the archive's first folder, where torch looks for it",
        );
    }
    if archive.has_folder("code") || archive.record("constants.pkl").is_some() {
        out.problem(
            format!("{}/", archive.root),
            "a TorchScript archive: torch.load hands it to torch.jit.load, which runs its code",
        );
    }
    for m in &archive.members {
        if !m.name.to_ascii_lowercase().ends_with(".pkl") {
            continue;
        }
        match read_record(bytes, m, MAX_PICKLE_BYTES, "MAX_PICKLE_BYTES") {
            Ok(data) => {
                out.pickle(&m.name, &data, 0);
            }
            Err(e) => out.problem(&m.name, format!("could not be read: {e}")),
        }
    }
    Ok(())
}

/// [`scan`] of a file, mapped read-only.
///
/// # Errors
///
/// As [`scan`], plus I/O errors and inputs that are not regular files.
pub fn scan_file(path: &std::path::Path) -> Result<Scan> {
    let (file, source) = super::open_mapped(path)?;
    if source.is_empty() {
        return Err(Error::UnknownFormat("the file is empty".into()).with_path(path));
    }
    scan_with(&source, Some(&file)).map_err(|e| e.with_path(path))
}

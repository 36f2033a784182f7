//! `inspect --scan`: every global a file's pickles reference, classified, without loading any
//! tensor and without refusing (so one report lists them all).

use std::io::Cursor;

use serde::Serialize;

use super::Format;
use crate::error::{Error, Result};
use crate::pickle::{unpickle, GlobalClass, GlobalRef, Mode, MAX_PICKLE_BYTES};

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

fn findings(pickle: &str, globals: Vec<GlobalRef>) -> impl Iterator<Item = Finding> + '_ {
    globals.into_iter().map(move |g| Finding {
        pickle: pickle.to_owned(),
        global: format!("{}.{}", g.module, g.name),
        offset: g.offset,
        class: g.class,
    })
}

/// Lists and classifies every global in the pickles of `bytes` (a torch.save zip, a legacy
/// file, a bare pickle, or safetensors, which has none).
pub fn scan(bytes: &[u8]) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    match super::sniff(bytes) {
        Ok(Format::TorchZip) => {
            let mut za = ::zip::ZipArchive::new(Cursor::new(bytes))
                .map_err(|e| Error::Zip(e.to_string()))?;
            for i in 0..za.len() {
                let mut f = za.by_index(i).map_err(|e| Error::Zip(e.to_string()))?;
                let name = f.name().to_owned();
                if !name.ends_with(".pkl") {
                    continue;
                }
                if f.size() > MAX_PICKLE_BYTES as u64 {
                    return Err(Error::limit(
                        "MAX_PICKLE_BYTES",
                        format!("zip entry `{name}`"),
                        f.size(),
                        MAX_PICKLE_BYTES as u64,
                    ));
                }
                let mut data = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut f, MAX_PICKLE_BYTES as u64),
                    &mut data,
                )
                .map_err(|e| Error::Zip(format!("entry `{name}`: {e}")))?;
                let u = unpickle(&data, 0, Mode::Scan)?;
                out.extend(findings(&name, u.globals));
            }
        }
        Ok(Format::SafeTensors) => {}
        Ok(Format::TorchLegacy) | Err(_) => {
            // a legacy torch.save file is a run of pickles followed by raw storage bytes; a bare
            // pickle (any protocol, so also what sniffing refuses) is one. Scan pickles until the
            // bytes stop being one.
            let mut pos = 0;
            let mut n = 0;
            while pos < bytes.len() && n < 5 {
                let u = match unpickle(bytes, pos, Mode::Scan) {
                    Ok(u) => u,
                    Err(e) if n == 0 => return Err(e),
                    Err(_) => break,
                };
                out.extend(findings(&format!("pickle {n}"), u.globals));
                pos = u.end;
                n += 1;
            }
        }
    }
    Ok(out)
}

/// [`scan`] of a file, mapped read-only.
pub fn scan_file(path: &std::path::Path) -> Result<Vec<Finding>> {
    let (_file, source) = super::open_mapped(path)?;
    if source.is_empty() {
        return Err(Error::UnknownFormat("the file is empty".into()).with_path(path));
    }
    scan(&source).map_err(|e| e.with_path(path))
}

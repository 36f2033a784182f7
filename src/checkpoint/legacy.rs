//! Legacy torch.save (before PyTorch 1.6, or `_use_new_zipfile_serialization=False`): a magic
//! number, a protocol version, sys_info, the object, the storage keys, then each storage as an
//! 8-byte element count followed by its raw bytes.

use std::collections::HashMap;

use super::tree::{Builder, PidLayout};
use super::{Format, Parsed, StorageLoc};
use crate::error::{Error, Result};
use crate::pickle::{unpickle, Arena, Mode, Object, Value};

/// `0x1950a86a20f9469cfc6c` as little-endian bytes, as pickle's LONG1 writes it.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

fn structure(what: impl Into<String>) -> Error {
    Error::Structure(what.into())
}

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let magic = unpickle(bytes, 0, Mode::Load)?;
    if !matches!(&magic.value, Value::BigInt(b) if **b == MAGIC) {
        return Err(Error::UnknownFormat(
            "a pickle, but not a torch.save file: the legacy magic number is missing at offset 0"
                .into(),
        ));
    }
    let version = unpickle(bytes, magic.end, Mode::Load)?;
    if !matches!(version.value, Value::Int(PROTOCOL_VERSION)) {
        return Err(structure(format!(
            "legacy protocol version at offset {} is {:?}, expected {PROTOCOL_VERSION}",
            magic.end, version.value
        )));
    }
    let sys_info = unpickle(bytes, version.end, Mode::Load)?;
    check_sys_info(&sys_info.arena, &sys_info.value)?;
    let main_start = sys_info.end;
    let main = unpickle(bytes, main_start, Mode::Load).map_err(|e| match e {
        Error::Pickle { offset, what } => Error::Pickle {
            offset,
            what: format!("{what} (object pickle starting at file offset {main_start})"),
        },
        other => other,
    })?;
    let builder = Builder::new(&main.arena, PidLayout::Legacy);
    let root = builder.build(&main.value)?;
    let declared = builder.storages()?;
    let keys_pickle = unpickle(bytes, main.end, Mode::Load)?;
    let keys: Vec<String> = match keys_pickle.arena.seq(&keys_pickle.value) {
        Some(items) => items
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.to_string()),
                _ => Err(structure("storage key list holds a non-string")),
            })
            .collect::<Result<_>>()?,
        None => {
            return Err(structure(format!(
                "no storage key list at offset {}",
                main.end
            )))
        }
    };
    let mut storages = HashMap::new();
    let mut pos = keys_pickle.end;
    for key in keys {
        let Some(declared) = declared.get(key.as_str()) else {
            return Err(structure(format!(
                "storage `{key}` is listed but no tensor uses it, so its element size is unknown"
            )));
        };
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            structure(format!(
                "truncated: storage `{key}` header at offset {pos} is past the end"
            ))
        })?;
        let mut n = [0u8; 8];
        n.copy_from_slice(header);
        let numel = u64::from_le_bytes(n);
        // torch's _set_from_file refuses a size other than the declared one
        if usize::try_from(numel).ok() != Some(declared.numel) {
            return Err(structure(format!(
                "storage `{key}` at offset {pos} holds {numel} elements, but the pickle declares {}",
                declared.numel
            )));
        }
        if storages.contains_key(&key) {
            return Err(structure(format!("storage `{key}` is listed twice")));
        }
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(declared.dtype.size()))
            .filter(|&len| len <= bytes.len())
            .ok_or_else(|| {
                structure(format!(
                "storage `{key}` at offset {pos} claims {numel} elements, more than the file holds"
            ))
            })?;
        let start = pos + 8;
        if start + len > bytes.len() {
            return Err(structure(format!(
                "truncated: storage `{key}` needs {len} bytes at offset {start}, the file has {}",
                bytes.len()
            )));
        }
        storages.insert(key, StorageLoc::Range { start, len });
        pos = start + len;
    }
    let mut globals = magic.globals;
    globals.extend(main.globals);
    Ok(Parsed {
        crc: Default::default(),
        format: Format::TorchLegacy,
        protocol: Some(main.protocol),
        globals,
        root,
        storages,
        metadata: None,
    })
}

fn check_sys_info(arena: &Arena, v: &Value) -> Result<()> {
    let Some(Object::Dict(items)) = arena.object(v) else {
        return Err(structure("legacy sys_info is not a dict"));
    };
    for (k, v) in items {
        if matches!(k, Value::Str(s) if &**s == "little_endian") && matches!(v, Value::Bool(false))
        {
            return Err(Error::UnsupportedFormat(
                "the checkpoint was saved on a big-endian machine; re-save it on a little-endian one".into(),
            ));
        }
    }
    Ok(())
}

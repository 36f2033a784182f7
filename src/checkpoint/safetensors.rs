//! safetensors as input: one contiguous storage per tensor, read in place.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use ::safetensors::SafeTensors;

use super::tree::{Node, RawTensor, StorageRef};
use super::{Format, Parsed, StorageLoc};
use crate::dtype::DType;
use crate::error::{Error, Result, SafeTensorsProblem, TensorProblem};

/// Largest safetensors header the safetensors readers accept (their `MAX_HEADER_SIZE`); what
/// timmconv reads and what it writes are held to it.
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// Most tensors a safetensors input may hold: the same budget a `.pth` has for its storages
/// (`MAX_ZIP_ENTRIES`, 131 072 zip members), counted before the header is parsed into
/// maps (a 76 MB header of a million tiny tensors cost gigabytes and half a minute).
pub const MAX_SAFETENSORS_TENSORS: usize = super::zip::MAX_ZIP_ENTRIES;

/// Most entries of a safetensors input's `__metadata__` map (writers put a handful there:
/// `format`, a version, a checksum); 7 million one-character entries in an 83 MB header cost
/// 1.6 GB and 92 s before this limit.
pub const MAX_SAFETENSORS_METADATA_ENTRIES: usize = 4096;

/// Which limit a header broke, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    No,
    Tensors,
    Metadata,
}

/// Counts the entries of a JSON object without building them, refusing past `limit`; at the
/// top level (`metadata` false) `__metadata__` is no tensor and its own entries are counted
/// against [`MAX_SAFETENSORS_METADATA_ENTRIES`].
struct CountEntries<'a> {
    limit: usize,
    metadata: bool,
    over: &'a std::cell::Cell<Over>,
}

impl<'de> serde::de::DeserializeSeed<'de> for CountEntries<'_> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CountEntries<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        use serde::de::IgnoredAny;
        let mut n = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !self.metadata && key == "__metadata__" {
                map.next_value_seed(CountEntries {
                    limit: MAX_SAFETENSORS_METADATA_ENTRIES,
                    metadata: true,
                    over: self.over,
                })?;
                continue;
            }
            map.next_value::<IgnoredAny>()?;
            n += 1;
            if n > self.limit {
                self.over.set(if self.metadata {
                    Over::Metadata
                } else {
                    Over::Tensors
                });
                return Err(serde::de::Error::custom("too many entries"));
            }
        }
        Ok(n)
    }
}

/// Refuses a header of more than [`MAX_SAFETENSORS_TENSORS`] entries (and one that is not a
/// JSON object of a length the file holds), before anything is allocated per entry.
pub(crate) fn count_tensors(bytes: &[u8]) -> Result<()> {
    let (Some(len), Some(rest)) = (bytes.get(..8), bytes.get(8..)) else {
        return Err(Error::safetensors(
            SafeTensorsProblem::Truncated,
            "the file is shorter than its header length".into(),
        ));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(len);
    let header_len = usize::try_from(u64::from_le_bytes(n)).unwrap_or(usize::MAX);
    Error::at_most("MAX_HEADER_BYTES", header_len, MAX_HEADER_BYTES, || {
        "bytes of the safetensors header"
    })?;
    let Some(header) = rest.get(..header_len) else {
        return Err(Error::safetensors(
            SafeTensorsProblem::Truncated,
            format!(
                "the header says {header_len} bytes, the file holds {}",
                rest.len()
            ),
        ));
    };
    let limit = MAX_SAFETENSORS_TENSORS;
    let over = std::cell::Cell::new(Over::No);
    let mut de = serde_json::Deserializer::from_slice(header);
    let seed = CountEntries {
        limit,
        metadata: false,
        over: &over,
    };
    // any other defect is left to the full parse, which words it as safetensors does
    let _ = serde::de::DeserializeSeed::deserialize(seed, &mut de);
    match over.get() {
        Over::No => {}
        Over::Tensors => {
            return Err(Error::limit(
                "MAX_SAFETENSORS_TENSORS",
                "tensors in the safetensors header (at least; counted before parsing it)",
                MAX_SAFETENSORS_TENSORS as u64 + 1,
                MAX_SAFETENSORS_TENSORS as u64,
            ))
        }
        Over::Metadata => {
            return Err(Error::limit(
                "MAX_SAFETENSORS_METADATA_ENTRIES",
                "entries of the safetensors `__metadata__` (at least; counted before parsing it)",
                MAX_SAFETENSORS_METADATA_ENTRIES as u64 + 1,
                MAX_SAFETENSORS_METADATA_ENTRIES as u64,
            ))
        }
    }
    Ok(())
}

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let serr = |e: ::safetensors::SafeTensorError| {
        let problem = match e {
            // the data ends before the header's offsets do
            ::safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                SafeTensorsProblem::Truncated
            }
            _ => SafeTensorsProblem::Invalid,
        };
        Error::safetensors(problem, e.to_string())
    };
    count_tensors(bytes)?;
    // deserialize validates the header, every offset and the total length
    SafeTensors::deserialize(bytes).map_err(serr)?;
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(serr)?;
    let data_start = header_len + 8;
    let mut storages = HashMap::new();
    let mut items = Vec::new();
    for name in meta.offset_keys() {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let dtype = DType::from_safetensors(info.dtype).ok_or_else(|| {
            Error::tensor(
                TensorProblem::Unsupported,
                &name,
                format!("dtype {:?} is not supported", info.dtype),
            )
        })?;
        let (begin, end) = info.data_offsets;
        let numel: usize = info.shape.iter().product();
        let mut stride = vec![1usize; info.shape.len()];
        for i in (0..info.shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * info.shape[i + 1];
        }
        storages.insert(
            name.clone(),
            StorageLoc::Range {
                start: data_start + begin,
                len: end - begin,
            },
        );
        items.push((
            Node::Str(name.as_str().into()),
            Node::Tensor(Rc::new(RawTensor {
                storage: StorageRef {
                    key: name,
                    dtype,
                    numel,
                    view: None,
                },
                offset: 0,
                shape: info.shape.clone(),
                stride,
            })),
        ));
    }
    let metadata = meta.metadata().as_ref().map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    });
    Ok(Parsed {
        crc: Default::default(),
        format: Format::SafeTensors,
        protocol: None,
        globals: Vec::new(),
        root: Node::Dict(items.into()),
        storages,
        metadata,
    })
}

//! safetensors as input: one contiguous storage per tensor, read in place.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use ::safetensors::SafeTensors;

use super::tree::{Node, RawTensor, StorageRef};
use super::{Format, Parsed, StorageLoc};
use crate::dtype::DType;
use crate::error::{Error, Result};

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let serr = |e: ::safetensors::SafeTensorError| Error::SafeTensors(e.to_string());
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
            Error::tensor(&name, format!("dtype {:?} is not supported", info.dtype))
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
        format: Format::SafeTensors,
        protocol: None,
        globals: Vec::new(),
        root: Node::Dict(items.into()),
        storages,
        metadata,
    })
}

//! Parameters and bytes per module prefix: the state dict read as a tree of modules, the way
//! torchinfo's summary is read.

use std::collections::HashMap;

use serde::Serialize;

use super::TensorInfo;

/// One module prefix (`stages.0.blocks`) and what the tensors under it hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    /// The prefix, dot-separated (a top-level tensor such as `cls_token` is its own entry).
    pub prefix: String,
    /// Levels below the root: 1 for `stages`, 2 for `stages.0`.
    pub depth: usize,
    /// Tensors under it.
    pub tensors: usize,
    /// Elements under it (parameters and buffers).
    pub params: u64,
    /// Bytes under it.
    pub bytes: u64,
}

/// The most levels [`modules`] goes down (more is taken as this many): no timm model nests
/// deeper, and each level costs a copy of every name.
pub const MAX_MODULE_DEPTH: usize = 64;

/// Every module prefix up to `max_depth` levels, in the state dict's order (parents before their
/// children, each where its first tensor appears).
///
/// ```
/// # let ckpt = timmconv::Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &Default::default())?;
/// let tree = timmconv::checkpoint::modules(ckpt.tensors(), 1);
/// assert_eq!(tree.iter().map(|m| m.params).sum::<u64>(), ckpt.total_numel());
/// # Ok::<(), timmconv::Error>(())
/// ```
pub fn modules(tensors: &[TensorInfo], max_depth: usize) -> Vec<Module> {
    let max_depth = max_depth.min(MAX_MODULE_DEPTH);
    let mut out: Vec<Module> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for t in tensors {
        let parts: Vec<&str> = t.name.split('.').collect();
        // a tensor's own name is not a module, unless it is at the top level
        let levels = parts.len().saturating_sub(1).max(1).min(max_depth);
        let mut prefix = String::new();
        for (d, part) in parts
            .iter()
            .enumerate()
            .take(levels)
            .map(|(i, p)| (i + 1, p))
        {
            if d > 1 {
                prefix.push('.');
            }
            prefix.push_str(part);
            let prefix = prefix.clone();
            let i = *index.entry(prefix.clone()).or_insert_with(|| {
                out.push(Module {
                    prefix,
                    depth: d,
                    tensors: 0,
                    params: 0,
                    bytes: 0,
                });
                out.len() - 1
            });
            let m = &mut out[i];
            m.tensors += 1;
            m.params = m
                .params
                .saturating_add(u64::try_from(t.numel()).unwrap_or(u64::MAX));
            m.bytes = m
                .bytes
                .saturating_add(u64::try_from(t.nbytes()).unwrap_or(u64::MAX));
        }
    }
    // group children under their parents even when the state dict interleaves them
    let order: HashMap<&str, usize> = out
        .iter()
        .enumerate()
        .map(|(i, m)| (m.prefix.as_str(), i))
        .collect();
    let mut keys: Vec<(Vec<usize>, usize)> = out
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let parts: Vec<&str> = m.prefix.split('.').collect();
            let path = (1..=m.depth.min(parts.len()))
                .map(|d| {
                    order
                        .get(parts[..d].join(".").as_str())
                        .copied()
                        .unwrap_or(i)
                })
                .collect();
            (path, i)
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, i)| out[i].clone()).collect()
}

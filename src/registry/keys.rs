//! The state-dict keys and shapes of every architecture, as `timm.create_model(NAME)` builds
//! it (tools/gen_keys.py, meta builds of timm 1.0.31), plus the deltas of pretrained tags whose
//! cfg builds a different model. Embedded deflated (front-coded text) and inflated on first use.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{Error, Result};

static DATA: &[u8] = include_bytes!("keys.txt.deflate");

/// Largest inflated size accepted (the embedded text is a few tens of MiB at most).
const MAX_TEXT: u64 = 256 << 20;

/// A state dict's keys and shapes, in order.
pub type Keys = Vec<(String, Vec<usize>)>;

/// The header line of the keys data.
#[derive(Debug, Clone, Deserialize)]
pub struct KeysHeader {
    /// timm version.
    pub timm: String,
    /// torch version.
    pub torch: String,
    /// Architectures recorded.
    pub architectures: usize,
    /// Architectures that could not be built on the meta device (no keys recorded).
    #[serde(default)]
    pub build_failures: Vec<String>,
}

struct Block {
    /// Lines of the architecture's keys.
    keys: std::ops::Range<usize>,
    /// Tag -> lines of its delta.
    tags: Vec<(String, std::ops::Range<usize>)>,
}

struct Index {
    header: KeysHeader,
    lines: Vec<&'static str>,
    archs: Vec<(&'static str, Block)>,
    by_name: HashMap<&'static str, usize>,
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Structure(format!("embedded keys data is corrupt: {what}"))
}

fn build() -> Result<Index> {
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(DATA)
        .take(MAX_TEXT)
        .read_to_string(&mut text)
        .map_err(corrupt)?;
    let text: &'static str = Box::leak(text.into_boxed_str());
    let mut it = text.lines();
    let header: KeysHeader =
        serde_json::from_str(it.next().ok_or_else(|| corrupt("empty"))?).map_err(corrupt)?;
    let lines: Vec<&'static str> = it.collect();
    let mut archs: Vec<(&'static str, Block)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix('@') {
            archs.push((
                name,
                Block {
                    keys: i + 1..i + 1,
                    tags: Vec::new(),
                },
            ));
        } else if let Some(tag) = line.strip_prefix('%') {
            let (_, b) = archs
                .last_mut()
                .ok_or_else(|| corrupt("a tag before any arch"))?;
            b.tags.push((tag.to_owned(), i + 1..i + 1));
        } else {
            let (_, b) = archs
                .last_mut()
                .ok_or_else(|| corrupt("a key before any arch"))?;
            match b.tags.last_mut() {
                Some((_, r)) => r.end = i + 1,
                None => b.keys.end = i + 1,
            }
        }
    }
    let by_name = archs
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    Ok(Index {
        header,
        lines,
        archs,
        by_name,
    })
}

fn index() -> Result<&'static Index> {
    static INDEX: OnceLock<std::result::Result<Index, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Structure(e.clone()))
}

fn shape(text: &str) -> Result<Vec<usize>> {
    if text == "-" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|d| d.parse().map_err(|_| corrupt(format!("shape `{text}`"))))
        .collect()
}

fn decode(lines: &[&str]) -> Result<Keys> {
    let mut out: Keys = Vec::with_capacity(lines.len());
    let mut prev = String::new();
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let (Some(p), Some(suffix), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(corrupt(format!("line `{line}`")));
        };
        let p: usize = p.parse().map_err(|_| corrupt(format!("line `{line}`")))?;
        let head = prev
            .get(..p)
            .ok_or_else(|| corrupt(format!("line `{line}`")))?;
        let key = format!("{head}{suffix}");
        out.push((key.clone(), shape(s)?));
        prev = key;
    }
    Ok(out)
}

/// The header of the embedded keys data.
pub fn header() -> Result<&'static KeysHeader> {
    Ok(&index()?.header)
}

/// Every name with recorded keys: each architecture, and `arch.tag` for each tag whose cfg
/// builds a different model than the architecture's default (another head or input size).
pub fn names() -> Result<Vec<String>> {
    let idx = index()?;
    let mut out = Vec::new();
    for (name, b) in &idx.archs {
        out.push((*name).to_owned());
        out.extend(
            b.tags
                .iter()
                .filter(|(t, _)| !t.starts_with(':'))
                .map(|(t, _)| format!("{name}.{t}")),
        );
    }
    Ok(out)
}

/// The keys and shapes of `timm.create_model(NAME[.TAG])`; `None` when none are recorded (an
/// architecture this data does not know, or one that could not be built on the meta device).
pub fn keys(name: &str) -> Result<Option<Keys>> {
    let idx = index()?;
    let (arch, tag) = super::split_name(name);
    let Some(&i) = idx.by_name.get(arch) else {
        return Ok(None);
    };
    let Some((_, b)) = idx.archs.get(i) else {
        return Ok(None);
    };
    let lines = idx
        .lines
        .get(b.keys.clone())
        .ok_or_else(|| corrupt("range"))?;
    let mut keys = decode(lines)?;
    let Some(delta) = tag
        .filter(|t| !t.starts_with(':'))
        .and_then(|t| b.tags.iter().find(|(n, _)| n == t))
    else {
        return Ok(Some(keys));
    };
    for line in idx
        .lines
        .get(delta.1.clone())
        .ok_or_else(|| corrupt("range"))?
    {
        if let Some(rest) = line.strip_prefix("+ ") {
            let (k, s) = rest
                .split_once(' ')
                .ok_or_else(|| corrupt(format!("line `{line}`")))?;
            let s = shape(s)?;
            match keys.iter_mut().find(|(n, _)| n == k) {
                Some(e) => e.1 = s,
                None => keys.push((k.to_owned(), s)),
            }
        } else if let Some(k) = line.strip_prefix("- ") {
            keys.retain(|(n, _)| n != k);
        } else {
            return Err(corrupt(format!("delta line `{line}`")));
        }
    }
    Ok(Some(keys))
}

/// The delta line that names timm's `num_classes=0` build of an architecture.
const HEADLESS: &str = ":headless";

/// The keys `timm.create_model(ARCH, num_classes=0)` lacks besides the pretrained cfg's
/// classifier weight and bias: a norm or other layer that belongs to the head and goes with it
/// (LeViT, EfficientViT-M). Empty for most architectures, and for one this data does not know.
///
/// # Errors
///
/// The embedded data is corrupt.
pub fn headless(arch: &str) -> Result<Vec<String>> {
    let idx = index()?;
    let (arch, _) = super::split_name(arch);
    let Some(b) = idx.by_name.get(arch).and_then(|&i| idx.archs.get(i)) else {
        return Ok(Vec::new());
    };
    let Some((_, range)) = b.1.tags.iter().find(|(t, _)| t == HEADLESS) else {
        return Ok(Vec::new());
    };
    idx.lines
        .get(range.clone())
        .ok_or_else(|| corrupt("range"))?
        .iter()
        .map(|line| {
            line.strip_prefix("- ")
                .map(str::to_owned)
                .ok_or_else(|| corrupt(format!("headless line `{line}`")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_coding_decodes() {
        let k = decode(&[
            "0 conv1.weight 8,3,3,3",
            "6 bias 8",
            "0 fc.weight 10,8",
            "0 n -",
        ])
        .unwrap();
        assert_eq!(k[1], ("conv1.bias".to_owned(), vec![8]));
        assert_eq!(k[3], ("n".to_owned(), vec![]));
        assert!(decode(&["9 x 1"]).is_err());
        assert!(decode(&["0 x a"]).is_err());
    }

    #[test]
    fn headless_names_the_head_norms_timm_drops() {
        // timm 1.0.31: LeViT's heads are NormLinear (bn + linear), Identity when num_classes=0
        let levit = headless("levit_128s").unwrap();
        for k in ["head.bn.weight", "head.bn.running_var", "head_dist.bn.bias"] {
            assert!(levit.iter().any(|x| x == k), "{k} in {levit:?}");
        }
        assert!(!levit.iter().any(|x| x == "head.linear.weight"));
        // ConvNeXt keeps head.norm; ResNet's head is the fc alone
        assert!(headless("convnext_atto").unwrap().is_empty());
        assert!(headless("resnet18").unwrap().is_empty());
        // never offered as a tag
        assert!(!names().unwrap().iter().any(|n| n.contains(':')));
    }
}

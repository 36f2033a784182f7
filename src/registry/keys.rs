//! The state-dict keys and shapes of every architecture, as `timm.create_model(NAME)` builds
//! it (tools/gen_keys.py, meta builds of timm 1.0.31), plus the deltas of pretrained tags whose
//! cfg builds a different model. Embedded as front-coded text in deflated chunks of a few
//! architectures each, behind a plain index of names, chunks and tags: a look-up inflates the
//! one chunk that holds its architecture (kept for the process), never the whole table.

use std::io::Read;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{Error, Result};

static DATA: &[u8] = include_bytes!("keys.packed");

/// Largest inflated size accepted for one chunk (tools/gen_keys.py closes a chunk at 64 KiB of
/// text; one architecture's keys are tens of KiB).
const MAX_CHUNK_TEXT: u64 = 16 << 20;

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

/// One architecture's line of the index.
struct Entry {
    name: &'static str,
    chunk: usize,
    /// The tags of its deltas, `:headless` included.
    tags: Vec<&'static str>,
}

struct Block {
    /// Lines of the architecture's keys.
    keys: Range<usize>,
    /// Tag -> lines of its delta.
    tags: Vec<(&'static str, Range<usize>)>,
}

/// An inflated chunk: its lines, and each architecture's blocks of them.
struct Chunk {
    lines: Vec<&'static str>,
    archs: Vec<(&'static str, Block)>,
}

struct Index {
    header: KeysHeader,
    /// Sorted by name (bytes), as the generator writes them.
    archs: Vec<Entry>,
    /// Each chunk's deflated bytes, and the chunk once inflated.
    chunks: Vec<(&'static [u8], Inflated)>,
}

/// A chunk inflated on first use, or why it could not be (kept as text, as [`index`] does).
type Inflated = OnceLock<std::result::Result<Chunk, String>>;

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("embedded keys data is corrupt: {what}"))
}

/// Reads the index: the header, the chunks' lengths and one line per architecture.
fn build() -> Result<Index> {
    let end = DATA
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| corrupt("no end of the index"))?;
    let (head, rest) = DATA.split_at(end);
    let mut body = rest.get(2..).ok_or_else(|| corrupt("index"))?;
    let head = std::str::from_utf8(head).map_err(corrupt)?;
    let mut it = head.lines();
    let header: KeysHeader =
        serde_json::from_str(it.next().ok_or_else(|| corrupt("empty"))?).map_err(corrupt)?;
    let mut chunks = Vec::new();
    for len in it.next().ok_or_else(|| corrupt("no chunks"))?.split(' ') {
        let len: usize = len
            .parse()
            .map_err(|_| corrupt(format!("chunk length `{len}`")))?;
        if len > body.len() {
            return Err(corrupt("a chunk past the end"));
        }
        let (bytes, next) = body.split_at(len);
        chunks.push((bytes, OnceLock::new()));
        body = next;
    }
    if !body.is_empty() {
        return Err(corrupt("bytes after the last chunk"));
    }
    let mut archs: Vec<Entry> = Vec::new();
    for line in it {
        let mut words = line.split(' ');
        let (Some(name), Some(chunk)) = (words.next(), words.next()) else {
            return Err(corrupt(format!("index line `{line}`")));
        };
        let chunk: usize = chunk
            .parse()
            .ok()
            .filter(|&c| c < chunks.len())
            .ok_or_else(|| corrupt(format!("index line `{line}`")))?;
        if archs.last().is_some_and(|p| p.name >= name) {
            return Err(corrupt(format!("`{name}` out of order")));
        }
        archs.push(Entry {
            name,
            chunk,
            tags: words.collect(),
        });
    }
    Ok(Index {
        header,
        archs,
        chunks,
    })
}

fn index() -> Result<&'static Index> {
    static INDEX: OnceLock<std::result::Result<Index, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Internal(e.clone()))
}

/// Inflates chunk `i` and splits it into its architectures' blocks, checked against the index
/// (the same architectures, in order, with the same tags).
fn inflate(idx: &Index, i: usize) -> Result<Chunk> {
    let (bytes, _) = idx.chunks.get(i).ok_or_else(|| corrupt("chunk"))?;
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(*bytes)
        .take(MAX_CHUNK_TEXT)
        .read_to_string(&mut text)
        .map_err(corrupt)?;
    // kept for the process, like the rest of the embedded data
    let text: &'static str = Box::leak(text.into_boxed_str());
    let lines: Vec<&'static str> = text.lines().collect();
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
            b.tags.push((tag, i + 1..i + 1));
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
    let listed: Vec<(&str, &[&str])> = idx
        .archs
        .iter()
        .filter(|e| e.chunk == i)
        .map(|e| (e.name, e.tags.as_slice()))
        .collect();
    let same = listed.len() == archs.len()
        && listed.iter().zip(&archs).all(|((name, tags), (n, b))| {
            name == n && tags.iter().copied().eq(b.tags.iter().map(|(t, _)| *t))
        });
    if !same {
        return Err(corrupt(format!(
            "chunk {i} does not hold what the index says"
        )));
    }
    Ok(Chunk { lines, archs })
}

/// The index entry of `arch`, and its inflated chunk's block; `None` for an architecture the
/// data does not know.
fn block(arch: &str) -> Result<Option<(&'static Chunk, &'static Block)>> {
    let idx = index()?;
    let Ok(at) = idx.archs.binary_search_by(|e| e.name.cmp(arch)) else {
        return Ok(None);
    };
    let chunk = idx.archs[at].chunk;
    let (_, cell) = idx.chunks.get(chunk).ok_or_else(|| corrupt("chunk"))?;
    let chunk = cell
        .get_or_init(|| inflate(idx, chunk).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Internal(e.clone()))?;
    let b = chunk
        .archs
        .iter()
        .find(|(n, _)| *n == arch)
        .map(|(_, b)| b)
        .ok_or_else(|| corrupt(format!("`{arch}` is not in its chunk")))?;
    Ok(Some((chunk, b)))
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
    for e in &idx.archs {
        out.push(e.name.to_owned());
        out.extend(
            e.tags
                .iter()
                .filter(|t| !t.starts_with(':'))
                .map(|t| format!("{}.{t}", e.name)),
        );
    }
    Ok(out)
}

/// The keys and shapes of `timm.create_model(NAME[.TAG])`; `None` when none are recorded (an
/// architecture this data does not know, or one that could not be built on the meta device).
pub fn keys(name: &str) -> Result<Option<Keys>> {
    let (arch, tag) = super::split_name(name);
    let Some((chunk, b)) = block(arch)? else {
        return Ok(None);
    };
    let lines = chunk
        .lines
        .get(b.keys.clone())
        .ok_or_else(|| corrupt("range"))?;
    let mut keys = decode(lines)?;
    let Some(delta) = tag
        .filter(|t| !t.starts_with(':'))
        .and_then(|t| b.tags.iter().find(|(n, _)| *n == t))
    else {
        return Ok(Some(keys));
    };
    for line in chunk
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
    let (arch, _) = super::split_name(arch);
    let Some((chunk, b)) = block(arch)? else {
        return Ok(Vec::new());
    };
    let Some((_, range)) = b.tags.iter().find(|(t, _)| *t == HEADLESS) else {
        return Ok(Vec::new());
    };
    chunk
        .lines
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

    /// Every chunk inflates, holds what the index says, and every name decodes; the counts
    /// are the header's (tools/gen_keys.py, timm 1.0.31: 1371 architectures, 193 tag deltas).
    #[test]
    fn every_chunk_matches_the_index() {
        let idx = index().unwrap();
        assert_eq!(idx.archs.len(), header().unwrap().architectures);
        for i in 0..idx.chunks.len() {
            inflate(idx, i).unwrap();
        }
        let names = names().unwrap();
        assert_eq!(names.len(), 1371 + 193);
        for n in &names {
            assert!(keys(n).unwrap().is_some_and(|k| !k.is_empty()), "{n}");
        }
        assert_eq!(keys("no_such_arch").unwrap(), None);
    }
}

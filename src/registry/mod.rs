//! The embedded timm registry: every architecture and pretrained tag of timm 1.0.31 with its
//! pretrained cfg, `num_features`, `feature_info`, parameter count and results-table figures.
//!
//! The data is `registry.jsonl` (made by `tools/gen_registry.py`): a header line, then one JSON
//! object per architecture sorted by name, so a lookup binary-searches the lines and parses one.
//!
//! ```
//! let (arch, tag) = timmconv::registry::lookup("test_resnet.r160_in1k")?;
//! assert_eq!(arch.num_features, Some(96));
//! assert_eq!(tag.unwrap().first_conv(), ["conv1.0"]);
//! # Ok::<(), timmconv::Error>(())
//! ```

mod cfg;
pub mod features;
pub mod keys;
pub mod resize;
mod sorted;
pub mod strict;

use std::cmp::Ordering;
use std::sync::OnceLock;

use serde::Deserialize;

pub use cfg::{Arch, FeatureInfo, Results, Tag};
pub use features::FeatureLayout;
pub use resize::ResizeLayout;

use crate::error::{Error, Result};

static DATA: &str = include_str!("registry.jsonl");
/// A registry file that replaces the embedded data ([`use_file`]).
static FILE: OnceLock<&'static str> = OnceLock::new();

/// Uses the registry file `path`, made by `tools/gen_registry.py` from the user's own timm,
/// instead of the embedded data (the CLI's `--registry FILE` or `TIMMCONV_REGISTRY`). Takes
/// effect only before the first lookup; the file is read once and kept for the process.
pub fn use_file(path: &std::path::Path) -> Result<()> {
    let limit = crate::small_file::MAX_REGISTRY_BYTES;
    let text = crate::small_file::read_existing_text(path, "MAX_REGISTRY_BYTES", limit)?;
    let bad = |what: String| Error::RegistryFile {
        path: path.to_owned(),
        what,
    };
    let mut lines = text.lines();
    serde_json::from_str::<Header>(lines.next().unwrap_or_default())
        .map_err(|e| bad(format!("line 1: {e}")))?;
    let mut prev: Option<&str> = None;
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Some(name) = name_of_str(line) else {
            return Err(bad(format!(
                "line {} does not start with {{\"name\":",
                i + 2
            )));
        };
        if prev.is_some_and(|p| p >= name) {
            return Err(bad(format!("line {}: `{name}` is out of order", i + 2)));
        }
        prev = Some(name);
    }
    FILE.set(Box::leak(text.into_boxed_str()))
        .map_err(|_| Error::RegistryInUse)
}

fn name_of_str(line: &str) -> Option<&str> {
    line.strip_prefix("{\"name\":\"")?.split('"').next()
}

/// The header line: which timm and torch made the data.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// timm version.
    pub timm: String,
    /// torch version.
    pub torch: String,
    /// Number of architectures.
    pub architectures: usize,
    /// Number of pretrained tags with weights.
    pub pretrained: usize,
    /// Architectures that could not be built on the meta device.
    #[serde(default)]
    pub build_failures: Vec<String>,
}

struct Index {
    header: Header,
    lines: Lines,
}

/// Embedded JSON lines, each opening with `{"name":"…"`, sorted by name and searched by it.
pub(crate) struct Lines(Vec<(&'static str, &'static str)>);

impl Lines {
    pub(crate) fn new(lines: impl Iterator<Item = &'static str>) -> Lines {
        Lines(lines.filter_map(|l| name_of(l).map(|n| (n, l))).collect())
    }

    /// The line of `name`.
    pub(crate) fn find(&self, name: &str) -> Option<&'static str> {
        let i = self.0.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        Some(self.0[i].1)
    }

    /// (name, line) pairs in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

fn name_of(line: &'static str) -> Option<&'static str> {
    let rest = line.strip_prefix("{\"name\":\"")?;
    rest.split('"').next()
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut it = FILE.get().copied().unwrap_or(DATA).lines();
        let header = it
            .next()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or(Header {
                timm: String::new(),
                torch: String::new(),
                architectures: 0,
                pretrained: 0,
                build_failures: Vec::new(),
            });
        Index {
            header,
            lines: Lines::new(it),
        }
    })
}

/// The header of the embedded data.
pub fn header() -> &'static Header {
    &index().header
}

/// Every architecture name, sorted by bytes.
pub fn arch_names() -> impl Iterator<Item = &'static str> {
    index().lines.iter().map(|(n, _)| n)
}

fn parse(line: &str) -> Result<Arch> {
    serde_json::from_str(line)
        .map_err(|e| Error::Internal(format!("embedded registry is corrupt: {e}")))
}

/// The architecture named `name` (no tag).
pub fn arch(name: &str) -> Option<Arch> {
    // searched in the text itself: indexing every line first costs more than the look-up
    parse(sorted::find(FILE.get().copied().unwrap_or(DATA), name)?).ok()
}

/// Every architecture, parsed (for listing with figures). [`validate`] proves every line parses.
pub fn archs() -> impl Iterator<Item = Arch> {
    index().lines.iter().filter_map(|(_, l)| parse(l).ok())
}

/// Parses every line of the embedded data; the first line that fails is an error naming it.
pub fn validate() -> Result<usize> {
    let idx = index();
    if idx.header.architectures != idx.lines.len() {
        return Err(Error::Internal(format!(
            "embedded registry header says {} architectures, {} lines found",
            idx.header.architectures,
            idx.lines.len()
        )));
    }
    for (name, line) in idx.lines.iter() {
        parse(line).map_err(|e| Error::Internal(format!("registry line `{name}`: {e}")))?;
    }
    Ok(idx.lines.len())
}

/// timm's `split_model_name_tag`: `arch.tag` splits at the first dot.
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((a, t)) => (a, Some(t)),
        None => (name, None),
    }
}

/// Looks up `NAME[.TAG]`: the architecture, and the named tag or the default one.
pub fn lookup(name: &str) -> Result<(Arch, Option<Tag>)> {
    let (a, t) = split_name(name);
    let Some(arch) = arch(a) else {
        return Err(Error::UnknownModel {
            name: name.to_owned(),
            suggestions: suggest(a, arch_names()),
        });
    };
    let tag = arch.tag(t).cloned();
    if let (Some(t), None) = (t, &tag) {
        let mut close = suggest(t, arch.tags.iter().map(|x| x.tag.as_str()));
        if close.is_empty() {
            // no near miss: the architecture's tags are the useful answer
            close = arch.tags.iter().take(8).map(|x| x.tag.clone()).collect();
        }
        return Err(Error::UnknownModel {
            name: name.to_owned(),
            suggestions: close.into_iter().map(|x| format!("{a}.{x}")).collect(),
        });
    }
    Ok((arch, tag))
}

/// The closest few names to `want`.
pub fn suggest<'a>(want: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = names
        .map(|n| (strsim::jaro_winkler(want, n), n))
        .filter(|(s, _)| *s > 0.75)
        .collect();
    scored.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(Ordering::Equal)
            .then(a.1.cmp(b.1))
    });
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// Python's `fnmatch.translate`, for the regex crate: `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch_regex(pattern: &str) -> Result<regex::Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^(?s:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    re.push_str("\\[");
                } else {
                    let body: String = chars[i..j].iter().collect();
                    i = j + 1;
                    let (neg, body) = match body.strip_prefix('!') {
                        Some(b) => (true, b.to_owned()),
                        None => (false, body),
                    };
                    let body = body
                        .replace('\\', "\\\\")
                        .replace('[', "\\[")
                        .replace('&', "\\&")
                        .replace('~', "\\~");
                    re.push('[');
                    if neg {
                        re.push('^');
                    }
                    re.push_str(&body);
                    re.push(']');
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push_str(")$");
    regex::Regex::new(&re).map_err(|e| {
        Error::from(crate::error::Setting::BadPattern {
            pattern: pattern.to_owned(),
            why: e.to_string(),
        })
    })
}

/// timm's `_natural_key` ordering: `re.split(r'(\d+)', name.lower())`, digit runs compared as
/// numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Part {
        // compared as numbers: by length without leading zeros, then by digits
        Num(usize, String),
        Str(String),
    }
    fn key(s: &str) -> Vec<Part> {
        let s = s.to_lowercase();
        let mut parts = Vec::new();
        let mut rest = s.as_str();
        loop {
            let Some(i) = rest.find(|c: char| c.is_ascii_digit()) else {
                parts.push(Part::Str(rest.to_owned()));
                return parts;
            };
            parts.push(Part::Str(rest[..i].to_owned()));
            let j = rest[i..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(rest.len(), |j| i + j);
            let digits = rest[i..j].trim_start_matches('0');
            parts.push(Part::Num(digits.len(), digits.to_owned()));
            rest = &rest[j..];
        }
    }
    key(a).cmp(&key(b))
}

/// `timm.list_models(patterns)` (architectures) or, with `pretrained`,
/// `timm.list_pretrained(patterns)` (`arch.tag` names with weights), in timm's order.
pub fn list(patterns: &[String], pretrained: bool) -> Result<Vec<String>> {
    let mut filters = Vec::new();
    for p in patterns.iter().filter(|p| !p.is_empty()) {
        if pretrained && split_name(p).1.is_none() {
            // timm's _expand_filter: `base` also matches `base.*`
            filters.push(fnmatch_regex(&format!("{p}.*"))?);
        }
        filters.push(fnmatch_regex(p)?);
    }
    let matches = |n: &str| filters.is_empty() || filters.iter().any(|f| f.is_match(n));
    let mut out: Vec<String> = if pretrained {
        let mut v = Vec::new();
        for a in archs() {
            for t in a.tags.iter().filter(|t| t.has_weights) {
                let full = if t.tag.is_empty() {
                    a.name.clone()
                } else {
                    format!("{}.{}", a.name, t.tag)
                };
                if matches(&full) {
                    v.push(full);
                }
            }
        }
        v
    } else {
        arch_names()
            .filter(|n| matches(n))
            .map(str::to_owned)
            .collect()
    };
    out.sort_by(|a, b| natural_cmp(a, b));
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        let r = fnmatch_regex("resnet[0-9]*").unwrap();
        assert!(r.is_match("resnet50") && !r.is_match("resnext50"));
        let r = fnmatch_regex("vit_?iny*").unwrap();
        assert!(r.is_match("vit_tiny_patch16_224"));
        let r = fnmatch_regex("a[!b]c").unwrap();
        assert!(r.is_match("axc") && !r.is_match("abc"));
        assert!(
            fnmatch_regex("a.b").unwrap().is_match("a.b")
                && !fnmatch_regex("a.b").unwrap().is_match("axb")
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["resnet101", "resnet18", "resnet50", "ResNet34"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["resnet18", "ResNet34", "resnet50", "resnet101"]);
    }
}

//! Features-only layouts: which weights `timm.create_model(arch, features_only=True,
//! out_indices=…)` holds, and under which names (from `tools/gen_features.py`, verified there
//! against the features model's own keys).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Lines;
use crate::error::{Error, Result};

static DATA: &str = include_str!("features.jsonl");

/// How an architecture's features model names and selects the classification model's weights.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureLayout {
    /// Architecture.
    pub name: String,
    /// The features class timm uses (`FeatureListNet`, `FeatureGetterNet`, a model's own).
    #[serde(default)]
    pub cls: String,
    /// timm's default `out_indices`.
    #[serde(default)]
    pub out_indices: Vec<i64>,
    /// Prefix the features model puts before every key (`model.` for FeatureGetterNet).
    #[serde(default)]
    pub prefix: String,
    /// Module renames (model prefix, features prefix), longest first.
    #[serde(default)]
    pub rules: Vec<(String, String)>,
    /// Kept module prefixes: for the default out_indices (`default`) and per highest out index
    /// (`null` where timm refuses that index).
    #[serde(default)]
    pub keep: BTreeMap<String, Option<Vec<String>>>,
    /// Why timm cannot build a features model for this architecture, if it cannot.
    #[serde(default)]
    pub error: Option<String>,
}

fn index() -> &'static Lines {
    static INDEX: OnceLock<Lines> = OnceLock::new();
    INDEX.get_or_init(|| Lines::new(DATA.lines().skip(1)))
}

/// The features layout of an architecture.
pub fn layout(arch: &str) -> Result<FeatureLayout> {
    let Some(line) = index().find(arch) else {
        return Err(Error::UnknownModel {
            name: arch.to_owned(),
            suggestions: Vec::new(),
        });
    };
    serde_json::from_str(line).map_err(|e| {
        Error::Internal(format!(
            "embedded features data is corrupt at `{arch}`: {e}"
        ))
    })
}

/// Parses every line; the count of architectures with a usable layout.
pub fn validate() -> Result<(usize, usize)> {
    let mut ok = 0;
    for (name, line) in index().iter() {
        let l: FeatureLayout = serde_json::from_str(line)
            .map_err(|e| Error::Internal(format!("features line `{name}`: {e}")))?;
        ok += usize::from(l.error.is_none());
    }
    Ok((index().len(), ok))
}

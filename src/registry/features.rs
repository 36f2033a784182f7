//! Features-only layouts: which weights `timm.create_model(arch, features_only=True,
//! out_indices=…)` holds, and under which names (from `tools/gen_features.py`, verified there
//! against the features model's own keys).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::{rename_prefix, Lines};
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

/// A features selection ready to apply: which keys to keep and how to rename them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSelect {
    /// Kept module prefixes (whole path components).
    pub keep: Vec<String>,
    /// Global prefix.
    pub prefix: String,
    /// Module renames.
    pub rules: Vec<(String, String)>,
}

impl FeatureSelect {
    /// The features-model key of a classification-model key, or `None` when it is not kept.
    pub fn map(&self, key: &str) -> Option<String> {
        if !self.keep.iter().any(|p| rename_prefix(key, p, p).is_some()) {
            return None;
        }
        let renamed = self
            .rules
            .iter()
            .find_map(|(from, to)| rename_prefix(key, from, to))
            .unwrap_or_else(|| key.to_owned());
        Some(format!("{}{renamed}", self.prefix))
    }
}

impl FeatureLayout {
    /// The selection for `out_indices` (timm's default when `None`); `stages` is the length of
    /// the architecture's feature_info, for negative indices.
    pub fn select(&self, out_indices: Option<&[i64]>, stages: usize) -> Result<FeatureSelect> {
        if let Some(e) = &self.error {
            return Err(Error::Options(format!(
                "timm cannot build a features_only model of `{}` that timmconv can map: {e}",
                self.name
            )));
        }
        let label = match out_indices {
            None => "default".to_owned(),
            Some([]) => return Err(Error::Setting(crate::error::Setting::EmptyOutIndices)),
            Some(idx) => {
                let n = i64::try_from(stages).unwrap_or(i64::MAX);
                let mut max = i64::MIN;
                for &i in idx {
                    let j = if i < 0 { i + n } else { i };
                    if j < 0 || j >= n {
                        return Err(Error::Options(format!(
                            "out index {i} is outside the {stages} feature stages of `{}`",
                            self.name
                        )));
                    }
                    max = max.max(j);
                }
                max.to_string()
            }
        };
        match self.keep.get(&label) {
            Some(Some(keep)) => Ok(FeatureSelect {
                keep: keep.clone(),
                prefix: self.prefix.clone(),
                rules: self.rules.clone(),
            }),
            _ => Err(Error::Options(format!(
                "timm does not build `{}` features_only with highest out index {label}",
                self.name
            ))),
        }
    }
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
        Error::Structure(format!(
            "embedded features data is corrupt at `{arch}`: {e}"
        ))
    })
}

/// Parses every line; the count of architectures with a usable layout.
pub fn validate() -> Result<(usize, usize)> {
    let mut ok = 0;
    for (name, line) in index().iter() {
        let l: FeatureLayout = serde_json::from_str(line)
            .map_err(|e| Error::Structure(format!("features line `{name}`: {e}")))?;
        ok += usize::from(l.error.is_none());
    }
    Ok((index().len(), ok))
}

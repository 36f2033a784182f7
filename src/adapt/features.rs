//! Features-only selection: which of a classification model's weights timm's
//! `create_model(arch, features_only=True, out_indices=…)` keeps, and under which names, from
//! the architecture's features layout in the registry ([`crate::registry::features`]).

use super::rename::replace_prefix;
use crate::error::{Result, Setting};
use crate::registry::FeatureLayout;

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
    /// The selection of `layout` for `out_indices` (timm's default when `None`); `stages` is the
    /// length of the architecture's feature_info, for negative indices.
    pub fn new(
        layout: &FeatureLayout,
        out_indices: Option<&[i64]>,
        stages: usize,
    ) -> Result<FeatureSelect> {
        let model = || layout.name.clone();
        if let Some(e) = &layout.error {
            return Err(Setting::FeaturesUnbuildable {
                model: model(),
                why: e.clone(),
            }
            .into());
        }
        let label = match out_indices {
            None => "default".to_owned(),
            Some([]) => return Err(Setting::EmptyOutIndices.into()),
            Some(idx) => {
                let n = i64::try_from(stages).unwrap_or(i64::MAX);
                let mut max = i64::MIN;
                for &i in idx {
                    let j = if i < 0 { i + n } else { i };
                    if j < 0 || j >= n {
                        return Err(Setting::OutIndexOutOfRange {
                            index: i,
                            stages,
                            model: model(),
                        }
                        .into());
                    }
                    max = max.max(j);
                }
                max.to_string()
            }
        };
        match layout.keep.get(&label) {
            Some(Some(keep)) => Ok(FeatureSelect {
                keep: keep.clone(),
                prefix: layout.prefix.clone(),
                rules: layout.rules.clone(),
            }),
            _ => Err(Setting::OutIndexUnbuildable {
                model: model(),
                highest: label,
            }
            .into()),
        }
    }

    /// The features-model key of a classification-model key, or `None` when it is not kept.
    pub fn map(&self, key: &str) -> Option<String> {
        if !self
            .keep
            .iter()
            .any(|p| replace_prefix(key, p, p).is_some())
        {
            return None;
        }
        let renamed = self
            .rules
            .iter()
            .find_map(|(from, to)| replace_prefix(key, from, to))
            .unwrap_or_else(|| key.to_owned());
        Some(format!("{}{renamed}", self.prefix))
    }
}

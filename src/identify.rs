//! What a checkpoint is: its keys and shapes compared with those of every timm architecture
//! (`registry::keys`), the way `load_state_dict(strict=True)` compares them, and ranked.

use std::collections::HashMap;

use serde::Serialize;

use crate::adapt::Adaptation;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::registry::keys::{self, Keys};

/// How many keys of each kind a message lists before giving a count.
pub const LISTED: usize = 5;

/// A key whose shape differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeMismatch {
    /// The key.
    pub key: String,
    /// Its shape in the checkpoint.
    pub checkpoint: Vec<usize>,
    /// Its shape in the model.
    pub model: Vec<usize>,
}

/// The differences `load_state_dict(strict=True)` would report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Keys the model has and the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys the checkpoint has and the model lacks.
    pub unexpected: Vec<String>,
    /// Keys in both with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
}

impl Comparison {
    /// Whether the checkpoint loads strictly.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// Missing, unexpected and mismatched keys together.
    pub fn count(&self) -> usize {
        self.missing.len() + self.unexpected.len() + self.mismatched.len()
    }

    /// One line per kind: the first [`LISTED`] keys, then how many more.
    pub fn describe(&self) -> Vec<String> {
        fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
            let mut s: Vec<String> = items.iter().take(LISTED).map(show).collect();
            if items.len() > LISTED {
                s.push(format!("and {} more", items.len() - LISTED));
            }
            s.join(", ")
        }
        let mut out = Vec::new();
        if !self.missing.is_empty() {
            out.push(format!(
                "{} missing: {}",
                self.missing.len(),
                list(&self.missing, |k| format!("`{k}`"))
            ));
        }
        if !self.unexpected.is_empty() {
            out.push(format!(
                "{} unexpected: {}",
                self.unexpected.len(),
                list(&self.unexpected, |k| format!("`{k}`"))
            ));
        }
        if !self.mismatched.is_empty() {
            out.push(format!(
                "{} with another shape: {}",
                self.mismatched.len(),
                list(&self.mismatched, |m| format!(
                    "`{}` {:?} in the checkpoint, {:?} in the model",
                    m.key, m.checkpoint, m.model
                ))
            ));
        }
        out
    }
}

/// What the requested adaptation lets differ from the pretrained model.
#[derive(Debug, Clone, Default)]
pub struct Leeway {
    /// First-conv modules: their weight's input-channel dimension may differ (`--base-chans`).
    pub first_conv: Vec<String>,
    /// Classifier modules.
    pub classifier: Vec<String>,
    /// The classifier is dropped (another `num_classes`): its keys and shapes do not matter.
    pub head_dropped: bool,
    /// Rows the checkpoint's classifier has beyond the model's (`label_offset`).
    pub label_offset: usize,
    /// The pretrained cfg's `num_classes` (a hub config.json may give another than the
    /// registry's tag): the classifier's rows, before `label_offset`.
    pub cfg_num_classes: Option<usize>,
}

impl Leeway {
    /// What `adapt` allows.
    pub fn of(adapt: &Adaptation) -> Leeway {
        let head_dropped = match (adapt.num_classes, adapt.cfg_num_classes) {
            (Some(n), Some(c)) => n != c,
            (Some(_), None) => true,
            (None, _) => false,
        };
        Leeway {
            first_conv: adapt.first_conv.clone(),
            classifier: adapt.classifier.clone(),
            head_dropped: head_dropped || adapt.features.is_some(),
            label_offset: adapt.label_offset,
            cfg_num_classes: adapt.cfg_num_classes,
        }
    }

    fn is_param_of(modules: &[String], key: &str) -> bool {
        modules.iter().any(|m| {
            key.strip_prefix(m.as_str())
                .is_some_and(|rest| rest == ".weight" || rest == ".bias")
        })
    }
}

/// Compares a checkpoint's `(key, shape)` list with a model's.
pub fn compare(have: &[(&str, &[usize])], want: &Keys, leeway: &Leeway) -> Comparison {
    let have_map: HashMap<&str, &[usize]> = have.iter().copied().collect();
    let want_map: HashMap<&str, &[usize]> = want
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    let head = |k: &str| Leeway::is_param_of(&leeway.classifier, k);
    let mut c = Comparison::default();
    for (k, s) in want {
        let Some(h) = have_map.get(k.as_str()) else {
            if !(leeway.head_dropped && head(k)) {
                c.missing.push(k.clone());
            }
            continue;
        };
        if leeway.head_dropped && head(k) {
            continue;
        }
        let fits = if *h == s.as_slice() {
            true
        } else if head(k) {
            // the rows are the cfg's num_classes plus label_offset (a background class,
            // sliced off); the other dimensions are the model's
            matches!((h.split_first(), s.split_first()),
                (Some((hr, hrest)), Some((sr, srest)))
                    if *hr == leeway.cfg_num_classes.unwrap_or(*sr) + leeway.label_offset
                        && hrest == srest)
        } else if k.ends_with(".weight") && Leeway::is_param_of(&leeway.first_conv, k) {
            // the input-channel dimension is what --in-chans / --base-chans adapt
            h.len() == s.len()
                && h.iter()
                    .zip(s)
                    .enumerate()
                    .all(|(i, (a, b))| i == 1 || a == b)
        } else {
            false
        };
        if !fits {
            c.mismatched.push(ShapeMismatch {
                key: k.clone(),
                checkpoint: h.to_vec(),
                model: s.clone(),
            });
        }
    }
    for (k, _) in have {
        let excused = leeway.head_dropped && head(k);
        if !want_map.contains_key(k) && !excused {
            c.unexpected.push((*k).to_owned());
        }
    }
    c
}

fn shapes(ckpt: &Checkpoint) -> Vec<(&str, &[usize])> {
    ckpt.tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect()
}

/// Checks `ckpt` against `timm.create_model(model)` as `load_state_dict(strict=True)` would
/// after `adapt`; `Ok(None)` when no keys are recorded for `model` (nothing to check against).
pub fn check_model(
    ckpt: &Checkpoint,
    model: &str,
    adapt: &Adaptation,
) -> Result<Option<Comparison>> {
    let Some(want) = keys::keys(model)? else {
        return Ok(None);
    };
    Ok(Some(compare(&shapes(ckpt), &want, &Leeway::of(adapt))))
}

/// The error for a checkpoint that does not fit `model`.
pub fn mismatch_error(model: &str, c: &Comparison) -> Error {
    Error::ModelMismatch {
        model: model.to_owned(),
        differences: c.describe(),
    }
}

/// One candidate architecture for a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// `arch` or `arch.tag`.
    pub architecture: String,
    /// Keys and shapes are exactly the model's.
    pub exact: bool,
    /// What differs, in words (in_chans, num_classes, img_size, then keys).
    pub differences: Vec<String>,
    /// Missing + unexpected + mismatched keys.
    #[serde(skip)]
    pub distance: usize,
    /// The original layout the checkpoint is in, converted before comparing (`dinov2`, ...),
    /// as timm's `checkpoint_filter_fn` for the architecture converts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

fn explain(c: &Comparison, want: &Keys, cfg: Option<&crate::registry::Tag>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = c.clone();
    let first: Vec<String> = cfg.map(|t| t.first_conv()).unwrap_or_default();
    let head: Vec<String> = cfg.map(|t| t.classifier()).unwrap_or_default();
    rest.mismatched.retain(|m| {
        let dims = |a: &[usize], b: &[usize]| a.len() == b.len() && a.len() >= 2;
        if Leeway::is_param_of(&first, &m.key)
            && m.key.ends_with(".weight")
            && dims(&m.checkpoint, &m.model)
            && m.checkpoint
                .iter()
                .zip(&m.model)
                .enumerate()
                .all(|(i, (a, b))| i == 1 || a == b)
        {
            out.push(format!(
                "in_chans {} (the model has {}): `{}`",
                m.checkpoint[1], m.model[1], m.key
            ));
            return false;
        }
        if Leeway::is_param_of(&head, &m.key)
            && m.checkpoint.len() == m.model.len()
            && m.checkpoint.get(1..) == m.model.get(1..)
        {
            let msg = format!(
                "num_classes {} (the model has {})",
                m.checkpoint.first().copied().unwrap_or(0),
                m.model.first().copied().unwrap_or(0)
            );
            if !out.contains(&msg) {
                out.push(msg);
            }
            return false;
        }
        if m.key.contains("pos_embed") || m.key.contains("relative_position") {
            let msg = format!(
                "img_size: `{}` is {:?}, the model's {:?}",
                m.key, m.checkpoint, m.model
            );
            out.push(msg);
            return false;
        }
        true
    });
    // a headless checkpoint: every classifier key missing
    let head_keys: Vec<&String> = want
        .iter()
        .map(|(k, _)| k)
        .filter(|k| Leeway::is_param_of(&head, k))
        .collect();
    if !head_keys.is_empty() && head_keys.iter().all(|k| rest.missing.contains(k)) {
        rest.missing.retain(|k| !Leeway::is_param_of(&head, k));
        out.push("num_classes 0: no classifier in the checkpoint".into());
    }
    out.extend(rest.describe());
    out
}

/// Every architecture the checkpoint could be, best first: exact matches, then by how few keys
/// differ; `limit` of them (0: all that share at least half their keys with it).
///
/// A checkpoint in an original project's layout (Meta's DINOv2, OpenAI CLIP, ...) is also
/// compared, converted, with every architecture of the family whose filter converts it.
pub fn identify(ckpt: &Checkpoint, limit: usize) -> Result<Vec<Candidate>> {
    identify_tensors(ckpt.tensors(), limit)
}

/// [`identify`] for a list of tensors (their keys and shapes are all that is compared).
pub fn identify_tensors(
    tensors: &[crate::checkpoint::TensorInfo],
    limit: usize,
) -> Result<Vec<Candidate>> {
    let stored: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    let layouts: Vec<&crate::original::OriginalLayout> = crate::original::layouts()
        .iter()
        .filter(|l| {
            crate::original::detect(tensors, Some(l.family)).is_some_and(|d| d.0.name == l.name)
        })
        .collect();
    let mut scored: Vec<(usize, String, Comparison, Keys, Option<String>)> = Vec::new();
    for name in keys::names()? {
        let Some(want) = keys::keys(&name)? else {
            continue;
        };
        let family =
            crate::registry::arch(crate::registry::split_name(&name).0).and_then(|a| a.module);
        let layout = layouts.iter().find(|l| family.as_deref() == Some(l.family));
        let converted = match layout {
            Some(l) => {
                let target = crate::original::Target {
                    keys: Some(want.iter().cloned().collect()),
                    head_linear: want
                        .iter()
                        .any(|(k, _)| k == "head.weight" || k == "head.fc.weight"),
                };
                l.convert(tensors, &target).ok()
            }
            None => None,
        };
        let have: Vec<(&str, &[usize])> = match &converted {
            Some(c) => c
                .tensors
                .iter()
                .map(|d| (d.info.name.as_str(), d.info.shape.as_slice()))
                .collect(),
            None => stored.clone(),
        };
        let have_keys: std::collections::HashSet<&str> = have.iter().map(|(k, _)| *k).collect();
        // cheap filter: most keys must be shared before a full comparison is worth it
        let shared = want
            .iter()
            .filter(|(k, _)| have_keys.contains(k.as_str()))
            .count();
        if shared * 2 < want.len().max(have.len()) {
            continue;
        }
        let c = compare(&have, &want, &Leeway::default());
        let layout = converted.map(|c| c.applied.to_string());
        scored.push((c.count(), name, c, want, layout));
    }
    // ties (architectures with the very same keys and shapes) go to the plainer name
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.len().cmp(&b.1.len()))
            .then_with(|| a.1.cmp(&b.1))
    });
    if limit > 0 {
        scored.truncate(limit);
    }
    Ok(scored
        .into_iter()
        .map(|(distance, name, c, want, layout)| {
            let cfg = crate::registry::lookup(&name).ok().and_then(|(_, t)| t);
            Candidate {
                exact: c.is_exact(),
                differences: explain(&c, &want, cfg.as_ref()),
                architecture: name,
                distance,
                layout,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Keys {
        vec![
            ("stem.weight".into(), vec![8, 3, 3, 3]),
            ("stem.bias".into(), vec![8]),
            ("fc.weight".into(), vec![1000, 8]),
            ("fc.bias".into(), vec![1000]),
        ]
    }

    fn leeway() -> Leeway {
        Leeway {
            first_conv: vec!["stem".into()],
            classifier: vec!["fc".into()],
            ..Leeway::default()
        }
    }

    #[test]
    fn strict_comparison_and_what_adaptations_excuse() {
        let exact: Vec<(&str, &[usize])> = vec![
            ("stem.weight", &[8, 3, 3, 3]),
            ("stem.bias", &[8]),
            ("fc.weight", &[1000, 8]),
            ("fc.bias", &[1000]),
        ];
        assert!(compare(&exact, &model(), &Leeway::default()).is_exact());
        // a 1-channel stem (--base-chans 1) and a 1001-row head with label_offset 1
        let odd: Vec<(&str, &[usize])> = vec![
            ("stem.weight", &[8, 1, 3, 3]),
            ("stem.bias", &[8]),
            ("fc.weight", &[1001, 8]),
            ("fc.bias", &[1001]),
            ("extra", &[1]),
        ];
        let c = compare(&odd, &model(), &Leeway::default());
        assert_eq!(c.mismatched.len(), 3);
        assert_eq!(c.unexpected, ["extra"]);
        let c = compare(
            &odd,
            &model(),
            &Leeway {
                label_offset: 1,
                ..leeway()
            },
        );
        assert!(c.mismatched.is_empty(), "{c:?}");
        // a hub config.json's num_classes sets the classifier's rows
        let ten: Vec<(&str, &[usize])> = vec![
            ("stem.weight", &[8, 3, 3, 3]),
            ("stem.bias", &[8]),
            ("fc.weight", &[10, 8]),
            ("fc.bias", &[10]),
        ];
        assert!(!compare(&ten, &model(), &leeway()).is_exact());
        let cfg10 = Leeway {
            cfg_num_classes: Some(10),
            ..leeway()
        };
        assert!(compare(&ten, &model(), &cfg10).is_exact());
        // a headless checkpoint is fine when the head is dropped anyway
        let headless = &exact[..2];
        assert_eq!(
            compare(headless, &model(), &leeway()).missing,
            ["fc.weight", "fc.bias"]
        );
        let dropped = Leeway {
            head_dropped: true,
            ..leeway()
        };
        assert!(compare(headless, &model(), &dropped).is_exact());
        // messages list five keys, then a count
        let many = Comparison {
            missing: (0..8).map(|i| format!("k{i}")).collect(),
            ..Comparison::default()
        };
        assert_eq!(
            many.describe(),
            ["8 missing: `k0`, `k1`, `k2`, `k3`, `k4`, and 3 more"]
        );
    }
}

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

pub use crate::comparison::{Comparison, ShapeMismatch};

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
        comparison: Box::new(c.clone()),
    }
}

/// One candidate architecture for a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// `arch` or `arch.tag`.
    pub architecture: String,
    /// Keys and shapes are exactly the model's.
    pub exact: bool,
    /// Every difference is one a conversion makes (in_chans, num_classes, img_size): the
    /// checkpoint is this model adapted, a near fit. False when some shape could not have been
    /// adapted from the model's (another kernel, another width) or keys are missing or extra.
    pub adaptable: bool,
    /// The architecture timmconv recorded in the file's metadata when it wrote it.
    pub recorded: bool,
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

/// What timmconv recorded in the metadata of a file it wrote (`__metadata__["timmconv"]`): the
/// model it converted for and the settings that shape the tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The timmconv version that wrote the file.
    pub version: Option<String>,
    /// The architecture.
    pub model: Option<String>,
    /// The pretrained tag.
    pub tag: Option<String>,
    /// Input channels of the output.
    pub in_chans: Option<usize>,
    /// The channels the source weights were trained with.
    pub base_chans: Option<usize>,
    /// Classes asked for (0: headless).
    pub num_classes: Option<usize>,
    /// Image size (height, width) the output was resampled for.
    pub img_size: Option<[usize; 2]>,
    /// Patch size, when resampled for one.
    pub patch_size: Option<[usize; 2]>,
    /// The first conv(s) adapted.
    pub first_conv: Vec<String>,
    /// The classifier module(s).
    pub classifier: Vec<String>,
}

impl Recorded {
    /// What `ckpt`'s metadata says timmconv made it from, if timmconv wrote it. Read
    /// leniently: a field of the wrong type is absent, never an error.
    pub fn of(ckpt: &Checkpoint) -> Option<Recorded> {
        let text = ckpt.metadata()?.get("timmconv")?;
        let serde_json::Value::Object(m) = serde_json::from_str(text).ok()? else {
            return None;
        };
        let string = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let count = |k: &str| {
            m.get(k)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
        };
        let pair = |k: &str| -> Option<[usize; 2]> {
            match m.get(k)?.as_array()?.as_slice() {
                [h, w] => Some([
                    usize::try_from(h.as_u64()?).ok()?,
                    usize::try_from(w.as_u64()?).ok()?,
                ]),
                _ => None,
            }
        };
        let names = |k: &str| -> Vec<String> {
            m.get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Recorded {
            version: string("version"),
            model: string("model"),
            tag: string("tag").filter(|t| !t.is_empty()),
            in_chans: count("in_chans"),
            base_chans: count("base_chans"),
            num_classes: count("num_classes"),
            img_size: pair("img_size"),
            patch_size: pair("patch_size"),
            first_conv: names("first_conv"),
            classifier: names("classifier"),
        })
    }

    /// `model` or `model.tag`.
    pub fn name(&self) -> Option<String> {
        let model = self.model.as_ref()?;
        Some(match &self.tag {
            Some(t) => format!("{model}.{t}"),
            None => model.clone(),
        })
    }

    /// One line: `test_vit.r160_in1k, in_chans 4, num_classes 10, img_size 192`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.name().into_iter().collect();
        if let Some(c) = self.in_chans {
            parts.push(format!("in_chans {c}"));
        }
        if let Some(n) = self.num_classes {
            parts.push(format!("num_classes {n}"));
        }
        for (what, v) in [("img_size", self.img_size), ("patch_size", self.patch_size)] {
            match v {
                Some([h, w]) if h == w => parts.push(format!("{what} {h}")),
                Some([h, w]) => parts.push(format!("{what} {h}x{w}")),
                None => {}
            }
        }
        parts.join(", ")
    }
}

/// A position embedding whose token grid (and, laid out as an image, its height and width) is
/// all that differs: what the image size changes. Its embedding width is not.
fn grid_only(m: &ShapeMismatch) -> bool {
    let n = m.model.len();
    let channels_first = n == 4 && m.model.get(1) == m.checkpoint.get(1);
    m.checkpoint.len() == n
        && m.checkpoint
            .iter()
            .zip(&m.model)
            .enumerate()
            .all(|(i, (a, b))| {
                a == b
                    || if channels_first {
                        i >= 2
                    } else {
                        i != 0 && i + 1 != n
                    }
            })
}

/// How many of `c`'s differences no conversion explains: missing keys other than a whole
/// classifier, unexpected keys, and shapes that are not the model's with another input-channel
/// count (the first conv), row count (the classifier) or token grid (position embeddings and
/// relative-position tables). An 8x8 patch kernel cannot hold a 16x16 one: that is structural.
fn structural(c: &Comparison, want: &Keys, cfg: Option<&crate::registry::Tag>) -> usize {
    let first: Vec<String> = cfg.map(|t| t.first_conv()).unwrap_or_default();
    let head: Vec<String> = cfg.map(|t| t.classifier()).unwrap_or_default();
    let head_keys: Vec<&String> = want
        .iter()
        .map(|(k, _)| k)
        .filter(|k| Leeway::is_param_of(&head, k))
        .collect();
    let headless = !head_keys.is_empty() && head_keys.iter().all(|k| c.missing.contains(k));
    let missing = c
        .missing
        .iter()
        .filter(|k| !(headless && Leeway::is_param_of(&head, k)))
        .count();
    let same_but = |m: &ShapeMismatch, free: &dyn Fn(usize) -> bool| {
        m.checkpoint.len() == m.model.len()
            && m.checkpoint
                .iter()
                .zip(&m.model)
                .enumerate()
                .all(|(i, (a, b))| a == b || free(i))
    };
    let reshaped = c
        .mismatched
        .iter()
        .filter(|m| {
            let adaptable = if Leeway::is_param_of(&first, &m.key) && m.key.ends_with(".weight") {
                m.model.len() >= 2 && same_but(m, &|i| i == 1)
            } else if Leeway::is_param_of(&head, &m.key) {
                same_but(m, &|i| i == 0)
            } else if m.key.contains("relative_position") {
                // tables follow the window or the grid; their last dimension is the heads
                m.key.ends_with("index") || same_but(m, &|i| i + 1 < m.model.len())
            } else if m.key.contains("pos_embed") {
                grid_only(m)
            } else {
                false
            };
            !adaptable
        })
        .count();
    missing + c.unexpected.len() + reshaped
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
        if (m.key.contains("pos_embed") && grid_only(m)) || m.key.contains("relative_position") {
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

/// Every architecture the checkpoint could be, best first: exact matches, then near fits (every
/// difference one a conversion makes: in_chans, num_classes, img_size) by how few keys differ,
/// then the rest; `limit` of them (0: all that share at least half their keys with it). When
/// timmconv wrote the file, the architecture its metadata records comes first if its keys fit.
///
/// A checkpoint in an original project's layout (Meta's DINOv2, OpenAI CLIP, ...) is also
/// compared, converted, with every architecture of the family whose filter converts it.
pub fn identify(ckpt: &Checkpoint, limit: usize) -> Result<Vec<Candidate>> {
    rank(ckpt.tensors(), Recorded::of(ckpt).as_ref(), limit)
}

/// [`identify`] for a list of tensors (their keys and shapes are all that is compared), without
/// metadata.
pub fn identify_tensors(
    tensors: &[crate::checkpoint::TensorInfo],
    limit: usize,
) -> Result<Vec<Candidate>> {
    rank(tensors, None, limit)
}

/// [`identify`] on a `(key, shape)` list, with what the file's metadata recorded, if anything
/// (no original layout is tried: that needs the tensors).
pub fn identify_shapes(
    have: &[(&str, &[usize])],
    recorded: Option<&Recorded>,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let tensors: Vec<crate::checkpoint::TensorInfo> = Vec::new();
    rank_with(have, &tensors, recorded, limit)
}

fn rank(
    tensors: &[crate::checkpoint::TensorInfo],
    recorded: Option<&Recorded>,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let stored: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    rank_with(&stored, tensors, recorded, limit)
}

/// The ranking: `stored` is what the file holds; `tensors`, where given, are tried in every
/// original layout detected in them.
fn rank_with(
    stored: &[(&str, &[usize])],
    tensors: &[crate::checkpoint::TensorInfo],
    recorded: Option<&Recorded>,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let layouts: Vec<&crate::original::OriginalLayout> = if tensors.is_empty() {
        Vec::new()
    } else {
        crate::original::layouts()
            .iter()
            .filter(|l| {
                crate::original::detect(tensors, Some(l.family)).is_some_and(|d| d.0.name == l.name)
            })
            .collect()
    };
    let recorded_name = recorded.and_then(Recorded::name);
    let recorded_arch = recorded.and_then(|r| r.model.clone());
    let mut names = keys::names()?;
    if let Some(r) = recorded_name.as_ref().filter(|r| !names.contains(r)) {
        // a tag without keys of its own: the architecture's keys, under the recorded name
        match names.iter().position(|n| Some(n) == recorded_arch.as_ref()) {
            Some(i) => names[i] = r.clone(),
            None => names.push(r.clone()),
        }
    }
    type Scored = (usize, usize, String, Comparison, Keys, Option<String>);
    let mut scored: Vec<Scored> = Vec::new();
    for name in names {
        let is_recorded = recorded_name.as_ref() == Some(&name);
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
            None => stored.to_vec(),
        };
        let have_keys: std::collections::HashSet<&str> = have.iter().map(|(k, _)| *k).collect();
        // cheap filter: most keys must be shared before a full comparison is worth it
        let shared = want
            .iter()
            .filter(|(k, _)| have_keys.contains(k.as_str()))
            .count();
        if shared * 2 < want.len().max(have.len()) && !is_recorded {
            continue;
        }
        let c = compare(&have, &want, &Leeway::default());
        let cfg = crate::registry::lookup(&name).ok().and_then(|(_, t)| t);
        let hard = structural(&c, &want, cfg.as_ref());
        let layout = converted.map(|c| c.applied.to_string());
        scored.push((hard, c.count(), name, c, want, layout));
    }
    let first = |name: &str, hard: usize| hard == 0 && recorded_name.as_deref() == Some(name);
    // the recorded model when it fits; then what fits by adaptation, fewest differences first;
    // ties (architectures with the very same keys and shapes) go to the plainer name
    scored.sort_by(|a, b| {
        first(&b.2, b.0)
            .cmp(&first(&a.2, a.0))
            .then_with(|| (a.0 > 0).cmp(&(b.0 > 0)))
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| a.2.len().cmp(&b.2.len()))
            .then_with(|| a.2.cmp(&b.2))
    });
    if limit > 0 {
        scored.truncate(limit);
    }
    Ok(scored
        .into_iter()
        .map(|(hard, distance, name, c, want, layout)| {
            let cfg = crate::registry::lookup(&name).ok().and_then(|(_, t)| t);
            let is_recorded = recorded_name.as_deref() == Some(name.as_str());
            let mut differences = explain(&c, &want, cfg.as_ref());
            if is_recorded {
                if let Some(r) = recorded {
                    differences.insert(
                        0,
                        format!(
                            "recorded by timmconv in the file's metadata: {}",
                            r.describe()
                        ),
                    );
                }
            }
            Candidate {
                exact: c.is_exact(),
                adaptable: hard == 0,
                recorded: is_recorded,
                differences,
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

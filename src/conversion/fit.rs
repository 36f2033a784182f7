//! The checkpoint against the target model: an original layout converted as timm's filter would,
//! then the keys and shapes checked as `load_state_dict` checks them.

use super::settings::Settings;
use super::OriginalLayoutChoice;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result, Setting};
use crate::original::Derived;

/// The original layouts the model's family converts, in words, when none was detected.
fn layouts_tried(settings: &Settings) -> Option<String> {
    if settings.original != OriginalLayoutChoice::Auto {
        return None;
    }
    let family = settings.registry.as_ref()?.0.module.clone()?;
    let tried: Vec<String> = crate::original::layouts()
        .iter()
        .filter(|l| l.family == family)
        .map(|l| format!("{} ({})", l.name, l.detected_by))
        .collect();
    (!tried.is_empty()).then(|| {
        format!(
            "nor is it in an original layout timm's `{family}` filter converts (tried {})",
            tried.join(", ")
        )
    })
}

/// The checkpoint's tensors converted from an original layout, when one applies: forced, or
/// detected for the model's family (timm runs the family's filter on every checkpoint).
fn original_tensors(
    ckpt: &Checkpoint,
    settings: &Settings,
    model_keys: Option<&crate::registry::keys::Keys>,
) -> Result<Option<crate::original::Converted>> {
    let family = settings
        .registry
        .as_ref()
        .and_then(|(arch, _)| arch.module.clone());
    let layout = match &settings.original {
        OriginalLayoutChoice::Off => return Ok(None),
        OriginalLayoutChoice::Force(name) => {
            let Some(l) = crate::original::find(name) else {
                return Err(Error::Setting(Setting::UnknownOriginalLayout {
                    name: name.clone(),
                    known: crate::original::layouts()
                        .iter()
                        .map(|l| l.name.to_owned())
                        .collect(),
                }));
            };
            l
        }
        OriginalLayoutChoice::Auto => {
            let Some(family) = family.as_deref() else {
                return Ok(None);
            };
            match crate::original::detect(ckpt.tensors(), Some(family)) {
                Some(d) => d.0,
                None => return Ok(None),
            }
        }
    };
    let a = &settings.adapt;
    let classes = a.num_classes.or(a.cfg_num_classes);
    let target = crate::original::Target {
        keys: model_keys.map(|k| k.iter().cloned().collect()),
        head_linear: classes.is_none_or(|n| n > 0),
    };
    layout.convert(ckpt.tensors(), &target).map(Some)
}

/// The checkpoint's tensors as timm would load them into the model: converted from an original
/// layout when one applies, checked against the model's keys (strictly, or as timm's
/// `strict=False` load for the tags it loads so), with what was converted and noted.
pub(super) struct Fitted {
    pub(super) tensors: Vec<Derived>,
    pub(super) applied: Option<crate::original::Applied>,
    pub(super) warnings: Vec<String>,
}

/// Fits `ckpt` to the model `settings` name: see [`Fitted`].
pub(super) fn fit(ckpt: &Checkpoint, settings: &Settings) -> Result<Fitted> {
    // the registry records keys per tag: a tag's num_classes can differ from the default's
    let model_keys = match (&settings.model_keys, &settings.model, &settings.tag) {
        (Some(k), _, _) => Some(k.clone()),
        (None, Some(m), Some(t)) if !t.is_empty() => {
            crate::registry::keys::keys(&format!("{m}.{t}"))?
        }
        (None, Some(m), _) => crate::registry::keys::keys(m)?,
        (None, None, _) => None,
    };
    let converted = original_tensors(ckpt, settings, model_keys.as_ref())?;
    let (mut derived, applied) = match converted {
        Some(c) => (c.tensors, Some(c.applied)),
        None => (ckpt.tensors().iter().map(Derived::stored).collect(), None),
    };
    let fit = match (&settings.model, &model_keys) {
        (Some(model), Some(want)) => {
            let name = match &settings.tag {
                Some(t) if !t.is_empty() => format!("{model}.{t}"),
                _ => model.clone(),
            };
            let have: Vec<(&str, &[usize])> = derived
                .iter()
                .map(|d| (d.info.name.as_str(), d.info.shape.as_slice()))
                .collect();
            Some(crate::identify::compare(
                &have,
                want,
                &crate::identify::Leeway::of(&settings.adapt),
            ))
            .filter(|c| !c.is_exact())
            .map(|c| (name, c))
        }
        _ => None,
    };
    // timm loads some tags with load_state_dict(strict=False) (registry::strict): a missing
    // key stays at the model's init (nothing to write), an unexpected one is ignored (left
    // out); a shape mismatch still raises there, and is refused here
    let mut non_strict_notes = Vec::new();
    let fit = match fit {
        Some((name, c)) if settings.non_strict && c.mismatched.is_empty() => {
            derived.retain(|d| !c.unexpected.contains(&d.info.name));
            non_strict_notes = c
                .describe()
                .into_iter()
                .map(|d| {
                    format!(
                        "timm loads `{name}` with strict=False: {d} (missing keys keep \
                             timm's init and are not written; unexpected ones are left out)"
                    )
                })
                .collect();
            None
        }
        f => f,
    };
    if let (Some((name, c)), false) = (&fit, settings.allow_mismatch) {
        let e = match &applied {
            Some(a) => crate::identify::mismatch_error(&format!("{name}` (from layout `{a}`)"), c),
            None => {
                let mut e = crate::identify::mismatch_error(name, c);
                if let (Error::ModelMismatch { differences, .. }, Some(tried)) =
                    (&mut e, layouts_tried(settings))
                {
                    differences.push(tried);
                }
                e
            }
        };
        return Err(e);
    }
    let mut warnings = non_strict_notes;
    if let Some((name, c)) = &fit {
        for d in c.describe() {
            warnings.push(format!("allow_mismatch: not a `{name}` state dict: {d}"));
        }
    }
    Ok(Fitted {
        tensors: derived,
        applied,
        warnings,
    })
}

//! Deciding each tensor's fate, stage by stage in timm's order: the settings are checked once,
//! then every tensor passes through resampling, the first conv, the head, the features
//! selection and the cast; any stage may leave it out, with the reason in the report.

use super::{
    in_chans, limits, Adaptation, Adapted, DropReason, Dropped, Head, Op, Planned, Report,
    Resampled,
};
use crate::checkpoint::TensorInfo;
use crate::dtype::DType;
use crate::error::{Error, Result, Setting, TensorProblem};
use crate::original::Derived;

/// A tensor on its way through the stages: its transform and shape so far.
struct Shaped {
    op: Op,
    shape: Vec<usize>,
}

/// What a stage decides: go on (`None`) or leave the tensor out, and why.
type Fate = Option<DropReason>;

/// The settings, checked, with what they resolve to; it records the report as tensors pass.
pub(super) struct Planner<'a> {
    a: &'a Adaptation,
    in_chans: usize,
    base: usize,
    /// The target's classifier differs from the pretrained one (`num_classes`).
    drop_head: bool,
    /// The checkpoint's `patch_embed.proj.weight` kernel size, if any (for the source grid).
    patch_kernel: Option<[usize; 2]>,
    pub(super) report: Report,
}

impl<'a> Planner<'a> {
    /// Checks `a`'s settings against each other before any tensor is looked at.
    pub(super) fn new(derived: &[Derived], a: &'a Adaptation) -> Result<Planner<'a>> {
        let base = a.base_chans();
        let in_chans = a.target_in_chans();
        if in_chans != base && a.first_conv.is_empty() {
            return Err(Error::Setting(Setting::InChansNeedsFirstConv));
        }
        limits::check_in_chans(in_chans, base)?;
        let drop_head = head_replaced(a)?;
        check_renames(a)?;
        Ok(Planner {
            a,
            in_chans,
            base,
            drop_head,
            patch_kernel: patch_kernel(derived),
            report: Report {
                dtype: a.dtype,
                in_chans,
                base_chans: base,
                stem_free: a.resolved.stem_free,
                ..Report::default()
            },
        })
    }

    /// The target model's input channels and the trained ones.
    pub(super) fn channels(&self) -> (usize, usize) {
        (self.in_chans, self.base)
    }

    /// One tensor through every stage: its plan, or `None` when a stage leaves it out.
    pub(super) fn tensor(&mut self, d: &Derived) -> Result<Option<Planned>> {
        let t = &d.info;
        let mut s = Shaped {
            op: Op::Copy,
            shape: t.shape.clone(),
        };
        let fate = match self.resample(t, &mut s)? {
            None => match self.first_conv(t, &mut s)? {
                None => self.head(t, &mut s)?,
                dropped => dropped,
            },
            dropped => dropped,
        };
        if let Some(reason) = fate {
            self.drop(t, reason);
            return Ok(None);
        }
        let Some(name) = self.features_name(t) else {
            self.drop(t, DropReason::NotInFeatures);
            return Ok(None);
        };
        let dtype = self.cast(t);
        Ok(Some(Planned {
            name,
            source: t.clone(),
            op: s.op,
            dtype,
            shape: s.shape,
            derive: d.derive.clone(),
        }))
    }

    /// Records `t` as left out; a dropped classifier is the head's fate too.
    fn drop(&mut self, t: &TensorInfo, reason: DropReason) {
        if reason.is_classifier() {
            self.report.head = Head::Dropped(reason.clone());
        }
        self.report.dropped.push(Dropped {
            key: t.name.clone(),
            reason,
        });
    }

    /// Resolution: drops the buffers timm rebuilds for the new size, plans the resampling of
    /// what the knobs change (float tensors only, within the limits).
    fn resample(&mut self, t: &TensorInfo, s: &mut Shaped) -> Result<Fate> {
        let Some(r) = &self.a.resize else {
            return Ok(None);
        };
        if r.has_rel_tables()
            && (t.name.ends_with("relative_position_index") || t.name.ends_with("attn_mask"))
        {
            return Ok(Some(DropReason::RebuiltBuffer));
        }
        let Some(rs) = r.op(&t.name, &t.shape, self.patch_kernel)? else {
            return Ok(None);
        };
        if !t.dtype.is_float() {
            return Err(Error::tensor(
                TensorProblem::Unsupported,
                &t.name,
                format!("of dtype {} cannot be resampled", t.dtype),
            ));
        }
        if !rs.computes_in_float32() && t.dtype != DType::F32 {
            return Err(Error::tensor(TensorProblem::Unsupported,
                &t.name,
                format!(
                    "of dtype {}: timm's filter resamples it in that dtype, not in float32, which timmconv does not reproduce; convert a float32 checkpoint",
                    t.dtype
                ),
            ));
        }
        let Some(to) = rs.out_shape(&t.shape) else {
            return Err(Error::tensor(
                TensorProblem::Shape,
                &t.name,
                "does not fit its resampling",
            ));
        };
        limits::check_resample(&t.name, &rs, &t.shape, &to)?;
        self.report.resampled.push(Resampled {
            key: t.name.clone(),
            from_shape: t.shape.clone(),
            to_shape: to.clone(),
            op: rs.clone(),
        });
        s.shape = to;
        s.op = Op::Resample(rs, None);
        Ok(None)
    }

    /// First conv: adapts its weight to `in_chans` (after any resampling, as timm does), or
    /// leaves it out when it cannot be adapted and `drop_unadaptable` says so.
    fn first_conv(&mut self, t: &TensorInfo, s: &mut Shaped) -> Result<Fate> {
        let a = self.a;
        if self.in_chans == self.base
            || !a.first_conv.iter().any(|m| t.name == format!("{m}.weight"))
        {
            return Ok(None);
        }
        match in_chans::plan(&t.name, &s.shape, self.in_chans, self.base) {
            Ok((method, to_shape)) => {
                limits::check_tensor(&t.name, "adapted to shape", &to_shape)?;
                if !t.dtype.is_float() {
                    return Err(Error::tensor(
                        TensorProblem::Unsupported,
                        &t.name,
                        format!("first conv of dtype {} cannot be adapted", t.dtype),
                    ));
                }
                self.report.adapted.push(Adapted {
                    key: t.name.clone(),
                    from_shape: s.shape.clone(),
                    to_shape: to_shape.clone(),
                    method,
                });
                s.op = match std::mem::replace(&mut s.op, Op::Copy) {
                    Op::Resample(rs, _) => Op::Resample(rs, Some(method)),
                    _ => Op::InChans(method),
                };
                s.shape = to_shape;
                Ok(None)
            }
            Err(Error::Unadaptable {
                key,
                shape,
                in_chans,
                base,
                why,
            }) if a.drop_unadaptable => Ok(Some(DropReason::UnadaptableStem {
                key,
                shape,
                in_chans,
                base,
                why,
            })),
            Err(e) => Err(e),
        }
    }

    /// Classifier: left out for another `num_classes` (with what goes with the head of a
    /// headless model) or a `global_pool` that changes its input; else sliced for a
    /// `label_offset`.
    fn head(&mut self, t: &TensorInfo, s: &mut Shaped) -> Result<Fate> {
        let a = self.a;
        let is_head = a
            .classifier
            .iter()
            .any(|c| t.name == format!("{c}.weight") || t.name == format!("{c}.bias"));
        let goes_with_head = self.drop_head
            && a.num_classes == Some(0)
            && a.resolved.headless_drops.contains(&t.name);
        if (is_head || goes_with_head) && self.drop_head {
            return Ok(Some(DropReason::NumClasses {
                num_classes: a.num_classes.unwrap_or_default(),
                pretrained: a.cfg_num_classes,
            }));
        }
        if let Some((pool, keys)) = &a.global_pool {
            if keys.contains(&t.name) {
                return Ok(Some(DropReason::GlobalPool { pool: pool.clone() }));
            }
        }
        if is_head && a.label_offset > 0 {
            let Some(rows) = s.shape.first_mut() else {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    &t.name,
                    "a 0-d classifier cannot drop label-offset rows",
                ));
            };
            if *rows < a.label_offset {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    &t.name,
                    format!(
                        "has {rows} rows, fewer than label_offset {}",
                        a.label_offset
                    ),
                ));
            }
            *rows -= a.label_offset;
            s.op = Op::SkipRows(a.label_offset);
            self.report.sliced.push(t.name.clone());
            self.report.head = Head::Sliced {
                label_offset: a.label_offset,
            };
        }
        Ok(None)
    }

    /// Features only: the features model's name of `t`, `None` when that model lacks it.
    fn features_name(&self, t: &TensorInfo) -> Option<String> {
        match &self.a.features {
            Some(sel) => sel.map(&t.name),
            None => Some(t.name.clone()),
        }
    }

    /// The output dtype of `t`, counting the floating tensors `dtype` casts.
    fn cast(&mut self, t: &TensorInfo) -> DType {
        match self.a.dtype {
            Some(d) if t.dtype.is_float() && d != t.dtype => {
                self.report.cast += 1;
                d
            }
            _ => t.dtype,
        }
    }

    /// Warns of first convs named by the cfg that the checkpoint lacks, when `in_chans` changes.
    pub(super) fn warn_missing_first_conv(&mut self, derived: &[Derived]) {
        if self.in_chans == self.base {
            return;
        }
        for m in &self.a.first_conv {
            let key = format!("{m}.weight");
            if !derived.iter().any(|d| d.info.name == key) {
                self.report.warnings.push(format!(
                    "first conv `{key}` is not in the checkpoint; nothing adapted for it"
                ));
            }
        }
    }
}

/// Whether the target's classifier differs from the pretrained one; a `num_classes` needs the
/// cfg's count or a classifier to drop.
fn head_replaced(a: &Adaptation) -> Result<bool> {
    match (a.num_classes, a.cfg_num_classes) {
        (Some(n), Some(c)) => Ok(n != c),
        (Some(_), None) if !a.classifier.is_empty() => Ok(true),
        (Some(_), None) => Err(Error::Setting(Setting::NumClassesNeedsClassifier)),
        (None, _) => Ok(false),
    }
}

/// `rename_stem` and `rename_classifier` each need exactly one module to rename.
fn check_renames(a: &Adaptation) -> Result<()> {
    for (setting, value, modules) in [
        ("rename_stem", &a.rename_stem, &a.first_conv),
        ("rename_classifier", &a.rename_classifier, &a.classifier),
    ] {
        if value.is_some() && modules.len() != 1 {
            return Err(Error::Setting(Setting::RenameNeedsOneModule {
                setting,
                modules: modules.clone(),
            }));
        }
    }
    Ok(())
}

/// The kernel size of the checkpoint's `patch_embed.proj.weight`, if it has one.
fn patch_kernel(derived: &[Derived]) -> Option<[usize; 2]> {
    derived
        .iter()
        .map(|d| &d.info)
        .find(|t| t.name == "patch_embed.proj.weight")
        .and_then(|t| match t.shape.as_slice() {
            &[_, _, h, w] => Some([h, w]),
            _ => None,
        })
}

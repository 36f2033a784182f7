//! Adapting a state dict the way timm's `load_pretrained` does: first-conv channels, classifier
//! drop or label offset, renames and dtype casts, planned up front and applied per tensor.

pub mod features;
pub mod in_chans;
pub mod limits;
mod plan;
pub mod pool;
pub mod rename;
pub mod resample;
pub mod resize;

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::{cast, DType};
use crate::error::{Error, Result, TensorProblem};
use crate::original::{Derive, Derived};
pub use features::FeatureSelect;
pub use in_chans::InChansMethod;
pub use rename::{Renamed, Rule};
pub use resample::Resample;
pub use resize::{Knobs, ResizePlan};

/// What to do to a checkpoint. Field names follow timm's pretrained cfg.
#[derive(Debug, Clone, Default)]
pub struct Adaptation {
    /// Target input channels (`None`: unchanged).
    pub in_chans: Option<usize>,
    /// Target classes (`None`: the cfg's; 0: headless).
    pub num_classes: Option<usize>,
    /// The cfg's `first_conv` module names.
    pub first_conv: Vec<String>,
    /// The cfg's `classifier` module names.
    pub classifier: Vec<String>,
    /// Channels the weights were trained with (`input_size[0]`, default 3).
    pub base_chans: Option<usize>,
    /// The cfg's `num_classes`.
    pub cfg_num_classes: Option<usize>,
    /// The cfg's `label_offset`.
    pub label_offset: usize,
    /// Drop first-conv weights that cannot be adapted instead of failing (timm's behaviour).
    pub drop_unadaptable: bool,
    /// New module path for the (single) first conv.
    pub rename_stem: Option<String>,
    /// New module path for the (single) classifier.
    pub rename_classifier: Option<String>,
    /// Regex rules applied in order after the prefix renames.
    pub rules: Vec<Rule>,
    /// Cast floating tensors to this dtype.
    pub dtype: Option<DType>,
    /// Keep and rename only what timm's features_only model holds.
    pub features: Option<FeatureSelect>,
    /// Resolution adaptation (`img_size`, `patch_size`, `window_size`).
    pub resize: Option<ResizePlan>,
    /// `global_pool` of the target model, and the classifier keys it reshapes (dropped: timm
    /// re-initialises them).
    pub global_pool: Option<(String, Vec<String>)>,
    /// What the [`Conversion`](crate::Conversion) builder resolved from the registry and the
    /// cfg; a library user leaves it at its default.
    pub resolved: Resolved,
}

/// Facts the [`Conversion`](crate::Conversion) builder derives from the registry and the
/// pretrained cfg for an [`Adaptation`], read-only outside the crate: they are not settings.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The cfg declares no first conv (`first_conv: []`, such as csatv2's fixed DCT stem):
    /// timm builds the model the same for any `in_chans`, so `base_chans` was set to
    /// `in_chans` and the weights serve unchanged.
    pub(crate) stem_free: bool,
    /// Keys timm's `num_classes=0` model lacks besides the classifier's weight and bias (a head
    /// norm that goes with the head, as in LeViT or EfficientViT-M, whose head becomes
    /// `Identity`): dropped with the head when `num_classes` is 0. From the registry's keys
    /// data ([`crate::registry::keys::headless`]).
    pub(crate) headless_drops: Vec<String>,
}

impl Resolved {
    /// The cfg declares no first conv, so the weights serve any `in_chans` unchanged.
    pub fn stem_free(&self) -> bool {
        self.stem_free
    }

    /// Keys dropped with the head when `num_classes` is 0, besides the classifier's own.
    pub fn headless_drops(&self) -> &[String] {
        &self.headless_drops
    }
}

impl Adaptation {
    /// The channels the weights were trained with: `base_chans`, else 3 (timm's default).
    pub fn base_chans(&self) -> usize {
        self.base_chans.unwrap_or(3)
    }

    /// The target model's input channels: `in_chans`, else the trained ones.
    pub fn target_in_chans(&self) -> usize {
        self.in_chans.unwrap_or_else(|| self.base_chans())
    }
}

/// The transform of one output tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bytes unchanged (maybe cast).
    Copy,
    /// First-conv channel adaptation.
    InChans(InChansMethod),
    /// Drop the first `n` rows (label offset).
    SkipRows(usize),
    /// Resolution resampling, then maybe the first-conv channel adaptation (timm's order).
    Resample(Resample, Option<InChansMethod>),
}

/// One tensor of the output.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Output key.
    pub name: String,
    /// The source tensor.
    pub source: TensorInfo,
    /// The transform.
    pub op: Op,
    /// Output dtype.
    pub dtype: DType,
    /// Output shape.
    pub shape: Vec<usize>,
    /// How `source` is obtained from the checkpoint (a stored tensor or a view of one, unless
    /// an original layout's conversion computes it).
    pub derive: Derive,
}

impl Planned {
    /// Output bytes.
    pub fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// A first-conv weight that was adapted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adapted {
    /// Its key (before renames).
    pub key: String,
    /// Shape before.
    pub from_shape: Vec<usize>,
    /// Shape after.
    pub to_shape: Vec<usize>,
    /// How.
    #[serde(flatten)]
    pub method: InChansMethod,
}

/// A tensor resampled for another resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resampled {
    /// Its key (before renames).
    pub key: String,
    /// Shape before.
    pub from_shape: Vec<usize>,
    /// Shape after.
    pub to_shape: Vec<usize>,
    /// How.
    #[serde(flatten)]
    pub op: Resample,
}

/// A tensor left out of the output: its key (before renames) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The checkpoint's key of the tensor.
    pub key: String,
    /// Why it was left out; serialised as its sentence.
    #[serde(serialize_with = "serialize_display")]
    pub reason: DropReason,
}

fn serialize_display<S: serde::Serializer>(
    v: &impl std::fmt::Display,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Why a tensor was left out of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A buffer timm rebuilds for a new input size (`relative_position_index`, `attn_mask`).
    RebuiltBuffer,
    /// A first conv that cannot be adapted to `in_chans` (with `drop_unadaptable`; timm
    /// re-initialises it).
    UnadaptableStem {
        /// The weight's key.
        key: String,
        /// The weight's shape.
        shape: Vec<usize>,
        /// The target input channels.
        in_chans: usize,
        /// The channels the weights were trained with.
        base: usize,
        /// Why it cannot be adapted.
        why: String,
    },
    /// The classifier, for a `num_classes` other than the pretrained one.
    NumClasses {
        /// The target class count.
        num_classes: usize,
        /// The pretrained class count, when known.
        pretrained: Option<usize>,
    },
    /// The classifier, whose input features a `global_pool` changes (timm re-initialises it).
    GlobalPool {
        /// The target pooling.
        pool: String,
    },
    /// A tensor timm's `features_only` model does not hold.
    NotInFeatures,
}

impl DropReason {
    /// Whether the dropped tensor is the classifier (the model's head is re-initialised).
    pub fn is_classifier(&self) -> bool {
        matches!(
            self,
            DropReason::NumClasses { .. } | DropReason::GlobalPool { .. }
        )
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::RebuiltBuffer => f.write_str("buffer that timm rebuilds for the new size"),
            DropReason::UnadaptableStem {
                key,
                shape,
                in_chans,
                base,
                why,
            } => write!(
                f,
                "unadaptable first conv: cannot adapt `{key}` with shape {shape:?} to \
                 in_chans={in_chans} (base {base}): {why}"
            ),
            DropReason::NumClasses {
                num_classes,
                pretrained,
            } => write!(
                f,
                "classifier: num_classes {num_classes} differs from the pretrained {}",
                pretrained.map_or("(unknown)".to_owned(), |c| c.to_string())
            ),
            DropReason::GlobalPool { pool } => write!(
                f,
                "classifier: global_pool `{pool}` changes its input features; timm re-initialises it"
            ),
            DropReason::NotInFeatures => f.write_str("not part of the features_only model"),
        }
    }
}

/// What becomes of the classifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Head {
    /// Written as it is (or there is no classifier to speak of).
    #[default]
    Kept,
    /// Written without its first `label_offset` rows (a background class timm's model for
    /// the same `num_classes` does not have).
    Sliced {
        /// The rows dropped.
        label_offset: usize,
    },
    /// Left out: the target model's head differs, and timm re-initialises it.
    Dropped(DropReason),
}

impl Head {
    /// Whether the classifier is left out of the output.
    pub fn is_dropped(&self) -> bool {
        matches!(self, Head::Dropped(_))
    }
}

/// What a plan does, for the user and the output metadata.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// First convs adapted.
    pub adapted: Vec<Adapted>,
    /// Tensors resampled for another resolution.
    pub resampled: Vec<Resampled>,
    /// Tensors dropped.
    pub dropped: Vec<Dropped>,
    /// Classifier weights sliced for the label offset.
    pub sliced: Vec<String>,
    /// Keys renamed.
    pub renamed: Vec<Renamed>,
    /// Rename rules that matched nothing.
    pub unused_rules: Vec<String>,
    /// Tensors cast, and to what.
    pub cast: usize,
    /// Target dtype of the cast, if any.
    pub dtype: Option<DType>,
    /// The original layout converted from, if any (`dinov2`, `openai_clip`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_layout: Option<crate::original::Applied>,
    /// Warnings worth showing.
    pub warnings: Vec<String>,
    /// The target model's input channels, as resolved.
    #[serde(skip)]
    pub in_chans: usize,
    /// The channels the weights were trained with, as resolved.
    #[serde(skip)]
    pub base_chans: usize,
    /// The cfg declares no first conv, so the weights serve any `in_chans` unchanged (see
    /// [`Resolved::stem_free`]).
    #[serde(skip)]
    pub stem_free: bool,
    /// What becomes of the classifier.
    #[serde(skip)]
    pub head: Head,
}

/// Elements cast per piece when streaming a cast (4 Mi: 16 MiB of f32).
pub const CAST_CHUNK: usize = 4 << 20;

/// Buffers reused from tensor to tensor while writing.
#[derive(Debug, Default)]
pub struct Scratch {
    input: Vec<u8>,
    output: Vec<u8>,
}

/// The planned output: every tensor with its transform, in the checkpoint's order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Output tensors.
    pub tensors: Vec<Planned>,
    /// What the plan does.
    pub report: Report,
    in_chans: usize,
    base: usize,
}

impl Plan {
    /// Plans the adaptation of `ckpt`: checks every option against the checkpoint and decides
    /// each tensor's fate; no tensor data is read.
    pub fn new(ckpt: &Checkpoint, a: &Adaptation) -> Result<Plan> {
        let stored: Vec<Derived> = ckpt.tensors().iter().map(Derived::stored).collect();
        Plan::from_derived(&stored, a)
    }

    /// Plans the adaptation of tensors derived from a checkpoint (an original layout's
    /// conversion, [`crate::original`]), as [`Plan::new`] does for the stored ones.
    pub fn from_derived(derived: &[Derived], a: &Adaptation) -> Result<Plan> {
        let mut planner = plan::Planner::new(derived, a)?;
        let mut tensors = Vec::new();
        for d in derived {
            tensors.extend(planner.tensor(d)?);
        }
        planner.warn_missing_first_conv(derived);
        let (in_chans, base) = planner.channels();
        let mut report = planner.report;
        rename_all(&mut tensors, a, &mut report)?;
        Ok(Plan {
            tensors,
            report,
            in_chans,
            base,
        })
    }

    /// Hands one planned tensor's output to `sink`: an unchanged tensor stored contiguously in a
    /// file as a range for the kernel to copy; a cast of one in pieces of at most `CAST_CHUNK`
    /// elements through the reusable `scratch` buffers; anything else as its transformed bytes.
    pub fn write_tensor(
        &self,
        ckpt: &Checkpoint,
        p: &Planned,
        scratch: &mut Scratch,
        sink: &mut crate::write::Sink<'_>,
    ) -> Result<()> {
        use crate::write::Chunk;
        let (Op::Copy, Derive::View, Some(file), Some(range)) = (
            &p.op,
            &p.derive,
            ckpt.file(),
            ckpt.tensor_file_range(&p.source),
        ) else {
            return sink(Chunk::Bytes(self.bytes_with(ckpt, p, true)?));
        };
        if p.dtype == p.source.dtype {
            return sink(Chunk::FileRange {
                file,
                offset: range.start as u64,
                len: range.len() as u64,
            });
        }
        let step = CAST_CHUNK * p.source.dtype.size();
        // these reads pass through this process in file order: a whole member is checked
        let mut crc = ckpt.crc_feed();
        let mut at = range.start;
        while at < range.end {
            let n = step.min(range.end - at);
            scratch.input.clear();
            scratch.input.resize(n, 0);
            crate::fileio::read_exact_at(file, &mut scratch.input, at as u64).map_err(|e| {
                Error::tensor(
                    TensorProblem::Read,
                    &p.source.name,
                    format!("reading {n} bytes at offset {at}: {e}"),
                )
            })?;
            crc.feed(at, &scratch.input)?;
            cast::cast_into(&scratch.input, p.source.dtype, p.dtype, &mut scratch.output);
            sink(Chunk::Bytes(Cow::Borrowed(&scratch.output)))?;
            at += n;
        }
        Ok(())
    }

    /// The output bytes of one planned tensor.
    pub fn bytes<'c>(&self, ckpt: &'c Checkpoint, p: &Planned) -> Result<Cow<'c, [u8]>> {
        self.bytes_with(ckpt, p, false)
    }

    /// One planned tensor, adapted, as an [`ndarray`] array of `T` (borrowed from the file when
    /// the tensor passes through unchanged, as [`Checkpoint::array`] explains).
    ///
    /// ```
    /// use timmconv::adapt::{Adaptation, Plan};
    /// use timmconv::{Checkpoint, OpenOptions};
    /// let ckpt = Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &OpenOptions::default())?;
    /// let a = Adaptation { in_chans: Some(1), first_conv: vec!["conv1.0".into()], ..Default::default() };
    /// let plan = Plan::new(&ckpt, &a)?;
    /// let stem = plan.tensors.iter().find(|p| p.name == "conv1.0.weight").unwrap();
    /// assert_eq!(plan.array::<f32>(&ckpt, stem)?.shape(), [16, 1, 3, 3]);
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Checkpoint::array`].
    pub fn array<'c, T: crate::array::Element>(
        &self,
        ckpt: &'c Checkpoint,
        p: &Planned,
    ) -> Result<ndarray::CowArray<'c, T, ndarray::IxDyn>> {
        crate::array::to_array(&p.name, self.bytes(ckpt, p)?, p.dtype, &p.shape)
    }

    fn bytes_with<'c>(
        &self,
        ckpt: &'c Checkpoint,
        p: &Planned,
        buffered: bool,
    ) -> Result<Cow<'c, [u8]>> {
        let derived = Derived {
            info: p.source.clone(),
            derive: p.derive.clone(),
        };
        let src = crate::original::evaluate(&derived, |t| {
            if buffered {
                ckpt.tensor_bytes_buffered(t)
            } else {
                ckpt.tensor_bytes(t)
            }
        })?;
        let sdt = p.source.dtype;
        let not_float = || {
            Error::tensor(
                TensorProblem::ElementType,
                &p.source.name,
                "not a floating-point tensor",
            )
        };
        let transformed: Cow<'c, [u8]> = match p.op {
            Op::Copy => src,
            Op::SkipRows(n) => {
                let row: usize = p.source.shape.iter().skip(1).product::<usize>() * sdt.size();
                match src {
                    Cow::Borrowed(b) => Cow::Borrowed(&b[n * row..]),
                    Cow::Owned(v) => Cow::Owned(v[n * row..].to_vec()),
                }
            }
            Op::InChans(method) => {
                let w = cast::to_f32(&src, sdt).ok_or_else(not_float)?;
                let out = in_chans::apply(&w, &p.source.shape, method, self.in_chans, self.base)
                    .ok_or_else(|| {
                        Error::tensor(
                            TensorProblem::Shape,
                            &p.source.name,
                            "does not fit its planned in_chans adaptation",
                        )
                    })?;
                let bytes = cast::from_f32(&out, sdt).ok_or_else(not_float)?;
                Cow::Owned(bytes)
            }
            Op::Resample(ref rs, then) => {
                let w = cast::to_f32(&src, sdt).ok_or_else(not_float)?;
                let shape = rs.out_shape(&p.source.shape).ok_or_else(|| {
                    Error::tensor(
                        TensorProblem::Shape,
                        &p.source.name,
                        "does not fit its resampling",
                    )
                })?;
                let mut out = rs.apply(&w, &p.source.shape).ok_or_else(|| {
                    Error::tensor(
                        TensorProblem::Shape,
                        &p.source.name,
                        "does not fit its resampling",
                    )
                })?;
                if let Some(method) = then {
                    // timm rounds to the source dtype between the filter and adapt_input_conv
                    let rounded = cast::from_f32(&out, sdt).and_then(|b| cast::to_f32(&b, sdt));
                    out = rounded
                        .and_then(|r| in_chans::apply(&r, &shape, method, self.in_chans, self.base))
                        .ok_or_else(|| {
                            Error::tensor(
                                TensorProblem::Shape,
                                &p.source.name,
                                "does not fit its planned in_chans adaptation",
                            )
                        })?;
                }
                let bytes = cast::from_f32(&out, sdt).ok_or_else(not_float)?;
                Cow::Owned(bytes)
            }
        };
        Ok(if p.dtype != sdt {
            Cow::Owned(cast::cast(&transformed, sdt, p.dtype))
        } else {
            transformed
        })
    }
}

fn rename_all(tensors: &mut [Planned], a: &Adaptation, report: &mut Report) -> Result<()> {
    let mut rule_hits = vec![0usize; a.rules.len()];
    for p in tensors.iter_mut() {
        let original = p.name.clone();
        let mut name = original.clone();
        for (to, modules) in [
            (&a.rename_stem, &a.first_conv),
            (&a.rename_classifier, &a.classifier),
        ] {
            if let (Some(to), [from]) = (to, modules.as_slice()) {
                if let Some(n) = rename::replace_prefix(&name, from, to) {
                    name = n;
                }
            }
        }
        for (rule, hits) in a.rules.iter().zip(rule_hits.iter_mut()) {
            if let Some(n) = rule.apply(&name) {
                *hits += 1;
                name = n;
            }
        }
        if name.is_empty() {
            return Err(Error::Rename(format!(
                "`{original}` was renamed to an empty key"
            )));
        }
        if name != original {
            report.renamed.push(Renamed {
                from: original,
                to: name.clone(),
            });
            p.name = name;
        }
    }
    for (rule, hits) in a.rules.iter().zip(rule_hits) {
        if hits == 0 {
            report.unused_rules.push(rule.spec());
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in tensors.iter() {
        if let Some(first) = seen.insert(&p.name, &p.source.name) {
            return Err(Error::Rename(format!(
                "`{first}` and `{}` both map to `{}`",
                p.source.name, p.name
            )));
        }
    }
    Ok(())
}

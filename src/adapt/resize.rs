//! Resolution adaptation: what `img_size`, `patch_size` and `window_size` do to each tensor of
//! a checkpoint, decided from the architecture's resolution layout in the registry
//! ([`crate::registry::resize`]) the way timm's checkpoint filters resample.

use super::limits::{MAX_IMG_SIZE, MAX_PATCH_SIZE};
use super::resample::{Interp, Resample};
use crate::error::{Error, Result, Setting, TensorProblem};
use crate::registry::resize::{layout, BiasRule, Mode, ResizeLayout};

/// The resolution asked for; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `img_size` (H, W).
    pub img_size: Option<[usize; 2]>,
    /// `patch_size`.
    pub patch_size: Option<[usize; 2]>,
    /// `window_size`.
    pub window_size: Option<[usize; 2]>,
}

impl Knobs {
    /// No knob set.
    pub fn is_empty(&self) -> bool {
        self.img_size.is_none() && self.patch_size.is_none() && self.window_size.is_none()
    }

    /// The knobs set, by timm's argument name.
    pub fn set(&self) -> Vec<(&'static str, [usize; 2])> {
        [
            ("img_size", self.img_size),
            ("patch_size", self.patch_size),
            ("window_size", self.window_size),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// What the knobs do to a checkpoint: the operation of each key it changes.
#[derive(Debug, Clone, Default)]
pub struct ResizePlan {
    /// The knobs, with the architecture's defaults filled in where it has them.
    pub img_size: Option<[usize; 2]>,
    /// Target patch.
    pub patch_size: Option<[usize; 2]>,
    /// Target window.
    pub window_size: Option<[usize; 2]>,
    /// The knobs as asked (the model arguments a hub config records).
    pub asked: Knobs,
    layout: Option<ResizeLayout>,
    source_img: Option<[usize; 2]>,
}

/// `h * w`, `None` on overflow.
fn area(g: [usize; 2]) -> Option<usize> {
    g[0].checked_mul(g[1])
}

fn div(a: [usize; 2], b: [usize; 2]) -> [usize; 2] {
    [a[0] / b[0].max(1), a[1] / b[1].max(1)]
}

impl ResizePlan {
    /// Checks `knobs` against `arch`'s layout. `source_img` is the pretrained cfg's input size
    /// (where the source grid comes from, like timm's `get_pretrained_grid_size`).
    pub fn new(arch: &str, knobs: &Knobs, source_img: Option<[usize; 2]>) -> Result<ResizePlan> {
        let l = layout(arch)?;
        for (knob, v) in knobs.set() {
            if v.contains(&0) {
                return Err(Error::Setting(Setting::NotPositive { setting: knob }));
            }
            let max = if knob == "img_size" {
                MAX_IMG_SIZE
            } else {
                MAX_PATCH_SIZE
            };
            if v.iter().any(|&x| x > max) {
                return Err(Error::Setting(Setting::TooLarge {
                    setting: knob,
                    model: arch.to_owned(),
                    value: v,
                    max,
                }));
            }
            if !l.knobs.iter().any(|k| k == knob) {
                return Err(Setting::KnobNotTaken {
                    setting: knob,
                    model: arch.to_owned(),
                }
                .into());
            }
            if let Some(why) = l.refuse.get(knob) {
                return Err(Setting::KnobRefused {
                    setting: knob,
                    model: arch.to_owned(),
                    why: why.clone(),
                }
                .into());
            }
        }
        if let Some(e) = &l.error {
            return Err(Setting::ResizeUnbuildable {
                model: arch.to_owned(),
                why: e.clone(),
            }
            .into());
        }
        let (img_size, patch_size) = (
            knobs.img_size.or(l.img_size),
            knobs.patch_size.or(l.patch_size),
        );
        if let (Some(img), Some(patch)) = (img_size, patch_size) {
            if img[0] < patch[0] || img[1] < patch[1] {
                return Err(Error::Setting(Setting::ImageSmallerThanPatch {
                    setting: if knobs.img_size.is_some() {
                        "img_size"
                    } else {
                        "patch_size"
                    },
                    model: arch.to_owned(),
                    img_size: img,
                    patch_size: patch,
                }));
            }
        }
        Ok(ResizePlan {
            img_size,
            patch_size,
            window_size: knobs.window_size.or(l.window_size),
            source_img: source_img.or(l.img_size),
            asked: knobs.clone(),
            layout: Some(l),
        })
    }

    /// The family's interpolation (of patch embeddings; position embeddings add
    /// the layout's `align_corners`).
    pub fn interp(&self) -> Interp {
        let l = self.layout.as_ref();
        Interp::new(
            l.map_or(Mode::Bicubic, |l| l.interpolation),
            l.is_some_and(|l| l.antialias),
        )
    }

    /// Whether the architecture has tables whose buffers timm rebuilds.
    pub fn has_rel_tables(&self) -> bool {
        self.layout
            .as_ref()
            .is_some_and(|l| !l.rel_tables.is_empty())
    }

    /// The operation for tensor `key` of `shape`, `None` when the knobs leave it alone.
    /// `patch_kernel` is the checkpoint's `patch_embed.proj.weight` kernel size, if any.
    pub fn op(
        &self,
        key: &str,
        shape: &[usize],
        patch_kernel: Option<[usize; 2]>,
    ) -> Result<Option<Resample>> {
        let Some(l) = &self.layout else {
            return Ok(None);
        };
        let interp = self.interp();
        let has = |f: &str| {
            matches!(
                (l.family.as_str(), f),
                (
                    "vision_transformer" | "deit" | "eva" | "beit",
                    "abs_pos" | "patch"
                ) | ("swin_transformer", "patch")
                    | ("tnt", "abs_pos")
            )
        };
        let fits = |op: Resample| -> Result<Option<Resample>> {
            if op.out_shape(shape).is_none() {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    key,
                    format!("has shape {shape:?}, which does not fit {op:?}"),
                ));
            }
            Ok(Some(op))
        };
        if key == "patch_embed.proj.weight" && has("patch") {
            let (Some(to), &[_, _, h, w]) = (self.patch_size, shape) else {
                return Ok(None);
            };
            if [h, w] == to {
                return Ok(None);
            }
            return fits(Resample::PatchEmbed {
                from_patch: [h, w],
                to_patch: to,
                interp,
            });
        }
        // TNT's outer position embedding is `patch_pos`; its filter resamples it like a ViT's
        let pos_key = if l.family == "tnt" {
            "patch_pos"
        } else {
            "pos_embed"
        };
        if key == pos_key && has("abs_pos") {
            let (Some(img), Some(patch), &[1, n, _]) = (self.img_size, self.patch_size, shape)
            else {
                return Ok(None);
            };
            // hybrid ViTs embed a backbone's feature map: their grid is the image over the patch
            // times the backbone's stride, which the defaults give
            let stride = match (l.img_size, l.grid_size, l.patch_size) {
                (Some(i), Some(g), Some(p)) => {
                    let f = |d: usize| match (g[d].checked_mul(p[d]), i[d]) {
                        (Some(gp), i) if gp > 0 && i % gp == 0 => i / gp,
                        _ => 1,
                    };
                    [f(0), f(1)]
                }
                _ => [1, 1],
            };
            let step = [patch[0] * stride[0], patch[1] * stride[1]];
            let rounded = match l.grid_round.as_deref() {
                _ if stride == [1, 1] || patch != [1, 1] => None,
                Some("ceil") => Some([img[0].div_ceil(stride[0]), img[1].div_ceil(stride[1])]),
                Some("floor") => Some(div(img, stride)),
                _ => None,
            };
            if rounded.is_none()
                && stride != [1, 1]
                && (img[0] % step[0] != 0 || img[1] % step[1] != 0)
            {
                // timm's HybridEmbed asserts feature_size % patch_size == 0
                return Err(Setting::ImgSizeNotMultiple {
                    model: l.name.clone(),
                    stride,
                    patch,
                    step,
                }
                .into());
            }
            let to_grid = rounded.unwrap_or_else(|| div(img, step));
            let prefix = l.prefix_tokens;
            let Some(tokens) = n.checked_sub(prefix) else {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    key,
                    format!("has {n} tokens, fewer than the {prefix} prefix tokens"),
                ));
            };
            // timm's get_pretrained_grid_size: the cfg's input size over the checkpoint's
            // patch kernel when that accounts for every token, else a square grid
            let from_grid = match (self.source_img, patch_kernel) {
                // checked: the cfg's input size may come from a config.json
                (Some(img), Some(k)) if area(div(img, k)) == Some(tokens) => div(img, k),
                _ => {
                    let s = (tokens as f64).sqrt() as usize;
                    [s, s]
                }
            };
            if n == prefix + to_grid[0] * to_grid[1] && from_grid == to_grid {
                return Ok(None);
            }
            if area(from_grid) != Some(tokens) {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    key,
                    format!(
                        "holds {tokens} grid tokens, not a {}x{} grid",
                        from_grid[0], from_grid[1]
                    ),
                ));
            }
            return fits(Resample::AbsPosEmbed {
                prefix_tokens: prefix,
                from_grid,
                to_grid,
                interp: Interp {
                    align_corners: l.align_corners,
                    ..interp
                },
            });
        }
        if let Some(&d) = l.rel_pos_1d.get(key) {
            let (Some(img), &[from_len, _]) = (self.img_size, shape) else {
                return Ok(None);
            };
            if img[0] != img[1] {
                // MViTv2 asserts a square feature map
                return Err(Setting::NonSquareImage {
                    model: l.name.clone(),
                    img_size: img,
                }
                .into());
            }
            let size = img[0] / d.max(1);
            if size == 0 {
                return Err(Setting::EmptyAttention {
                    key: key.to_owned(),
                    img_size: img,
                }
                .into());
            }
            let to_len = 2 * size - 1;
            if to_len == from_len {
                return Ok(None);
            }
            return fits(Resample::RelPosLinear { from_len, to_len });
        }
        if let Some(rule) = l.attn_biases.get(key) {
            let (Some(img), &[_, n]) = (self.img_size, shape) else {
                return Ok(None);
            };
            let to_side = bias_side(rule, img);
            if to_side == 0 {
                return Err(Setting::EmptyAttentionWindow {
                    key: key.to_owned(),
                    img_size: img,
                }
                .into());
            }
            // timm's int(L ** 0.5); the view that follows needs a square
            let from_side = (n as f64).sqrt() as usize;
            if from_side * from_side != n {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    key,
                    format!("has {n} offsets per head, not a square table"),
                ));
            }
            if from_side == to_side {
                return Ok(None);
            }
            return fits(Resample::AttentionBiases {
                from_side,
                to_side,
                interp: Interp::new(Mode::Bicubic, true),
            });
        }
        let Some(rule) = l.rel_tables.get(key) else {
            return Ok(None);
        };
        let window = self
            .asked
            .window_size
            .or(rule.window)
            .or(self.window_size)
            .unwrap_or([usize::MAX; 2]);
        let Some(img) = self.img_size else {
            return Ok(None);
        };
        let patch = self.patch_size.unwrap_or([1, 1]);
        // the stages halve rounding up (Swin's PatchMerging pads an odd side)
        let grid = div(img, patch);
        let feat = [
            grid[0].div_ceil(rule.stride[0].max(1)),
            grid[1].div_ceil(rule.stride[1].max(1)),
        ];
        let win = if rule.clamp {
            [window[0].min(feat[0]), window[1].min(feat[1])]
        } else {
            feat
        };
        if win.contains(&0) {
            return Err(Setting::EmptyWindow {
                key: key.to_owned(),
                window: win,
            }
            .into());
        }
        let to_table = [2 * win[0] - 1, 2 * win[1] - 1];
        let flat = shape.len() == 2;
        let from_table = match *shape {
            [_, h, w] => [h, w],
            [n, _] => {
                // timm assumes a square source unless the size rules it out
                let m = n.checked_sub(rule.extra).ok_or_else(|| {
                    Error::tensor(
                        TensorProblem::Shape,
                        key,
                        format!("has {n} rows, fewer than {} extra tokens", rule.extra),
                    )
                })?;
                let s = (m as f64).sqrt() as usize;
                if s * s == m {
                    [s, s]
                } else if m == to_table[0] * to_table[1] {
                    to_table
                } else {
                    return Err(Error::tensor(
                        TensorProblem::Shape,
                        key,
                        format!("cannot infer the non-square source window of a table of {n} rows"),
                    ));
                }
            }
            _ => {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    key,
                    format!("has shape {shape:?}, not a relative-position table"),
                ))
            }
        };
        if from_table == to_table {
            return Ok(None);
        }
        fits(Resample::RelPosBiasTable {
            from_table,
            to_table,
            extra_tokens: if flat { rule.extra } else { 0 },
            flat,
        })
    }
}

/// The side of a LeViT-style attention-bias table at input size `img`, as the model computes
/// it; 0 where the stage vanishes.
fn bias_side(rule: &BiasRule, img: [usize; 2]) -> usize {
    let mut r = img[0].min(img[1]) / rule.patch.max(1);
    for _ in 0..rule.halvings {
        // Python's (r - 1) // 2 + 1, which keeps 0 at 0
        r = if r == 0 { 0 } else { (r - 1) / 2 + 1 };
    }
    rule.window.min(r)
}

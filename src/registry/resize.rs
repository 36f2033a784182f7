//! Resolution knobs: which of `img_size`, `patch_size` and `window_size` each architecture's
//! constructor takes, its defaults, and how its checkpoint filter adapts the weights (from
//! `tools/gen_resize.py`, which builds every architecture on the meta device at the default and
//! at changed sizes and checks the rules here against the shapes it gets).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::Lines;
use crate::adapt::resample::{Interp, Mode, Resample};
use crate::error::{Error, Result, Setting};

static DATA: &str = include_str!("resize.jsonl");

/// How a relative-position table's window follows the knobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TableRule {
    /// Swin-style: the window knob, clamped to the stage resolution.
    pub clamp: bool,
    /// The stage's feature stride over the patch size (stage resolution = img / (patch·stride)).
    pub stride: [usize; 2],
    /// Entries after the (2w-1)² offsets (BEiT's 3).
    pub extra: usize,
    /// Swin-style: this table's own window where no stage clamps it (Swin-S3 has one per
    /// stage); `--window-size` replaces it.
    #[serde(default)]
    pub window: Option<[usize; 2]>,
}

/// How a LeViT-style `attention_biases` table (heads, side²) follows `img_size`
/// (EfficientViT-MSRA): side = min(window, stage resolution), the stage resolution being
/// min(H, W) / patch, halved rounding up once per subsampling before the stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BiasRule {
    /// The attention's window resolution.
    pub window: usize,
    /// The stem's total stride.
    pub patch: usize,
    /// Stride-2 subsamplings before the stage.
    pub halvings: usize,
}

impl BiasRule {
    /// The table side at input size `img`, as the model computes it; 0 where the stage vanishes.
    pub fn side(&self, img: [usize; 2]) -> usize {
        let mut r = img[0].min(img[1]) / self.patch.max(1);
        for _ in 0..self.halvings {
            // Python's (r - 1) // 2 + 1, which keeps 0 at 0
            r = if r == 0 { 0 } else { (r - 1) / 2 + 1 };
        }
        self.window.min(r)
    }
}

/// One architecture's resolution facts.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResizeLayout {
    /// Architecture.
    pub name: String,
    /// The knobs its constructor takes.
    #[serde(default)]
    pub knobs: Vec<String>,
    /// Default input size (H, W).
    #[serde(default)]
    pub img_size: Option<[usize; 2]>,
    /// Default patch size.
    #[serde(default)]
    pub patch_size: Option<[usize; 2]>,
    /// Default patch grid.
    #[serde(default)]
    pub grid_size: Option<[usize; 2]>,
    /// Hybrid ViTs: how the backbone's feature map rounds at a size that is not a multiple of
    /// its stride (`ceil` or `floor`, from builds at such sizes); absent: such sizes are refused.
    #[serde(default)]
    pub grid_round: Option<String>,
    /// Default attention window.
    #[serde(default)]
    pub window_size: Option<[usize; 2]>,
    /// Tokens before the grid in `pos_embed` that are kept apart (0 for `no_embed_class`).
    #[serde(default)]
    pub prefix_tokens: usize,
    /// The model adds no position embedding to its prefix tokens.
    #[serde(default)]
    pub no_embed_class: bool,
    /// The checkpoint filter's interpolation.
    #[serde(default = "bicubic")]
    pub interpolation: Mode,
    /// The checkpoint filter's antialias flag.
    #[serde(default)]
    pub antialias: bool,
    /// The `align_corners` the filter passes when it resamples the position embedding (RADIO's
    /// C-RADIOv3-B/H checkpoints align corners; timm resamples patch embeddings without).
    #[serde(default)]
    pub align_corners: bool,
    /// timm module of the family.
    #[serde(default)]
    pub family: String,
    /// Knobs timmconv refuses, and why.
    #[serde(default)]
    pub refuse: BTreeMap<String, String>,
    /// Relative-position tables and their window rules.
    #[serde(default)]
    pub rel_tables: BTreeMap<String, TableRule>,
    /// LeViT-style attention biases and their window rules.
    #[serde(default)]
    pub attn_biases: BTreeMap<String, BiasRule>,
    /// MViTv2's decomposed `rel_pos_h`/`rel_pos_w`: the divisor D of each (length 2·(H / D) - 1).
    #[serde(default)]
    pub rel_pos_1d: BTreeMap<String, usize>,
    /// Why the generator could not build the architecture.
    #[serde(default)]
    pub error: Option<String>,
    /// What each `global_pool` type does to the state dict.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolRule>,
}

/// One `global_pool` type of an architecture, against its default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PoolRule {
    /// timm's error when the constructor refuses the type.
    #[serde(default)]
    pub error: Option<String>,
    /// Keys whose shape changes.
    #[serde(default)]
    pub changed: Vec<String>,
    /// Keys the model gains.
    #[serde(default)]
    pub added: Vec<String>,
    /// Keys the model loses.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// The pool types `--global-pool` takes (timm's `SelectAdaptivePool2d`).
pub const POOL_TYPES: [&str; 5] = ["avg", "max", "avgmax", "catavgmax", ""];

impl ResizeLayout {
    /// The keys `global_pool = pool` reshapes (the classifier timm would re-initialise), or why
    /// the checkpoint cannot be loaded into that model. `classifier` holds the cfg's classifier
    /// modules: a reshaped key elsewhere is refused.
    pub fn pool_changes(&self, pool: &str, classifier: &[String]) -> Result<Vec<String>> {
        let arch = &self.name;
        if !POOL_TYPES.contains(&pool) {
            return Err(Error::Options(format!(
                "--global-pool `{pool}` is not one of avg, max, avgmax, catavgmax or ''"
            )));
        }
        let Some(rule) = self.pools.get(pool) else {
            return Err(Error::Options(format!(
                "`{arch}`: timmconv has no data on global_pool `{pool}` for it"
            )));
        };
        if let Some(e) = &rule.error {
            return Err(Error::Options(format!(
                "`{arch}` cannot be built with global_pool `{pool}` in timm 1.0.31: {e}"
            )));
        }
        if let Some(k) = rule.added.first().or(rule.removed.first()) {
            let what = if rule.added.contains(k) {
                "holds"
            } else {
                "lacks"
            };
            return Err(Error::Options(format!(
                "`{arch}` with global_pool `{pool}` {what} `{k}` unlike the checkpoint's model; timm cannot load the weights into it"
            )));
        }
        let in_head = |k: &str| {
            classifier
                .iter()
                .any(|c| k == format!("{c}.weight") || k == format!("{c}.bias"))
        };
        if let Some(k) = rule.changed.iter().find(|k| !in_head(k)) {
            return Err(Error::Options(format!(
                "`{arch}` with global_pool `{pool}` reshapes `{k}`, which is not the classifier; timm cannot load the weights"
            )));
        }
        if rule.changed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(classifier
            .iter()
            .flat_map(|c| [format!("{c}.weight"), format!("{c}.bias")])
            .collect())
    }
}

/// One knob an architecture takes, for `info`.
#[derive(Debug, Clone, Serialize)]
pub struct KnobInfo {
    /// timm's argument name.
    pub knob: String,
    /// The default (H, W), where the model has one.
    pub default: Option<[usize; 2]>,
    /// Why timmconv refuses to change it, if it does.
    pub refused: Option<String>,
}

impl ResizeLayout {
    /// The knobs the constructor takes, their defaults and refusals.
    pub fn knob_info(&self) -> Vec<KnobInfo> {
        self.knobs
            .iter()
            .map(|k| KnobInfo {
                knob: k.clone(),
                default: match k.as_str() {
                    "img_size" => self.img_size,
                    "patch_size" => self.patch_size,
                    "window_size" => self.window_size,
                    _ => None,
                },
                refused: self.refuse.get(k).cloned(),
            })
            .collect()
    }
}

fn bicubic() -> Mode {
    Mode::Bicubic
}

/// Largest `--img-size` side accepted (timm's models top out far below).
pub const MAX_IMG_SIZE: usize = 8192;
/// Largest `--patch-size` / `--window-size` side accepted: the pseudo-inverse works on
/// (patch²)² matrices.
pub const MAX_PATCH_SIZE: usize = 64;

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
                return Err(Error::Options(format!(
                    "timm 1.0.31 does not build `{arch}` with {knob}: create_model refuses the keyword"
                )));
            }
            if let Some(why) = l.refuse.get(knob) {
                return Err(Error::Options(format!(
                    "`{arch}` cannot be adapted to another {knob}: {why}"
                )));
            }
        }
        if let Some(e) = &l.error {
            return Err(Error::Options(format!(
                "`{arch}` could not be built by timm: {e}"
            )));
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
                return Err(Error::Options(format!(
                    "`{}` embeds a backbone's feature map (stride {stride:?}) in patches of {patch:?}: timm 1.0.31 builds it only for image sizes that are multiples of {step:?}",
                    l.name
                )));
            }
            let to_grid = rounded.unwrap_or_else(|| div(img, step));
            let prefix = l.prefix_tokens;
            let Some(tokens) = n.checked_sub(prefix) else {
                return Err(Error::tensor(
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
                return Err(Error::Options(format!(
                    "`{}` is built only for square images in timm 1.0.31 (got {img:?})",
                    l.name
                )));
            }
            let size = img[0] / d.max(1);
            if size == 0 {
                return Err(Error::Options(format!(
                    "`{key}`: the attention at image size {img:?} would be empty"
                )));
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
            let to_side = rule.side(img);
            if to_side == 0 {
                return Err(Error::Options(format!(
                    "`{key}`: the attention window at image size {img:?} would be empty"
                )));
            }
            // timm's int(L ** 0.5); the view that follows needs a square
            let from_side = (n as f64).sqrt() as usize;
            if from_side * from_side != n {
                return Err(Error::tensor(
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
            return Err(Error::Options(format!(
                "`{key}`: the window at this size would be empty ({win:?})"
            )));
        }
        let to_table = [2 * win[0] - 1, 2 * win[1] - 1];
        let flat = shape.len() == 2;
        let from_table = match *shape {
            [_, h, w] => [h, w],
            [n, _] => {
                // timm assumes a square source unless the size rules it out
                let m = n.checked_sub(rule.extra).ok_or_else(|| {
                    Error::tensor(
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
                        key,
                        format!("cannot infer the non-square source window of a table of {n} rows"),
                    ));
                }
            }
            _ => {
                return Err(Error::tensor(
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

fn index() -> &'static Lines {
    static INDEX: OnceLock<Lines> = OnceLock::new();
    INDEX.get_or_init(|| Lines::new(DATA.lines().skip(1)))
}

/// The resolution layout of an architecture.
pub fn layout(arch: &str) -> Result<ResizeLayout> {
    let Some(line) = index().find(arch) else {
        return Err(Error::UnknownModel {
            name: arch.to_owned(),
            suggestions: Vec::new(),
        });
    };
    serde_json::from_str(line)
        .map_err(|e| Error::Structure(format!("embedded resize data is corrupt at `{arch}`: {e}")))
}

/// Parses every line; (architectures, architectures taking at least one knob).
pub fn validate() -> Result<(usize, usize)> {
    let mut with = 0;
    for (name, line) in index().iter() {
        let l: ResizeLayout = serde_json::from_str(line)
            .map_err(|e| Error::Structure(format!("resize line `{name}`: {e}")))?;
        with += usize::from(!l.knobs.is_empty());
    }
    Ok((index().len(), with))
}

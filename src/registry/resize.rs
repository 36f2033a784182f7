//! Resolution knobs: which of `img_size`, `patch_size` and `window_size` each architecture's
//! constructor takes, its defaults, and how its checkpoint filter adapts the weights (from
//! `tools/gen_resize.py`, which builds every architecture on the meta device at the default and
//! at changed sizes and checks the rules here against the shapes it gets).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::Lines;
use crate::error::{Error, Result};

static DATA: &str = include_str!("resize.jsonl");

/// An interpolation mode, as timm's checkpoint filters name it (`F.interpolate(mode=…)`); the
/// resampling kernels in [`crate::adapt::resample`] take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cubic convolution.
    Bicubic,
    /// Linear.
    Bilinear,
}

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
    /// stage); `window_size` replaces it.
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

/// The pool types `global_pool` takes (timm's `SelectAdaptivePool2d`).
pub const POOL_TYPES: [&str; 5] = ["avg", "max", "avgmax", "catavgmax", ""];

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
        .map_err(|e| Error::Internal(format!("embedded resize data is corrupt at `{arch}`: {e}")))
}

/// Parses every line; (architectures, architectures taking at least one knob).
pub fn validate() -> Result<(usize, usize)> {
    let mut with = 0;
    for (name, line) in index().iter() {
        let l: ResizeLayout = serde_json::from_str(line)
            .map_err(|e| Error::Internal(format!("resize line `{name}`: {e}")))?;
        with += usize::from(!l.knobs.is_empty());
    }
    Ok((index().len(), with))
}

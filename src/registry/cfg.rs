//! The records of the embedded registry: architectures, pretrained tags, cfgs, results.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One feature stage, as timm's `feature_info` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureInfo {
    /// Channels.
    pub num_chs: Option<u64>,
    /// Stride relative to the input.
    pub reduction: Option<u64>,
    /// Module that produces it.
    pub module: Option<String>,
}

/// Figures from timm's results tables (missing where the tables have none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// ImageNet-1k top-1 accuracy (%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
    /// ImageNet-1k top-5 accuracy (%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    /// Evaluation image size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub img_size: Option<f64>,
    /// Parameters in millions, as the tables give them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_count_m: Option<f64>,
    /// Evaluation crop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_pct: Option<f64>,
    /// Inference throughput (RTX 5090, AMP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_sec: Option<f64>,
    /// Image size of the inference benchmark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer_img_size: Option<f64>,
    /// Giga multiply-accumulates per image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gmacs: Option<f64>,
    /// Activations (millions): predicts GPU memory better than parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macts: Option<f64>,
    /// Training throughput (RTX 3090, AMP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_samples_per_sec: Option<f64>,
    /// Image size of the training benchmark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_img_size: Option<f64>,
}

impl Results {
    /// The image size these figures are from (every figure in one object is of one size).
    pub fn size(&self) -> Option<f64> {
        self.img_size
            .or(self.infer_img_size)
            .or(self.train_img_size)
    }

    /// Whether no figure is known.
    pub fn is_empty(&self) -> bool {
        *self == Results::default()
    }
}

/// A pretrained tag of an architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tag {
    /// The tag (`r160_in1k`); may be empty for untagged cfgs.
    pub tag: String,
    /// Whether timm lists it as pretrained (`list_pretrained`).
    pub has_weights: bool,
    /// The pretrained cfg, under timm's own field names and in its order.
    pub cfg: Map<String, Value>,
    /// Results-table figures at the tag's input size (`input_size[-1]`), or at the nearest size
    /// the tables have when none is at it; `img_size`/`infer_img_size` say which.
    #[serde(default)]
    pub results: Option<Results>,
    /// Every size the tables have for this tag (accuracy) and its architecture (benchmarks),
    /// ascending, one object per size.
    #[serde(default)]
    pub results_by_size: Vec<Results>,
}

fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl Tag {
    /// `first_conv`, as a list (timm allows a string or a tuple).
    pub fn first_conv(&self) -> Vec<String> {
        names(self.cfg.get("first_conv"))
    }

    /// `classifier`, as a list.
    pub fn classifier(&self) -> Vec<String> {
        names(self.cfg.get("classifier"))
    }

    /// `input_size[0]`: the channels the weights were trained with.
    pub fn in_chans(&self) -> Option<usize> {
        let v = self.cfg.get("input_size")?.as_array()?.first()?.as_u64()?;
        usize::try_from(v).ok()
    }

    /// `input_size[-1]`: the image size the weights were made for, and the size timm's results
    /// tables record (`img_size`).
    pub fn input_size(&self) -> Option<u64> {
        self.cfg.get("input_size")?.as_array()?.last()?.as_u64()
    }

    /// `num_classes`.
    pub fn num_classes(&self) -> Option<usize> {
        usize::try_from(self.cfg.get("num_classes")?.as_u64()?).ok()
    }

    /// `label_offset` (0 when absent).
    pub fn label_offset(&self) -> usize {
        self.cfg
            .get("label_offset")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0)
    }
}

/// An architecture (`timm.list_models()` entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Arch {
    /// Name.
    pub name: String,
    /// The timm module that defines it (`convnext`, `vision_transformer`): its family.
    #[serde(default)]
    pub module: Option<String>,
    /// `model.num_features`.
    #[serde(default)]
    pub num_features: Option<u64>,
    /// Parameters of the default model.
    #[serde(default)]
    pub param_count: Option<u64>,
    /// The pooling type, when timm records it as a string.
    #[serde(default)]
    pub global_pool: Option<String>,
    /// The factory's reconstruction arguments (timm's `get_model_args`).
    #[serde(default)]
    pub model_args: Map<String, Value>,
    /// Whether the model needs its pretrained input size.
    #[serde(default)]
    pub fixed_input_size: bool,
    /// `model.feature_info`.
    #[serde(default)]
    pub feature_info: Option<Vec<FeatureInfo>>,
    /// The default tag.
    #[serde(default)]
    pub default_tag: Option<String>,
    /// Every tag, default first.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Benchmark figures of the architecture (no accuracy: that belongs to a tag), at the
    /// default tag's input size or the nearest benchmarked one.
    #[serde(default)]
    pub results: Option<Results>,
    /// Benchmark figures at every size, ascending.
    #[serde(default)]
    pub results_by_size: Vec<Results>,
    /// Why the generator could not build it on the meta device, if it could not.
    #[serde(default)]
    pub build_error: Option<String>,
}

impl Arch {
    /// The tag by name, or the default tag.
    pub fn tag(&self, tag: Option<&str>) -> Option<&Tag> {
        let want = tag.or(self.default_tag.as_deref())?;
        self.tags.iter().find(|t| t.tag == want)
    }

    /// Results for a tag, else the architecture's; never a mix of the two, which may be of
    /// different sizes.
    pub fn results_for(&self, tag: Option<&Tag>) -> Results {
        tag.and_then(|t| t.results.clone())
            .or_else(|| self.results.clone())
            .unwrap_or_default()
    }

    /// Every size's figures for a tag, else the architecture's.
    pub fn results_by_size_for<'a>(&'a self, tag: Option<&'a Tag>) -> &'a [Results] {
        match tag {
            Some(t) if !t.results_by_size.is_empty() => &t.results_by_size,
            _ => &self.results_by_size,
        }
    }
}

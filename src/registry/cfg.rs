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
    /// Fills the fields this lacks from `other` (tag figures first, then the architecture's).
    pub fn or(&self, other: Option<&Results>) -> Results {
        let Some(o) = other else { return self.clone() };
        Results {
            top1: self.top1.or(o.top1),
            top5: self.top5.or(o.top5),
            img_size: self.img_size.or(o.img_size),
            param_count_m: self.param_count_m.or(o.param_count_m),
            crop_pct: self.crop_pct.or(o.crop_pct),
            samples_per_sec: self.samples_per_sec.or(o.samples_per_sec),
            infer_img_size: self.infer_img_size.or(o.infer_img_size),
            gmacs: self.gmacs.or(o.gmacs),
            macts: self.macts.or(o.macts),
            train_samples_per_sec: self.train_samples_per_sec.or(o.train_samples_per_sec),
            train_img_size: self.train_img_size.or(o.train_img_size),
        }
    }

    /// Whether no figure is known.
    pub fn is_empty(&self) -> bool {
        *self == Results::default()
    }
}

/// A pretrained tag of an architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    /// The tag (`r160_in1k`); may be empty for untagged cfgs.
    pub tag: String,
    /// Whether timm lists it as pretrained (`list_pretrained`).
    pub has_weights: bool,
    /// The pretrained cfg, under timm's own field names and in its order.
    pub cfg: Map<String, Value>,
    /// Results-table figures for `arch.tag`.
    #[serde(default)]
    pub results: Option<Results>,
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
pub struct Arch {
    /// Name.
    pub name: String,
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
    /// Results-table figures keyed by the bare architecture name.
    #[serde(default)]
    pub results: Option<Results>,
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

    /// Results for a tag, falling back to the architecture's.
    pub fn results_for(&self, tag: Option<&Tag>) -> Results {
        tag.and_then(|t| t.results.clone())
            .unwrap_or_default()
            .or(self.results.as_ref())
    }
}

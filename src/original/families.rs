//! The layouts timmconv converts, each a port of one branch of a timm 1.0.31
//! `checkpoint_filter_fn`: how it is detected (the keys timm tests for) and how its keys and
//! tensors become timm's.

use std::collections::HashMap;

use super::{replace_all, zeros, Applied, Converted, Derived, View};
use crate::checkpoint::TensorInfo;
use crate::error::{Error, Result};

/// What a conversion may ask of the target model, as timm's filters ask `model`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The target model's state-dict keys and shapes, when known (the registry's record).
    pub keys: Option<HashMap<String, Vec<usize>>>,
    /// Whether the target has a linear classifier (`num_classes` > 0).
    pub head_linear: bool,
}

impl Target {
    fn has(&self, key: &str) -> Option<bool> {
        self.keys.as_ref().map(|k| k.contains_key(key))
    }

    fn shape(&self, key: &str) -> Option<&[usize]> {
        self.keys
            .as_ref()
            .and_then(|k| k.get(key))
            .map(Vec::as_slice)
    }
}

type Convert = fn(&Input<'_>, &Target) -> Result<Converted>;

/// One original layout: where timm converts it, how it is recognised, how it is converted.
#[derive(Debug, Clone, Copy)]
pub struct OriginalLayout {
    /// Short name (`dinov2`), as the report and the metadata say it.
    pub name: &'static str,
    /// The timm module whose `checkpoint_filter_fn` converts it (`vision_transformer`).
    pub family: &'static str,
    /// The timm function reproduced.
    pub filter: &'static str,
    /// The keys timm tests for, in words.
    pub detected_by: &'static str,
    detect: fn(&Input<'_>) -> bool,
    convert: Convert,
}

/// A layout recognised in a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Detected(pub &'static OriginalLayout);

/// The checkpoint's tensors by key.
pub(crate) struct Input<'a> {
    tensors: &'a [TensorInfo],
    by_name: HashMap<&'a str, &'a TensorInfo>,
}

impl<'a> Input<'a> {
    fn new(tensors: &'a [TensorInfo]) -> Input<'a> {
        Input {
            tensors,
            by_name: tensors.iter().map(|t| (t.name.as_str(), t)).collect(),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.by_name.contains_key(key)
    }

    fn get(&self, key: &str, layout: &str) -> Result<&'a TensorInfo> {
        self.by_name
            .get(key)
            .copied()
            .ok_or_else(|| Error::OriginalLayout {
                layout: layout.to_owned(),
                what: format!("the checkpoint has no `{key}`"),
            })
    }
}

/// Every layout timmconv converts, in the order each family's filter tests for them.
pub fn layouts() -> &'static [OriginalLayout] {
    &LAYOUTS
}

/// The top-level key a family's filter takes the state dict from when the checkpoint has it
/// (`state_dict.get('model_state', state_dict)`), beyond the ones timm's loader picks.
pub fn wrapper_key(family: &str) -> Option<&'static str> {
    match family {
        "hiera" => Some("model_state"),
        "beit" => Some("module"),
        _ => None,
    }
}

/// The layout called `name`.
pub fn find(name: &str) -> Option<&'static OriginalLayout> {
    LAYOUTS.iter().find(|l| l.name == name)
}

/// The layout `tensors` are in, as the filter of `family` (a timm module) tests for it;
/// without a family, the first layout of any family that fits.
pub fn detect(tensors: &[TensorInfo], family: Option<&str>) -> Option<Detected> {
    let input = Input::new(tensors);
    LAYOUTS
        .iter()
        .filter(|l| family.is_none_or(|f| f == l.family))
        .find(|l| (l.detect)(&input))
        .map(Detected)
}

impl OriginalLayout {
    /// Converts `tensors` for a model described by `target`.
    ///
    /// # Errors
    ///
    /// [`Error::OriginalLayout`] naming a tensor the layout needs that is missing or of
    /// another shape.
    pub fn convert(&self, tensors: &[TensorInfo], target: &Target) -> Result<Converted> {
        let mut c = (self.convert)(&Input::new(tensors), target)?;
        c.applied.layout = self.name.to_owned();
        c.applied.filter = self.filter.to_owned();
        let mut seen = std::collections::HashSet::new();
        for d in &c.tensors {
            if !seen.insert(d.info.name.as_str()) {
                return Err(Error::OriginalLayout {
                    layout: self.name.to_owned(),
                    what: format!("two tensors become `{}`", d.info.name),
                });
            }
        }
        Ok(c)
    }
}

static LAYOUTS: [OriginalLayout; 17] = [
    OriginalLayout {
        name: "openai_clip",
        family: "vision_transformer",
        filter: "vision_transformer._convert_openai_clip",
        detected_by: "`visual.class_embedding`",
        detect: |i| i.has("visual.class_embedding"),
        convert: openai_clip,
    },
    OriginalLayout {
        name: "dinov2",
        family: "vision_transformer",
        filter: "vision_transformer._convert_dinov2",
        detected_by: "`mask_token`",
        detect: |i| i.has("mask_token"),
        convert: dinov2,
    },
    OriginalLayout {
        name: "openclip_trunk",
        family: "vision_transformer",
        filter: "vision_transformer.checkpoint_filter_fn (OpenCLIP timm trunk)",
        detected_by: "`visual.trunk.pos_embed` or `visual.trunk.blocks.0.norm1.weight`",
        detect: |i| i.has("visual.trunk.pos_embed") || i.has("visual.trunk.blocks.0.norm1.weight"),
        convert: openclip_vit_trunk,
    },
    OriginalLayout {
        name: "pe",
        family: "eva",
        filter: "eva._convert_pe (Perception Encoder)",
        detected_by: "`visual.conv1.weight` or `conv1.weight`",
        detect: |i| i.has("visual.conv1.weight") || i.has("conv1.weight"),
        convert: perception_encoder,
    },
    OriginalLayout {
        name: "dinov3",
        family: "eva",
        filter: "eva.checkpoint_filter_fn (DINOv3)",
        detected_by: "`storage_tokens` (and not Sapiens2's `blocks.0.attn.wq.weight`)",
        detect: |i| {
            i.has("storage_tokens")
                && !(i.has("blocks.0.attn.wq.weight") && i.has("blocks.0.ffn.w12.weight"))
        },
        convert: dinov3_vit,
    },
    OriginalLayout {
        name: "eva",
        family: "eva",
        filter: "eva.checkpoint_filter_fn (EVA / EVA-02 originals)",
        detected_by: "a key the filter changes: `mask_token` (MIM pretrain), the `visual.` or \
                      `visual.trunk.` prefix (OpenCLIP), `q_bias`/`v_bias` beside `q_proj`, \
                      `mlp.w1`-`w3`/`w12`, `ffn_ln`, `inner_attn_ln`, RoPE buffers (not DINOv3, \
                      Sapiens2 or PE)",
        detect: |i| EvaOriginal::of(i).is_some_and(|e| e.changes(i)),
        convert: eva_original,
    },
    OriginalLayout {
        name: "openclip_convnext",
        family: "convnext",
        filter: "convnext.checkpoint_filter_fn (OpenCLIP timm trunk)",
        detected_by: "`visual.trunk.stem.0.weight`",
        detect: |i| !fb_convnext_is_timm(i) && i.has("visual.trunk.stem.0.weight"),
        convert: openclip_convnext,
    },
    OriginalLayout {
        name: "fb_convnext",
        family: "convnext",
        filter: "convnext.checkpoint_filter_fn (facebookresearch ConvNeXt / ConvNeXt-V2 / DINOv3)",
        detected_by: "`downsample_layers.0.0.weight`",
        detect: |i| !fb_convnext_is_timm(i) && i.has("downsample_layers.0.0.weight"),
        convert: fb_convnext,
    },
    OriginalLayout {
        name: "ms_swin",
        family: "swin_transformer",
        filter: "swin_transformer.checkpoint_filter_fn (microsoft Swin)",
        detected_by: "`layers.0.downsample.reduction.weight`",
        detect: |i| i.has("layers.0.downsample.reduction.weight"),
        convert: |i, _| ms_swin(i, "ms_swin", &["relative_position_index", "attn_mask"]),
    },
    OriginalLayout {
        name: "ms_swin_v2",
        family: "swin_transformer_v2",
        filter: "swin_transformer_v2.checkpoint_filter_fn (microsoft Swin V2)",
        detected_by: "`layers.0.downsample.reduction.weight`",
        detect: |i| i.has("layers.0.downsample.reduction.weight"),
        convert: |i, _| {
            ms_swin(
                i,
                "ms_swin_v2",
                &[
                    "relative_position_index",
                    "relative_coords_table",
                    "attn_mask",
                ],
            )
        },
    },
    OriginalLayout {
        name: "sam",
        family: "vision_transformer_sam",
        filter: "vision_transformer_sam.checkpoint_filter_fn (Segment Anything)",
        detected_by: "`image_encoder.patch_embed.proj.weight`",
        detect: |i| i.has("image_encoder.patch_embed.proj.weight"),
        convert: sam,
    },
    OriginalLayout {
        name: "hiera",
        family: "hiera",
        filter: "hiera.checkpoint_filter_fn (facebookresearch Hiera)",
        detected_by:
            "`head.projection.weight`, `encoder_norm.weight`, `norm.weight` or `pos_embed_abs`",
        detect: |i| {
            [
                "head.projection.weight",
                "encoder_norm.weight",
                "norm.weight",
                "pos_embed_abs",
            ]
            .iter()
            .any(|k| i.has(k))
        },
        convert: hiera,
    },
    OriginalLayout {
        name: "deit3",
        family: "deit",
        filter: "vision_transformer.checkpoint_filter_fn (adapt_layer_scale=True, DeiT-III)",
        detected_by: "`blocks.0.gamma_1`",
        detect: |i| i.has("blocks.0.gamma_1"),
        convert: deit3,
    },
    OriginalLayout {
        name: "ms_beit",
        family: "beit",
        filter: "beit.checkpoint_filter_fn (microsoft BEiT)",
        detected_by: "a `relative_position_index` buffer",
        detect: |i| {
            i.tensors
                .iter()
                .any(|t| t.name.contains("relative_position_index"))
        },
        convert: ms_beit,
    },
    OriginalLayout {
        name: "fb_xcit",
        family: "xcit",
        filter: "xcit.checkpoint_filter_fn (facebookresearch XCiT)",
        detected_by: "`pos_embeder.*` or `cls_attn_blocks.0.attn.qkv.weight`",
        detect: |i| {
            i.has("cls_attn_blocks.0.attn.qkv.weight")
                || i.tensors.iter().any(|t| t.name.starts_with("pos_embeder."))
        },
        convert: fb_xcit,
    },
    OriginalLayout {
        name: "pvt_v2",
        family: "pvt_v2",
        filter: "pvt_v2.checkpoint_filter_fn (whai362 PVT v2)",
        detected_by: "`patch_embed1.proj.weight` (and not timm's `patch_embed.proj.weight`)",
        detect: |i| !i.has("patch_embed.proj.weight") && i.has("patch_embed1.proj.weight"),
        convert: pvt_v2,
    },
    OriginalLayout {
        name: "poolformer_v1",
        family: "metaformer",
        filter: "metaformer.checkpoint_filter_fn (sail-sg PoolFormer v1)",
        detected_by: "`network.0.0.mlp.fc1.weight` (and not timm's `stem.conv.weight`)",
        detect: |i| !i.has("stem.conv.weight") && i.has("network.0.0.mlp.fc1.weight"),
        convert: poolformer_v1,
    },
];

/// timm's test for a checkpoint already in its own ConvNeXt layout.
fn fb_convnext_is_timm(i: &Input<'_>) -> bool {
    i.has("head.norm.weight") || i.has("norm_pre.weight")
}

/// One tensor of a CLIP-style vision tower, its key already renamed (`_convert_openai_clip` and
/// `_convert_pe` alike): `proj` transposed into the head with a zero bias, `class_embedding` and
/// `positional_embedding` given timm's leading dimensions, the rest as it is.
fn clip_tensor(
    v: View,
    k: String,
    layout: &str,
    out: &mut Vec<Derived>,
    applied: &mut Applied,
) -> Result<()> {
    match k.as_str() {
        "proj" => {
            let w = v.named("head.weight").transpose01(layout)?;
            let rows = w.shape().first().copied().unwrap_or(0);
            let dtype = w.dtype();
            out.push(w.derived());
            out.push(zeros("head.bias", dtype, vec![rows]));
            applied.computed.push("head.weight = proj.T".into());
            applied.computed.push("head.bias = zeros".into());
        }
        "class_embedding" => {
            let v = v
                .named("cls_token")
                .unsqueeze(0, layout)?
                .unsqueeze(1, layout)?;
            out.push(v.derived());
            applied.renamed += 1;
        }
        "pos_embed" => {
            out.push(v.named(k).unsqueeze(0, layout)?.derived());
            applied.renamed += 1;
        }
        _ => {
            out.push(v.named(k).derived());
            applied.renamed += 1;
        }
    }
    Ok(())
}

/// `_convert_openai_clip(state_dict, model, prefix='visual.')`.
fn openai_clip(i: &Input<'_>, _: &Target) -> Result<Converted> {
    const L: &str = "openai_clip";
    const PREFIX: &str = "visual.";
    const SWAPS: [(&str, &str); 10] = [
        ("conv1", "patch_embed.proj"),
        ("positional_embedding", "pos_embed"),
        ("transformer.resblocks.", "blocks."),
        ("ln_pre", "norm_pre"),
        ("ln_post", "norm"),
        ("ln_", "norm"),
        ("in_proj_", "qkv."),
        ("out_proj", "proj"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
    ];
    let mut out = Vec::new();
    let mut applied = Applied::default();
    for t in i.tensors {
        if !t.name.starts_with(PREFIX) {
            applied.dropped.push(t.name.clone());
            continue;
        }
        let k = replace_all(&t.name.replace(PREFIX, ""), &SWAPS);
        let v = View::of(t);
        clip_tensor(v, k, L, &mut out, &mut applied)?;
    }
    i.get("visual.conv1.weight", L)?;
    applied.count_dropped("text-tower keys");
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `eva._convert_pe`: Meta's Perception Encoder, the CLIP file (`visual.`, the text tower left
/// out) or the vision tower alone. OpenAI-CLIP-like renames with layer scales; the attention
/// pooler's `in_proj` split into `q` (its first third) and `kv`; `proj` transposed into
/// `head.weight` with a zero `head.bias`.
fn perception_encoder(i: &Input<'_>, _: &Target) -> Result<Converted> {
    const L: &str = "pe";
    const SWAPS: [(&str, &str); 12] = [
        ("conv1", "patch_embed.proj"),
        ("positional_embedding", "pos_embed"),
        ("transformer.resblocks.", "blocks."),
        ("ln_pre", "norm_pre"),
        ("ln_post", "norm"),
        ("ln_", "norm"),
        ("ls_1.gamma", "gamma_1"),
        ("ls_2.gamma", "gamma_2"),
        ("in_proj_", "qkv."),
        ("out_proj", "proj"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
    ];
    let prefix = if i.has("visual.conv1.weight") {
        "visual."
    } else {
        ""
    };
    let mut out = Vec::new();
    let mut applied = Applied::default();
    for t in i.tensors {
        let Some(rest) = t.name.strip_prefix(prefix) else {
            applied.dropped.push(t.name.clone());
            continue;
        };
        let mut k = replace_all(rest, &SWAPS);
        let v = View::of(t);
        if k.starts_with("attn_pool") {
            k = replace_all(
                &k,
                &[
                    ("attn_pool.attn", "attn_pool"),
                    ("attn_pool.layernorm", "attn_pool.norm"),
                    ("attn_pool.probe", "attn_pool.latent"),
                ],
            );
            if k.starts_with("attn_pool.qkv") {
                let end = if k.ends_with("weight") {
                    "weight"
                } else if k.ends_with("bias") {
                    "bias"
                } else {
                    // timm's filter writes nothing for it
                    applied.dropped.push(t.name.clone());
                    continue;
                };
                let rows = v.shape().first().copied().unwrap_or(0);
                let dim = rows / 3;
                out.push(
                    v.clone()
                        .named(format!("attn_pool.q.{end}"))
                        .narrow(0, 0, dim, L)?
                        .derived(),
                );
                out.push(
                    v.named(format!("attn_pool.kv.{end}"))
                        .narrow(0, dim, rows - dim, L)?
                        .derived(),
                );
                applied.computed.push(format!(
                    "attn_pool.q.{end}, attn_pool.kv.{end} = {}[:d], [d:]",
                    t.name
                ));
                continue;
            }
            out.push(v.named(k).derived());
            applied.renamed += 1;
            continue;
        }
        clip_tensor(v, k, L, &mut out, &mut applied)?;
    }
    applied.count_dropped("text-tower keys");
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `_convert_dinov2`: `mask_token` dropped; with registers, `reg_token`, `cls_token +
/// pos_embed[:, 0]` and `pos_embed[:, 1:]`; SwiGLU `w12` / `w3` renamed.
fn dinov2(i: &Input<'_>, _: &Target) -> Result<Converted> {
    const L: &str = "dinov2";
    let mut applied = Applied::default();
    applied.features.push("mask_token".into());
    applied.dropped.push("mask_token".into());
    let registers = i.has("register_tokens");
    let mut out = Vec::new();
    if registers {
        applied.features.push("register_tokens".into());
        let reg = View::of(i.get("register_tokens", L)?).named("reg_token");
        let cls = View::of(i.get("cls_token", L)?);
        let pos = View::of(i.get("pos_embed", L)?);
        let (&[_, n, _], &[_, _, _]) = (pos.shape(), cls.shape()) else {
            return Err(Error::OriginalLayout {
                layout: L.into(),
                what: format!(
                    "`pos_embed` {:?} and `cls_token` {:?} are not 3-d",
                    pos.shape(),
                    cls.shape()
                ),
            });
        };
        if n == 0 {
            return Err(Error::OriginalLayout {
                layout: L.into(),
                what: "`pos_embed` holds no position".into(),
            });
        }
        let first = pos.clone().narrow(1, 0, 1, L)?;
        out.push(reg.derived());
        out.push(cls.add(first, L)?);
        out.push(pos.named("pos_embed").narrow(1, 1, n - 1, L)?.derived());
        applied.computed.push("reg_token = register_tokens".into());
        applied
            .computed
            .push("cls_token = cls_token + pos_embed[:, 0]".into());
        applied.computed.push("pos_embed = pos_embed[:, 1:]".into());
    }
    let w12 = regex::Regex::new(r"^blocks\.(\d+)\.mlp\.w12\.(?:weight|bias)")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let w3 = regex::Regex::new(r"^blocks\.(\d+)\.mlp\.w3\.(?:weight|bias)")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut swiglu = false;
    for t in i.tensors {
        let k = t.name.as_str();
        if k == "mask_token"
            || (registers && matches!(k, "register_tokens" | "cls_token" | "pos_embed"))
        {
            continue;
        }
        let name = if w12.is_match(k) {
            swiglu = true;
            k.replace("w12", "fc1")
        } else if w3.is_match(k) {
            swiglu = true;
            k.replace("w3", "fc2")
        } else {
            k.to_owned()
        };
        if name != k {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(name).derived());
    }
    if swiglu {
        applied.features.push("swiglu w12/w3".into());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `checkpoint_filter_fn`'s OpenCLIP branch: `visual.trunk.` stripped, `visual.head.proj`
/// into a linear head with a zero bias.
fn openclip_vit_trunk(i: &Input<'_>, target: &Target) -> Result<Converted> {
    strip_trunk(i, target, "openclip_trunk", "head.weight", "head.bias")
}

fn strip_trunk(
    i: &Input<'_>,
    target: &Target,
    layout: &str,
    head_w: &str,
    head_b: &str,
) -> Result<Converted> {
    const PREFIX: &str = "visual.trunk.";
    let mut applied = Applied::default();
    let mut out = Vec::new();
    let mut left_out = 0usize;
    for t in i.tensors {
        match t.name.strip_prefix(PREFIX) {
            Some(k) => {
                out.push(View::of(t).named(k).derived());
                applied.renamed += 1;
            }
            None if t.name == "visual.head.proj.weight" => {}
            None => left_out += 1,
        }
    }
    if target.head_linear {
        if let Ok(w) = i.get("visual.head.proj.weight", layout) {
            let v = View::of(w).named(head_w);
            let rows = v.shape().first().copied().unwrap_or(0);
            let dtype = v.dtype();
            out.push(v.derived());
            out.push(zeros(head_b, dtype, vec![rows]));
            applied.features.push("visual.head.proj".into());
            applied
                .computed
                .push(format!("{head_w} = visual.head.proj.weight"));
            applied.computed.push(format!("{head_b} = zeros"));
        }
    }
    if left_out > 0 {
        applied
            .features
            .push(format!("{left_out} keys outside the trunk left out"));
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// The branches of `eva.checkpoint_filter_fn` for EVA / EVA-02 checkpoints (neither DINOv3,
/// Sapiens2 nor Perception Encoder, which have their own).
struct EvaOriginal {
    /// `visual.trunk.` or `visual.` (OpenCLIP) or nothing.
    prefix: &'static str,
    /// A MIM pretrain: `mask_token` and `lm_head` left out, `norm` to `fc_norm`.
    mim: bool,
    /// Separate q/k/v projections: `q_bias`/`v_bias` to `q_proj.bias`/`v_proj.bias`.
    no_qkv: bool,
}

impl EvaOriginal {
    const GENERIC: [(&'static str, &'static str); 6] = [
        ("mlp.ffn_ln", "mlp.norm"),
        ("attn.inner_attn_ln", "attn.norm"),
        ("mlp.w12", "mlp.fc1"),
        ("mlp.w1", "mlp.fc1_g"),
        ("mlp.w2", "mlp.fc1_x"),
        ("mlp.w3", "mlp.fc2"),
    ];

    /// The branch timm takes, unless another layout's (PE, Sapiens2, DINOv3).
    fn of(i: &Input<'_>) -> Option<EvaOriginal> {
        let pe = i.has("visual.conv1.weight") || i.has("conv1.weight");
        let sapiens2 = i.has("blocks.0.attn.wq.weight") && i.has("blocks.0.ffn.w12.weight");
        if pe || sapiens2 || i.has("storage_tokens") {
            return None;
        }
        let prefix = if i.has("visual.trunk.pos_embed") {
            "visual.trunk."
        } else if i.has("visual.pos_embed") {
            "visual."
        } else {
            ""
        };
        Some(EvaOriginal {
            prefix,
            mim: i.has(&format!("{prefix}mask_token")),
            no_qkv: i.has(&format!("{prefix}blocks.0.attn.q_proj.weight")),
        })
    }

    /// The key timm's filter writes for `key`, or None when it leaves it out.
    fn rename(&self, key: &str) -> Option<String> {
        let k = key.strip_prefix(self.prefix)?;
        if k.contains("rope") && k != "rope.freqs" {
            return None;
        }
        let mut k = k.to_owned();
        if self.mim
            && [
                "mask_token",
                "lm_head.weight",
                "lm_head.bias",
                "norm.weight",
                "norm.bias",
            ]
            .contains(&k.as_str())
        {
            if !k.starts_with("norm.") {
                return None;
            }
            k = k.replacen("norm", "fc_norm", 1);
        }
        k = replace_all(&k, &Self::GENERIC);
        if self.no_qkv {
            k = replace_all(&k, &[("q_bias", "q_proj.bias"), ("v_bias", "v_proj.bias")]);
        }
        Some(k)
    }

    /// Whether the filter changes anything (a timm EVA checkpoint passes through unchanged).
    fn changes(&self, i: &Input<'_>) -> bool {
        !self.prefix.is_empty()
            || i.tensors
                .iter()
                .any(|t| self.rename(&t.name).as_deref() != Some(t.name.as_str()))
    }
}

/// `eva.checkpoint_filter_fn` on EVA / EVA-02 originals: the OpenCLIP prefix stripped (the rest
/// left out), RoPE buffers left out, a MIM pretrain's `mask_token`/`lm_head` left out and its
/// `norm` moved to `fc_norm`, SwiGLU and sub-LN renames, `q_bias`/`v_bias` of separate q/k/v to
/// `q_proj.bias`/`v_proj.bias`. timm also resamples a `patch_embed` or `pos_embed` of another
/// size; here such a file is refused by the strict check (`--img-size` resamples).
fn eva_original(i: &Input<'_>, _: &Target) -> Result<Converted> {
    let Some(e) = EvaOriginal::of(i) else {
        return Err(Error::OriginalLayout {
            layout: "eva".into(),
            what: "the checkpoint is DINOv3, Sapiens2 or Perception Encoder".into(),
        });
    };
    let mut applied = Applied::default();
    if e.mim {
        applied.features.push("mask_token".into());
    }
    if !e.prefix.is_empty() {
        applied.features.push(format!("prefix {}", e.prefix));
    }
    if e.no_qkv {
        applied.features.push("separate q/k/v".into());
    }
    let mut out = Vec::new();
    let mut outside = 0usize;
    for t in i.tensors {
        match e.rename(&t.name) {
            Some(k) => {
                if k != t.name {
                    applied.renamed += 1;
                }
                out.push(View::of(t).named(k).derived());
            }
            None if !t.name.starts_with(e.prefix) => outside += 1,
            None => applied.dropped.push(t.name.clone()),
        }
    }
    if outside > 0 {
        applied
            .features
            .push(format!("{outside} keys outside {} left out", e.prefix));
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `eva.checkpoint_filter_fn` on Meta's DINOv3 ViT checkpoints.
fn dinov3_vit(i: &Input<'_>, target: &Target) -> Result<Converted> {
    const L: &str = "dinov3";
    const SWAPS: [(&str, &str); 3] = [
        ("ls1.gamma", "gamma_1"),
        ("ls2.gamma", "gamma_2"),
        ("storage_tokens", "reg_token"),
    ];
    const GENERIC: [(&str, &str); 6] = [
        ("mlp.ffn_ln", "mlp.norm"),
        ("attn.inner_attn_ln", "attn.norm"),
        ("mlp.w12", "mlp.fc1"),
        ("mlp.w1", "mlp.fc1_g"),
        ("mlp.w2", "mlp.fc1_x"),
        ("mlp.w3", "mlp.fc2"),
    ];
    let mut applied = Applied::default();
    applied.features.push("storage_tokens".into());
    let mut out = Vec::new();
    let mut split = 0usize;
    for t in i.tensors {
        let k = t.name.as_str();
        let discard = (k.contains("rope") && k != "rope.freqs")
            || [".periods", ".bias_mask", "mask_token"]
                .iter()
                .any(|f| k.ends_with(f))
            || k.starts_with("projectors.")
            || k.starts_with("local_cls_norm");
        if discard {
            applied.dropped.push(k.to_owned());
            continue;
        }
        if let Some(stem) = k.strip_suffix("qkv.bias") {
            let q = format!("{stem}q_bias");
            match target.has(&q) {
                Some(true) => {
                    let v = View::of(t);
                    let d = v.shape().len().saturating_sub(1);
                    out.push(v.clone().named(q).chunk(3, 0, d, L)?.derived());
                    let vb = replace_all(&format!("{stem}v_bias"), &GENERIC);
                    out.push(v.named(vb).chunk(3, 2, d, L)?.derived());
                    split += 1;
                }
                Some(false) => applied.dropped.push(k.to_owned()),
                None => {
                    return Err(Error::OriginalLayout {
                        layout: L.into(),
                        what: format!(
                            "whether `{k}` splits into `q_bias`/`v_bias` depends on the target \
                             model, whose keys are not known; name a model"
                        ),
                    })
                }
            }
            continue;
        }
        let name = replace_all(&replace_all(k, &SWAPS), &GENERIC);
        if name != k {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(name).derived());
    }
    if split > 0 {
        applied.features.push("qkv.bias -> q_bias, v_bias".into());
        applied
            .computed
            .push("q_bias, v_bias = qkv.bias.chunk(3)[0], [2]".into());
    }
    if applied.dropped.iter().any(|k| k.ends_with("qkv.bias")) {
        applied.features.push("qkv.bias dropped".into());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `convnext.checkpoint_filter_fn`'s OpenCLIP branch.
fn openclip_convnext(i: &Input<'_>, _: &Target) -> Result<Converted> {
    const L: &str = "openclip_convnext";
    let mut applied = Applied::default();
    let mut out = Vec::new();
    for t in i.tensors {
        if let Some(k) = t.name.strip_prefix("visual.trunk.") {
            out.push(View::of(t).named(k.replace("visual.trunk.", "")).derived());
            applied.renamed += 1;
        }
    }
    let head = |w: &TensorInfo, name: &str, bias: &str, out: &mut Vec<Derived>| {
        let v = View::of(w).named(name);
        let rows = v.shape().first().copied().unwrap_or(0);
        let dtype = v.dtype();
        out.push(v.derived());
        out.push(zeros(bias, dtype, vec![rows]));
    };
    if i.has("visual.head.proj.weight") {
        head(
            i.get("visual.head.proj.weight", L)?,
            "head.fc.weight",
            "head.fc.bias",
            &mut out,
        );
        applied.features.push("visual.head.proj".into());
        applied
            .computed
            .push("head.fc = visual.head.proj, zero bias".into());
    } else if i.has("visual.head.mlp.fc1.weight") {
        out.push(
            View::of(i.get("visual.head.mlp.fc1.weight", L)?)
                .named("head.pre_logits.fc.weight")
                .derived(),
        );
        out.push(
            View::of(i.get("visual.head.mlp.fc1.bias", L)?)
                .named("head.pre_logits.fc.bias")
                .derived(),
        );
        head(
            i.get("visual.head.mlp.fc2.weight", L)?,
            "head.fc.weight",
            "head.fc.bias",
            &mut out,
        );
        applied.features.push("visual.head.mlp".into());
        applied
            .computed
            .push("head.fc = visual.head.mlp.fc2, zero bias".into());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `convnext.checkpoint_filter_fn` on facebookresearch ConvNeXt, ConvNeXt-V2 (FCMAE included)
/// and DINOv3 ConvNeXt checkpoints.
fn fb_convnext(i: &Input<'_>, target: &Target) -> Result<Converted> {
    const L: &str = "fb_convnext";
    let re = |p: &str| regex::Regex::new(p).map_err(|e| Error::Internal(e.to_string()));
    let stages = re(r"stages.([0-9]+).([0-9]+)")?;
    let downs = re(r"downsample_layers.([0-9]+).([0-9]+)")?;
    let mut applied = Applied::default();
    let mut out = Vec::new();
    let mut grn = false;
    for t in i.tensors {
        let k0 = t.name.as_str();
        if k0.starts_with("projectors.") || k0.starts_with("norms.") {
            applied.dropped.push(k0.to_owned());
            continue;
        }
        let mut k = k0.replace("downsample_layers.0.", "stem.");
        k = stages
            .replace_all(&k, "stages.${1}.blocks.${2}")
            .into_owned();
        k = downs
            .replace_all(&k, "stages.${1}.downsample.${2}")
            .into_owned();
        k = k.replace("dwconv", "conv_dw").replace("pwconv", "mlp.fc");
        let mut v = View::of(t);
        if k.contains("grn") {
            k = k
                .replace("grn.beta", "mlp.grn.bias")
                .replace("grn.gamma", "mlp.grn.weight");
            let last = v.shape().last().copied().unwrap_or(0);
            v = v.reshape(vec![last], L)?;
            grn = true;
        }
        k = k.replace("head.", "head.fc.");
        if k.starts_with("norm.") {
            k = k.replace("norm", "head.norm");
        }
        if v.shape().len() == 2 && !k.contains("head") {
            match target.shape(&k) {
                Some(s) => v = v.reshape(s.to_vec(), L)?,
                None if target.keys.is_some() => {
                    return Err(Error::OriginalLayout {
                        layout: L.into(),
                        what: format!("`{k0}` becomes `{k}`, which the target model lacks"),
                    })
                }
                None => {}
            }
        }
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(v.named(k).derived());
    }
    if grn {
        applied.features.push("grn".into());
    }
    if !i.has("head.weight") && !i.has("norm.weight") {
        applied.features.push("no head (fcmae)".into());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `swin_transformer(_v2).checkpoint_filter_fn` on microsoft's checkpoints: the buffers timm
/// rebuilds left out, each stage's downsample moved to the start of the next stage
/// (`layers.N.downsample` to `layers.N+1.downsample`), `head.` to `head.fc.`.
fn ms_swin(i: &Input<'_>, layout: &str, buffers: &[&str]) -> Result<Converted> {
    let stage = regex::Regex::new(r"layers.(\d+).downsample")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut applied = Applied::default();
    applied
        .features
        .push("downsample moved to the next stage".into());
    let mut out = Vec::new();
    for t in i.tensors {
        let k0 = t.name.as_str();
        if buffers.iter().any(|b| k0.contains(b)) {
            applied.dropped.push(k0.to_owned());
            continue;
        }
        let mut bad = None;
        let k = stage.replace_all(k0, |c: &regex::Captures<'_>| {
            match c
                .get(1)
                .and_then(|n| n.as_str().parse::<usize>().ok())
                .and_then(|n| n.checked_add(1))
            {
                Some(n) => format!("layers.{n}.downsample"),
                None => {
                    bad = Some(k0.to_owned());
                    String::new()
                }
            }
        });
        if let Some(k) = bad {
            return Err(Error::OriginalLayout {
                layout: layout.to_owned(),
                what: format!("`{k}` names a stage number out of range"),
            });
        }
        let k = k.replace("head.", "head.fc.");
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(k).derived());
    }
    applied.count_dropped("rebuilt buffers");
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `vision_transformer_sam.checkpoint_filter_fn`: the image encoder of a Segment Anything
/// checkpoint (`image_encoder.` stripped, `mlp.lin` to `mlp.fc`); the prompt encoder and the
/// mask decoder left out.
fn sam(i: &Input<'_>, _: &Target) -> Result<Converted> {
    let mut applied = Applied::default();
    let mut out = Vec::new();
    let mut left_out = 0usize;
    for t in i.tensors {
        match t.name.strip_prefix("image_encoder.") {
            Some(k) => {
                out.push(View::of(t).named(k.replace("mlp.lin", "mlp.fc")).derived());
                applied.renamed += 1;
            }
            None => left_out += 1,
        }
    }
    if left_out > 0 {
        applied.features.push(format!(
            "{left_out} prompt-encoder and mask-decoder keys left out"
        ));
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `hiera.checkpoint_filter_fn`: `head.projection` to `head.fc`, the final `encoder_norm` or
/// `norm` to `head.norm`, `pos_embed_abs` to `pos_embed`.
fn hiera(i: &Input<'_>, _: &Target) -> Result<Converted> {
    let mut applied = Applied::default();
    let mut out = Vec::new();
    for t in i.tensors {
        let k0 = t.name.as_str();
        let mut k = k0.replace("head.projection.", "head.fc.");
        if k.starts_with("encoder_norm.") {
            k = k.replace("encoder_norm.", "head.norm.");
        } else if k.starts_with("norm.") {
            k = k.replace("norm.", "head.norm.");
        }
        if k == "pos_embed_abs" {
            k = "pos_embed".into();
        }
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(k).derived());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `vision_transformer.checkpoint_filter_fn(adapt_layer_scale=True)`, as `deit` builds its models:
/// facebookresearch DeiT-III's layer scales `gamma_N` become `lsN.gamma`.
fn deit3(i: &Input<'_>, _: &Target) -> Result<Converted> {
    let gamma = regex::Regex::new(r"gamma_([0-9])").map_err(|e| Error::Internal(e.to_string()))?;
    let mut applied = Applied::default();
    applied.features.push("gamma_N -> lsN.gamma".into());
    let mut out = Vec::new();
    for t in i.tensors {
        let k0 = t.name.as_str();
        let k = if k0.contains("gamma_") {
            gamma.replace_all(k0, "ls${1}.gamma").into_owned()
        } else {
            k0.to_owned()
        };
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(k).derived());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `beit.checkpoint_filter_fn` on microsoft's BEiT checkpoints (the state dict under `model`, or
/// `module` for BEiT v2): the `relative_position_index` buffers timm rebuilds left out.
fn ms_beit(i: &Input<'_>, _: &Target) -> Result<Converted> {
    let mut applied = Applied::default();
    let mut out = Vec::new();
    let mut left_out = 0usize;
    for t in i.tensors {
        if t.name.contains("relative_position_index") {
            left_out += 1;
            continue;
        }
        out.push(View::of(t).named(t.name.clone()).derived());
    }
    applied.features.push(format!(
        "{left_out} relative_position_index buffers left out"
    ));
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `xcit.checkpoint_filter_fn` on facebookresearch's XCiT: `pos_embeder.` to `pos_embed.` (left
/// out for a model without position embedding), and each class-attention block's `qkv` split
/// into `q`, `k`, `v` (views of its thirds) for timm's class attention.
fn fb_xcit(i: &Input<'_>, target: &Target) -> Result<Converted> {
    const L: &str = "fb_xcit";
    let use_pos = target
        .keys
        .as_ref()
        .is_none_or(|k| k.keys().any(|k| k.starts_with("pos_embed")));
    let split = target
        .has("cls_attn_blocks.0.attn.q.weight")
        .unwrap_or(true)
        && i.has("cls_attn_blocks.0.attn.qkv.weight");
    let qkv = regex::Regex::new(r"^cls_attn_blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut applied = Applied::default();
    let mut out = Vec::new();
    let mut pos_renamed = 0usize;
    for t in i.tensors {
        let k0 = t.name.as_str();
        if k0.starts_with("pos_embed") {
            if !use_pos {
                applied.dropped.push(k0.to_owned());
                continue;
            }
            let k = k0.replace("pos_embeder.", "pos_embed.");
            if k != k0 {
                applied.renamed += 1;
                pos_renamed += 1;
            }
            out.push(View::of(t).named(k).derived());
            continue;
        }
        if let (true, Some(c)) = (split, qkv.captures(k0)) {
            let (Some(block), Some(kind)) = (c.get(1), c.get(2)) else {
                continue;
            };
            for (j, part) in ["q", "k", "v"].iter().enumerate() {
                let name = format!(
                    "cls_attn_blocks.{}.attn.{part}.{}",
                    block.as_str(),
                    kind.as_str()
                );
                out.push(View::of(t).named(name).chunk(3, j, 0, L)?.derived());
            }
            continue;
        }
        out.push(View::of(t).named(k0).derived());
    }
    if split {
        applied
            .features
            .push("class-attention qkv split into q, k, v".into());
        applied
            .computed
            .push("cls_attn_blocks.N.attn.{q,k,v} = qkv.reshape(3, -1, ...)[0..3]".into());
    }
    if pos_renamed > 0 {
        applied.features.push("pos_embeder".into());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `pvt_v2.checkpoint_filter_fn` on the original PVT v2: `patch_embedN` become the stem and the
/// stages' downsamples, `blockN.M` `stages.N-1.blocks.M`, `normN` `stages.N-1.norm`.
fn pvt_v2(i: &Input<'_>, _: &Target) -> Result<Converted> {
    const L: &str = "pvt_v2";
    let re = |p: &str| regex::Regex::new(p).map_err(|e| Error::Internal(e.to_string()));
    let block = re(r"block(\d+).(\d+)")?;
    let norm = re(r"^norm(\d+)")?;
    let mut applied = Applied::default();
    let mut out = Vec::new();
    for t in i.tensors {
        let k0 = t.name.as_str();
        let mut k = k0.to_owned();
        if k.starts_with("patch_embed") {
            k = replace_all(
                &k,
                &[
                    ("patch_embed1", "patch_embed"),
                    ("patch_embed2", "stages.1.downsample"),
                    ("patch_embed3", "stages.2.downsample"),
                    ("patch_embed4", "stages.3.downsample"),
                ],
            );
        }
        k = k.replace("dwconv.dwconv", "dwconv");
        let mut bad = false;
        let mut stage = |n: &str| {
            let s = n.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
            bad |= s.is_none();
            s.unwrap_or(0)
        };
        k = block
            .replace_all(&k, |c: &regex::Captures<'_>| {
                let n = stage(c.get(1).map_or("", |m| m.as_str()));
                format!("stages.{n}.blocks.{}", c.get(2).map_or("", |m| m.as_str()))
            })
            .into_owned();
        k = norm
            .replace_all(&k, |c: &regex::Captures<'_>| {
                format!("stages.{}.norm", stage(c.get(1).map_or("", |m| m.as_str())))
            })
            .into_owned();
        if bad {
            return Err(Error::OriginalLayout {
                layout: L.into(),
                what: format!("`{k0}` names a stage number out of range"),
            });
        }
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(View::of(t).named(k).derived());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

/// `metaformer.checkpoint_filter_fn` on sail-sg's PoolFormer v1: `layer_scale_N` to
/// `layer_scaleN.scale`, the `network.N` list split into stages and downsamples, `M.N` to
/// `M.blocks.N`, `patch_embed` to the stem, `head`/`norm` to `head.fc`/`head.norm`; a tensor of
/// the model's size but another shape (the layer scales) viewed in the model's shape.
fn poolformer_v1(i: &Input<'_>, target: &Target) -> Result<Converted> {
    const L: &str = "poolformer_v1";
    let re = |p: &str| regex::Regex::new(p).map_err(|e| Error::Internal(e.to_string()));
    let scale = re(r"layer_scale_([0-9]+)")?;
    let downsample = re(r"downsample_layers.([0-9]+)")?;
    let blocks = re(r"([0-9]+).([0-9]+)")?;
    let head = re(r"^head")?;
    let norm = re(r"^norm")?;
    let mut applied = Applied::default();
    let mut out = Vec::new();
    for t in i.tensors {
        let k0 = t.name.as_str();
        let mut k = scale.replace_all(k0, "layer_scale${1}.scale").into_owned();
        k = replace_all(
            &k,
            &[
                ("network.1", "downsample_layers.1"),
                ("network.3", "downsample_layers.2"),
                ("network.5", "downsample_layers.3"),
                ("network.2", "network.1"),
                ("network.4", "network.2"),
                ("network.6", "network.3"),
                ("network", "stages"),
            ],
        );
        k = downsample
            .replace_all(&k, "stages.${1}.downsample")
            .into_owned();
        k = replace_all(
            &k,
            &[
                ("downsample.proj", "downsample.conv"),
                ("patch_embed.proj", "patch_embed.conv"),
            ],
        );
        k = blocks.replace_all(&k, "${1}.blocks.${2}").into_owned();
        k = replace_all(
            &k,
            &[
                ("stages.0.downsample", "patch_embed"),
                ("patch_embed", "stem"),
                ("post_norm", "norm"),
                ("pre_norm", "norm"),
            ],
        );
        k = head.replace(&k, "head.fc").into_owned();
        k = norm.replace(&k, "head.norm").into_owned();
        let mut v = View::of(t);
        match target.shape(&k) {
            Some(s) => {
                let numel = s.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
                if s != v.shape() && numel == Some(t.numel()) {
                    v = v.reshape(s.to_vec(), L)?;
                }
            }
            None if target.keys.is_some() => {
                return Err(Error::OriginalLayout {
                    layout: L.into(),
                    what: format!("`{k0}` becomes `{k}`, which the target model lacks"),
                })
            }
            None => {}
        }
        if k != k0 {
            applied.renamed += 1;
        }
        out.push(v.named(k).derived());
    }
    Ok(Converted {
        tensors: out,
        applied,
    })
}

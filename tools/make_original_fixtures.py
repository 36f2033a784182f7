#!/usr/bin/env python3
"""Original-layout fixtures: small checkpoints made by the upstream projects' own model code, and
what timm 1.0.31 loads from them.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start), open_clip_torch 3.3.0, segment_anything
1.0, hiera-transformer 0.1.4, and the upstream
source trees at the commits in UPSTREAM (recorded in each expectation file). Run from the
repository root:

    git --git-dir=<mirror of facebookresearch/dinov2> archive HEAD dinov2 | tar -x -C /tmp/dinov2
    git --git-dir=<mirror of facebookresearch/dinov3> archive HEAD dinov3 | tar -x -C /tmp/dinov3
    git --git-dir=<mirror of microsoft/Swin-Transformer> archive HEAD models | tar -x -C /tmp/swin
    (the same for facebookresearch/ConvNeXt into /tmp/convnext, ConvNeXt-V2 into /tmp/convnextv2,
    facebookresearch/deit's models_v2.py into /tmp/deit, microsoft/unilm's
    beit/modeling_finetune.py into /tmp/unilm/beit, facebookresearch/xcit's xcit.py into /tmp/xcit,
    whai362/PVT's classification/pvt_v2.py into /tmp/pvt, sail-sg/poolformer's models/poolformer.py
    into /tmp/poolformer, facebookresearch/mae's models_vit.py into /tmp/mae,
    facebookresearch/perception_models' core/vision_encoder into /tmp/pe; it imports einops:
    `pip install --target /tmp/open_clip --no-deps einops` and PE_SRC=/tmp/pe:/tmp/open_clip;
    baaivision/EVA's EVA-02/asuka into /tmp/eva, EVA_SRC=/tmp/eva:/tmp/open_clip, and its
    EVA-CLIP/rei (the eva_clip package) into /tmp/eva_clip, EVA_CLIP_SRC=/tmp/eva_clip:/tmp/open_clip)
    python -m pip install --target /tmp/open_clip --no-deps open_clip_torch==3.3.0 ftfy regex wcwidth \\
        segment_anything==1.0 hiera-transformer==0.1.4
    DINOV2_SRC=/tmp/dinov2 DINOV3_SRC=/tmp/dinov3 OPEN_CLIP_SRC=/tmp/open_clip SWIN_SRC=/tmp/swin \\
        SEGMENT_ANYTHING_SRC=/tmp/open_clip HIERA_SRC=/tmp/open_clip \\
        DEIT_SRC=/tmp/deit UNILM_SRC=/tmp/unilm MAE_SRC=/tmp/mae PE_SRC=/tmp/pe:/tmp/open_clip EVA_SRC=/tmp/eva:/tmp/open_clip EVA_CLIP_SRC=/tmp/eva_clip:/tmp/open_clip XCIT_SRC=/tmp/xcit PVT_SRC=/tmp/pvt POOLFORMER_SRC=/tmp/poolformer CONVNEXT_SRC=/tmp/convnext CONVNEXTV2_SRC=/tmp/convnextv2 .venv/bin/python tools/make_original_fixtures.py

Each upstream model is built in its own Python process (its code on PYTHONPATH there only), its
parameters set to seeded random values (so that a mix-up of tensors shows), and its state dict
saved with torch.save as the project publishes it. Then, in this process, timm builds the
matching model with the same reduced kwargs:

    timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=SRC), **KWARGS,
                      in_chans=.., num_classes=.., [img_size=..])

and every tensor of its state dict (cast back to the source dtype) is recorded with the SHA-256
of its bytes, as tools/make_fixtures.py does, in fixtures/expected/original/<source>.json, with
the model's own keys and shapes (`model_keys`: what the strict check compares against).

Writes fixtures/original/<source>.pth and fixtures/expected/original/<source>.json.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "original"
EXP = ROOT / "fixtures" / "expected" / "original"

UPSTREAM = {
    "dinov2": ("DINOV2_SRC", "facebookresearch/dinov2", "b8931f7bf91576930313be2c6d6af376033b35f0"),
    "dinov3": ("DINOV3_SRC", "facebookresearch/dinov3", "6876159a11b4df116f30f667f8c9888617df0751"),
    "open_clip": ("OPEN_CLIP_SRC", "open_clip_torch (PyPI)", "3.3.0"),
    "swin": ("SWIN_SRC", "microsoft/Swin-Transformer", "f82860bfb5225915aca09c3227159ee9e1df874d"),
    "convnext": ("CONVNEXT_SRC", "facebookresearch/ConvNeXt", "048efcea897d999aed302f2639b6270aedf8d4c8"),
    "sam": ("SEGMENT_ANYTHING_SRC", "segment_anything (PyPI)", "1.0"),
    "hiera": ("HIERA_SRC", "hiera-transformer (PyPI)", "0.1.4"),
    "deit": ("DEIT_SRC", "facebookresearch/deit", "7e160fe43f0252d17191b71cbb5826254114ea5b"),
    "unilm": ("UNILM_SRC", "microsoft/unilm (beit/modeling_finetune.py)", "768a3c873f598bb9b4d4dfb9267b099e35f8fe56"),
    "xcit": ("XCIT_SRC", "facebookresearch/xcit", "82f5291f412604970c39a912586e008ec009cdca"),
    "pvt": ("PVT_SRC", "whai362/PVT (v2: classification/pvt_v2.py)", "57e2dfaa5a46f9050d76f306a4fcd9a7c061f520"),
    "poolformer": ("POOLFORMER_SRC", "sail-sg/poolformer (models/poolformer.py)", "a075575b8b3dc3c76ecc5c49985d156167372bfa"),
    "convnextv2": ("CONVNEXTV2_SRC", "facebookresearch/ConvNeXt-V2", "2553895753323c6fe0b2bf390683f5ea358a42b9"),
    "pe": ("PE_SRC", "facebookresearch/perception_models (core/vision_encoder)", "3e352cca660658d4b5c90f42a7808b11469e4c66"),
    "eva": ("EVA_SRC", "baaivision/EVA (EVA-02/asuka)", "5623d08bb08a8268c7bc18e1d9b8b4bd651fe4d9"),
    "eva_clip": ("EVA_CLIP_SRC", "baaivision/EVA (EVA-CLIP/rei)", "5623d08bb08a8268c7bc18e1d9b8b4bd651fe4d9"),
    "mae": ("MAE_SRC", "facebookresearch/mae (models_vit.py)", "efb2a8062c206524e35e47d04501ed4f544c0ae8"),
}

# EVA-02's modeling code imports apex (FusedLayerNorm: the weight and bias of a LayerNorm) and
# xformers (used in forward only): stubbed
EVA_STUBS = (
    "import sys, types\nimport torch.nn as nn\n"
    "x = types.ModuleType('xformers'); x.ops = types.ModuleType('xformers.ops')\n"
    "sys.modules['xformers'] = x; sys.modules['xformers.ops'] = x.ops\n"
    "a = types.ModuleType('apex'); a.normalization = types.ModuleType('apex.normalization')\n"
    "a.normalization.FusedLayerNorm = nn.LayerNorm\n"
    "sys.modules['apex'] = a; sys.modules['apex.normalization'] = a.normalization\n"
)

# name: (upstream, builder source run in the upstream's process, dtype, timm arch, timm kwargs,
#        cases as (in_chans, num_classes, img_size or None); num_classes None: the source's own)
SOURCES = {
    "dinov2": (
        "dinov2",
        "from dinov2.models.vision_transformer import DinoVisionTransformer\n"
        "m = DinoVisionTransformer(img_size=56, patch_size=14, embed_dim=32, depth=2, num_heads=2,"
        " mlp_ratio=4, init_values=1.0, block_chunks=0)",
        "f32",
        "vit_small_patch14_dinov2",
        dict(img_size=56, embed_dim=32, depth=2, num_heads=2),
        [(3, 0, None), (4, 10, None), (1, 0, 84)],
    ),
    "dinov2_reg": (
        "dinov2",
        "from dinov2.models.vision_transformer import DinoVisionTransformer\n"
        "m = DinoVisionTransformer(img_size=56, patch_size=14, embed_dim=32, depth=2, num_heads=2,"
        " mlp_ratio=4, init_values=1.0, block_chunks=0, num_register_tokens=4)",
        "f32",
        "vit_small_patch14_reg4_dinov2",
        dict(img_size=56, embed_dim=32, depth=2, num_heads=2),
        [(3, 0, None), (4, 10, None), (3, 0, 84), (4, 0, None, (0, 1))],
    ),
    "dinov2_reg_swiglu": (
        "dinov2",
        "from dinov2.models.vision_transformer import DinoVisionTransformer\n"
        "m = DinoVisionTransformer(img_size=56, patch_size=14, embed_dim=32, depth=2, num_heads=2,"
        " mlp_ratio=4, init_values=1.0, block_chunks=0, num_register_tokens=4,"
        " ffn_layer='swiglufused')",
        "bf16",
        "vit_giant_patch14_reg4_dinov2",
        dict(img_size=56, embed_dim=32, depth=2, num_heads=2, mlp_ratio=5.5),
        [(3, 0, None), (4, 10, None)],
    ),
    "openai_clip": (
        "open_clip",
        "import open_clip\n"
        "from open_clip.model import CLIP, CLIPVisionCfg, CLIPTextCfg\n"
        "m = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(layers=2, width=32, head_width=16,"
        " patch_size=8, image_size=32), text_cfg=CLIPTextCfg(context_length=8, vocab_size=50,"
        " width=16, heads=2, layers=1), quick_gelu=True)",
        "f16",
        "vit_base_patch32_clip_224",
        dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
        [(3, None, None), (4, 10, None), (3, 0, None), (3, None, 48)],
    ),
    "openclip_vit_trunk": (
        "open_clip",
        "from open_clip.model import CLIP, CLIPVisionCfg, CLIPTextCfg\n"
        "m = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(timm_model_name='test_vit', image_size=160,"
        " timm_pool='', timm_proj='linear'), text_cfg=CLIPTextCfg(context_length=8, vocab_size=50,"
        " width=16, heads=2, layers=1))",
        "f16",
        "test_vit",
        dict(global_pool=""),
        [(3, None, None), (4, 10, None), (3, 0, None)],
    ),
    "openclip_convnext_trunk": (
        "open_clip",
        "from open_clip.model import CLIP, CLIPVisionCfg, CLIPTextCfg\n"
        "m = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(timm_model_name='test_convnext',"
        " image_size=64, timm_pool='avg', timm_proj='linear'), text_cfg=CLIPTextCfg(context_length=8,"
        " vocab_size=50, width=16, heads=2, layers=1))",
        "f16",
        "test_convnext",
        dict(),
        [(3, None, None), (4, 10, None), (3, 0, None)],
    ),
    "dinov3_vit": (
        "dinov3",
        "from dinov3.models.vision_transformer import DinoVisionTransformer\n"
        "m = DinoVisionTransformer(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,"
        " ffn_ratio=4, layerscale_init=1e-5, n_storage_tokens=4, mask_k_bias=True, qkv_bias=True,"
        " norm_layer='layernorm', device='cpu')\n"
        "m.init_weights()",
        "f32",
        "vit_small_patch16_dinov3",
        dict(embed_dim=32, depth=2, num_heads=2),
        [(3, 0, None), (4, 10, None)],
    ),
    "dinov3_vit_qkvb": (
        "dinov3",
        "from dinov3.models.vision_transformer import DinoVisionTransformer\n"
        "m = DinoVisionTransformer(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,"
        " ffn_ratio=4, layerscale_init=1e-5, n_storage_tokens=4, mask_k_bias=True, qkv_bias=True,"
        " norm_layer='layernorm', device='cpu')\n"
        "m.init_weights()",
        "f32",
        "vit_small_patch16_dinov3_qkvb",
        dict(embed_dim=32, depth=2, num_heads=2),
        [(3, 0, None), (4, 10, None)],
    ),
    "dinov3_convnext": (
        "dinov3",
        "from dinov3.models.convnext import ConvNeXt\n"
        "m = ConvNeXt(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])",
        "f32",
        "convnext_tiny",
        dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)),
        [(3, 0, None), (4, 10, None)],
    ),
    # microsoft's code imports timm.models.layers (timm's shim), in its own process; its
    # models/__init__ imports every variant (MoE included), so the one file is imported alone
    "ms_swin": (
        "swin",
        "import os, sys\nsys.path.insert(0, os.environ['SWIN_SRC'] + '/models')\n"
        "from swin_transformer import SwinTransformer\n"
        "m = SwinTransformer(img_size=64, patch_size=4, embed_dim=8, depths=[2, 2, 1, 1],"
        " num_heads=[1, 1, 2, 2], window_size=2, num_classes=10)",
        "f32",
        "swin_tiny_patch4_window7_224",
        dict(img_size=64, window_size=2, embed_dim=8, depths=(2, 2, 1, 1), num_heads=(1, 1, 2, 2)),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    "ms_swin_v2": (
        "swin",
        "import os, sys\nsys.path.insert(0, os.environ['SWIN_SRC'] + '/models')\n"
        "from swin_transformer_v2 import SwinTransformerV2\n"
        "m = SwinTransformerV2(img_size=64, patch_size=4, embed_dim=8, depths=[2, 2, 1, 1],"
        " num_heads=[1, 1, 2, 2], window_size=2, num_classes=10)",
        "f32",
        "swinv2_tiny_window8_256",
        dict(img_size=64, window_size=2, embed_dim=8, depths=(2, 2, 1, 1), num_heads=(1, 1, 2, 2)),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    "fb_convnext": (
        "convnext",
        "from models.convnext import ConvNeXt\n"
        "m = ConvNeXt(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32], num_classes=10)",
        "f32",
        "convnext_tiny",
        dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)),
        [(3, 10, None), (4, 7, None), (3, 0, None), (3, 0, None, (1, 2, 3))],
    ),
    # the dense ConvNeXt-V2; its utils import MinkowskiEngine for the sparse (FCMAE) encoder only,
    # stubbed here
    "fb_convnextv2": (
        "convnextv2",
        "import sys, types\nme = types.ModuleType('MinkowskiEngine'); me.SparseTensor = object\n"
        "sys.modules['MinkowskiEngine'] = me\n"
        "from models.convnextv2 import ConvNeXtV2\n"
        "m = ConvNeXtV2(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32], num_classes=10)",
        "f32",
        "convnextv2_atto",
        dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # an FCMAE pretrain as the project ships it for fine-tuning: ConvNeXt-V2's
    # utils.remap_checkpoint_keys turns the sparse FCMAE encoder (models/convnextv2_sparse.py,
    # which needs MinkowskiEngine) into the dense ConvNeXtV2's keys; the encoder has no final
    # `norm` and no `head`, so they are removed from the dense model here. timm loads it under
    # the `fcmae` tag with pretrained_strict=False (convnext._create_convnext): `head.norm`
    # stays at its init
    "fb_convnextv2_fcmae": (
        "convnextv2",
        "import sys, types\nme = types.ModuleType('MinkowskiEngine'); me.SparseTensor = object\n"
        "sys.modules['MinkowskiEngine'] = me\n"
        "from models.convnextv2 import ConvNeXtV2\n"
        "m = ConvNeXtV2(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32], num_classes=10)\n"
        "del m.norm, m.head",
        "f32",
        "convnextv2_atto.fcmae",
        dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)),
        [(3, 0, None), (4, 10, None), (3, 0, None, (1, 2, 3))],
    ),
    # facebookresearch/mae's models_vit.py subclasses timm's VisionTransformer (the project pins
    # timm 0.3.2, whose ViT keys are these; it runs here on the pinned timm). A fine-tune
    # (global_pool=True: `fc_norm` and no `norm`) is saved under `model`, as main_finetune.py
    # does; it is timm's ViT with global_pool='avg'
    "mae_finetuned": (
        "mae",
        "from functools import partial\nimport torch.nn as nn\nimport models_vit\n"
        "m = models_vit.VisionTransformer(global_pool=True, img_size=32, patch_size=8, embed_dim=32,"
        " depth=2, num_heads=2, mlp_ratio=4, qkv_bias=True,"
        " norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=10)\nWRAP = 'model'",
        "f32",
        "vit_base_patch16_224",
        dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, global_pool="avg"),
        [(3, None, None), (4, 7, None), (3, 0, None)],
    ),
    # an MAE pretrained encoder as main_finetune.py loads it (its strict=False load asserts that
    # only `head` and `fc_norm` are missing: `norm` and no head), under `model`: timm's `.mae` tag
    "mae_pretrain": (
        "mae",
        "from functools import partial\nimport torch.nn as nn\nimport models_vit\n"
        "m = models_vit.VisionTransformer(global_pool=False, img_size=32, patch_size=8, embed_dim=32,"
        " depth=2, num_heads=2, mlp_ratio=4, qkv_bias=True,"
        " norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=0)\nWRAP = 'model'",
        "f32",
        "vit_base_patch16_224.mae",
        dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
        [(3, 0, None), (4, 10, None)],
    ),
    # a Perception Encoder CLIP (facebookresearch/perception_models core/vision_encoder/pe.py) as
    # PE-Core ships it: `visual.` (cls token, attention pooling, `proj`) beside the text tower;
    # timm's vit_pe_core_* (eva._convert_pe)
    "pe_core": (
        "pe",
        "from core.vision_encoder.pe import CLIP\n"
        "from core.vision_encoder.config import PEConfig, PETextConfig\n"
        "m = CLIP(PEConfig(image_size=64, patch_size=16, width=32, layers=2, heads=2, mlp_ratio=4.0,"
        " pool_type='attn', output_dim=16, use_cls_token=True), PETextConfig(context_length=8,"
        " width=16, heads=2, layers=1, output_dim=16, vocab_size=50))",
        "f32",
        "vit_pe_core_tiny_patch16_384",
        dict(img_size=64, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=(4, 4)),
        [(3, None, None), (4, 10, None), (3, 0, None)],
    ),
    # a Perception Encoder vision tower alone (PE-Lang's configuration: layer scales, no pooling,
    # no ln_post, no projection), keys without `visual.`: timm's vit_pe_lang_*
    "pe_lang": (
        "pe",
        "from core.vision_encoder.pe import VisionTransformer\n"
        "m = VisionTransformer(patch_size=14, width=32, layers=2, heads=2, mlp_ratio=4.0,"
        " image_size=56, use_cls_token=True, pool_type='none', use_ln_post=False, output_dim=None,"
        " ls_init_value=0.1)",
        "f32",
        "vit_pe_lang_large_patch14_448",
        dict(img_size=56, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=(4, 4)),
        [(3, 0, None), (4, 10, None)],
    ),
    # an EVA-02 MIM pretrain (baaivision/EVA EVA-02/asuka/modeling_pretrain.py: separate q/k/v with
    # q_bias/v_bias, SwiGLU w1/w2/w3, RoPE buffers, `mask_token`, `norm`, `lm_head`) under `model`,
    # as its training saves it; apex's FusedLayerNorm (the same weight and bias) and xformers
    # (used in forward only) are stubbed. timm's eva02_*.mim_* tags
    "eva02_mim": (
        "eva",
        EVA_STUBS + "from functools import partial\n"
        "from modeling_pretrain import VisionTransformerForMaskedImageModeling\n"
        "m = VisionTransformerForMaskedImageModeling(img_size=56, patch_size=14, embed_dim=32, depth=2,"
        " num_heads=2, mlp_ratio=4 * 2 / 3, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),"
        " xattn=True, naiveswiglu=True, subln=True, xavier_normal_init=True, rope=True,"
        " predict_feature_dim=24)\n"
        "WRAP = 'model'",
        "f32",
        "eva02_base_patch14_224.mim_in22k",
        dict(img_size=56, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=(4, 4)),
        [(3, 0, None), (4, 10, None)],
    ),
    # an EVA02-CLIP (baaivision/EVA EVA-CLIP/rei/eva_clip, EVA02-CLIP-B-16's options: RoPE,
    # SwiGLU, sub-LN) with its text tower: `visual.` keys, timm's eva02_*_clip_* models
    "eva02_clip": (
        "eva_clip",
        "from eva_clip.model import CLIP, CLIPVisionCfg, CLIPTextCfg\n"
        "m = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(image_size=32, layers=2, width=32,"
        " head_width=16, patch_size=16, mlp_ratio=2.6667, eva_model_name='eva-clip-b-16-X', drop_path_rate=0.0,"
        " xattn=True, rope=True, pt_hw_seq_len=2, intp_freq=True, naiveswiglu=True, subln=True),"
        " text_cfg=CLIPTextCfg(context_length=8, vocab_size=50, width=16, heads=2, layers=1))",
        "f32",
        "eva02_base_patch16_clip_224.merged2b",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=(2, 2)),
        [(3, None, None), (4, 10, None), (3, 0, None)],
    ),
    # an OpenCLIP model with a timm EVA trunk (`visual.trunk.`, the trunk's head the projection:
    # open_clip's EVA02-*-16 configurations, timm_pool='token', no timm_proj); timm has no small
    # EVA, so the trunk is eva02_base_patch16_clip_224's _create_eva call at a small size,
    # registered in open_clip's process under another name
    "openclip_eva_trunk": (
        "open_clip",
        "import sys, types\nfrom timm.models import register_model\nfrom timm.models.eva import _create_eva\n"
        "__name__ = 'small_archs'; sys.modules[__name__] = types.ModuleType(__name__)\n"
        "@register_model\ndef eva02_clip_small(pretrained=False, **kwargs):\n"
        "    return _create_eva('eva02_base_patch16_clip_224', pretrained=pretrained, **dict(dict("
        "img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, qkv_fused=False,"
        " mlp_ratio=4 * 2 / 3, swiglu_mlp=True, scale_mlp=True, scale_attn_inner=True,"
        " use_rot_pos_emb=True, ref_feat_shape=(2, 2)), **kwargs))\n"
        "from open_clip.model import CLIP, CLIPVisionCfg, CLIPTextCfg\n"
        "m = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(timm_model_name='eva02_clip_small',"
        " image_size=32, timm_pool='token', timm_proj=None), text_cfg=CLIPTextCfg(context_length=8,"
        " vocab_size=50, width=16, heads=2, layers=1))",
        "f16",
        "eva02_base_patch16_clip_224.merged2b",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=(2, 2)),
        [(3, None, None), (4, 10, None), (3, 0, None)],
    ),
    # a Segment Anything checkpoint holds `image_encoder.`, `prompt_encoder.` and `mask_decoder.`;
    # the image encoder is built alone (a small decoder is megabytes) under the same attribute
    # name, with the projects's PromptEncoder beside it so that keys outside the encoder are there
    "sam": (
        "sam",
        "import torch\nfrom segment_anything.modeling import ImageEncoderViT, PromptEncoder\n"
        "m = torch.nn.Module()\n"
        "m.image_encoder = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=32, depth=2,"
        " num_heads=2, out_chans=16, use_rel_pos=True, window_size=2, global_attn_indexes=(1,))\n"
        "m.prompt_encoder = PromptEncoder(embed_dim=8, image_embedding_size=(4, 4),"
        " input_image_size=(64, 64), mask_in_chans=4)",
        "f32",
        "samvit_base_patch16",
        dict(img_size=64, embed_dim=32, depth=2, num_heads=2, neck_chans=16, window_size=2,
             global_attn_indexes=(1,)),
        [(3, 0, None), (4, 10, None)],
    ),
    # Hiera publishes {"model_state": state_dict}
    "hiera": (
        "hiera",
        "from hiera import Hiera\n"
        "m = Hiera(embed_dim=8, num_heads=1, stages=(1, 1, 1, 1), num_classes=10)\n"
        "WRAP = 'model_state'",
        "f32",
        "hiera_tiny_224",
        dict(embed_dim=8, num_heads=1, stages=(1, 1, 1, 1)),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # DeiT-III (models_v2.py imports timm.models.layers and registers timm names: its own
    # process); published as {"model": state_dict}
    "deit3": (
        "deit",
        "import torch.nn as nn\nfrom functools import partial\n"
        "from models_v2 import vit_models, Layer_scale_init_Block\n"
        "m = vit_models(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,"
        " qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),"
        " block_layers=Layer_scale_init_Block, num_classes=10)\n"
        "WRAP = 'model'",
        "f32",
        "deit3_small_patch16_224",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # microsoft BEiT fine-tuned (relative position bias, mean pooling), as {"model": state_dict};
    # the code imports timm.models.layers and registers timm names: its own process
    "ms_beit": (
        "unilm",
        "import os, sys\nsys.path.insert(0, os.environ['UNILM_SRC'] + '/beit')\n"
        "import torch.nn as nn\nfrom functools import partial\n"
        "from modeling_finetune import VisionTransformer\n"
        "m = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2,"
        " mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), init_values=0.1,"
        " use_abs_pos_emb=False, use_rel_pos_bias=True, use_mean_pooling=True, num_classes=10)\n"
        "WRAP = 'model'",
        "f32",
        "beit_base_patch16_224",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # facebookresearch XCiT (imports timm's layers, registers timm names: its own process), as
    # {"model": state_dict}
    "fb_xcit": (
        "xcit",
        "import torch.nn as nn\nfrom functools import partial\nfrom xcit import XCiT\n"
        "m = XCiT(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,"
        " qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), eta=1.0, tokens_norm=False,"
        " num_classes=10)\n"
        "WRAP = 'model'",
        "f32",
        "xcit_nano_12_p16_224",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # facebookresearch CaiT, as {"model": state_dict}: timm's filter only unwraps `model` and
    # strips `module.`, which timmconv's reader does for every checkpoint, so no layout applies
    "fb_cait": (
        "deit",
        "import torch.nn as nn\nfrom functools import partial\nfrom cait_models import cait_models\n"
        "m = cait_models(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,"
        " qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), init_scale=1e-5,"
        " depth_token_only=2, num_classes=10)\n"
        "WRAP = 'model'",
        "f32",
        "cait_xxs24_224",
        dict(img_size=32, embed_dim=32, depth=2, num_heads=2),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # the original PVT v2 (imports timm's layers, registers timm names: its own process)
    "pvt_v2": (
        "pvt",
        "import torch.nn as nn\nfrom functools import partial\n"
        "from pvt_v2 import PyramidVisionTransformerV2\n"
        "m = PyramidVisionTransformerV2(patch_size=4, embed_dims=[8, 16, 24, 32], num_heads=[1, 1, 1, 2],"
        " mlp_ratios=[2, 2, 2, 2], qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),"
        " depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1], num_classes=10)",
        "f32",
        "pvt_v2_b0",
        dict(depths=(1, 1, 1, 1), embed_dims=(8, 16, 24, 32), num_heads=(1, 1, 1, 2), mlp_ratios=(2, 2, 2, 2)),
        [(3, 10, None), (4, 7, None), (3, 0, None)],
    ),
    # sail-sg PoolFormer v1 (imports timm.models.layers.helpers, which timm 1.0.31 moved to
    # timm.layers.helpers: aliased in its own process)
    "poolformer_v1": (
        "poolformer",
        "import sys, timm.layers.helpers as h\nsys.modules['timm.models.layers.helpers'] = h\n"
        "from poolformer import PoolFormer\n"
        "m = PoolFormer([2, 2, 6, 2], embed_dims=[8, 16, 24, 32], mlp_ratios=[4, 4, 4, 4],"
        " downsamples=[True, True, True, True], num_classes=10)",
        "f32",
        "poolformer_s12_small",
        dict(),
        [(3, 10, None), (4, 7, None)],  # num_classes=0: timm's filter raises KeyError (no head.fc)
    ),
}

def register_small_archs():
    """timm architectures whose factory fixes the sizes (poolformer_s12 takes no depths or dims)
    are registered here at a small size, built by the same `_create_metaformer` under the same
    variant name: the same pretrained cfg and `checkpoint_filter_fn`. The expectation names the
    real architecture (SMALL_ARCHS)."""
    import torch.nn as nn
    from timm.models import register_model
    from timm.models.metaformer import GroupNorm1, _create_metaformer

    @register_model
    def poolformer_s12_small(pretrained=False, **kwargs):
        return _create_metaformer('poolformer_s12', pretrained=pretrained, **dict(
            depths=[2, 2, 6, 2], dims=[8, 16, 24, 32], downsample_norm=None, mlp_act=nn.GELU,
            mlp_bias=True, norm_layers=GroupNorm1, layer_scale_init_values=1e-5,
            res_scale_init_values=None, use_mlp_head=False, **kwargs))


SMALL_ARCHS = {"poolformer_s12_small": "poolformer_s12"}

# sources no original layout applies to (timmconv reads them as timm does without one)
NO_LAYOUT = {"fb_cait", "mae_finetuned", "mae_pretrain"}

# classes of a source whose head is not the cfg's: the CLIP embedding width (the projection
# becomes the head), the 10 classes the microsoft and facebookresearch fixtures were built with
SOURCE_CLASSES = {"open_clip": 16, "swin": 10, "convnext": 10, "convnextv2": 10, "hiera": 10, "deit": 10, "unilm": 10, "xcit": 10, "pvt": 10, "poolformer": 10, "mae": 10, "pe": 16, "eva_clip": 16}

# a source whose pretrained cfg is a headless tag (FCMAE: num_classes 0)
NAME_CLASSES = {"fb_convnextv2_fcmae": 0, "mae_pretrain": 0, "pe_lang": 0, "eva02_mim": 0}

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}

# Full-size models as the projects publish them, built on the meta device (open_clip: the CPU): their keys and
# shapes (fixtures/original/shapes/<name>.json) are what `identify` is tested on, and the
# architecture it must name first.
FULL = {
    "dinov2_vits14": (
        "dinov2", "vit_small_patch14_dinov2",
        "from dinov2.hub.backbones import dinov2_vits14\nm = dinov2_vits14(pretrained=False)",
    ),
    "dinov2_vits14_reg": (
        "dinov2", "vit_small_patch14_reg4_dinov2",
        "from dinov2.hub.backbones import dinov2_vits14_reg\nm = dinov2_vits14_reg(pretrained=False)",
    ),
    "dinov2_vitg14_reg": (
        "dinov2", "vit_giant_patch14_reg4_dinov2",
        "from dinov2.hub.backbones import dinov2_vitg14_reg\nm = dinov2_vitg14_reg(pretrained=False)",
    ),
    "dinov2_vitb14": (
        "dinov2", "vit_base_patch14_dinov2",
        "from dinov2.hub.backbones import dinov2_vitb14\nm = dinov2_vitb14(pretrained=False)",
    ),
    "dinov2_vitl14": (
        "dinov2", "vit_large_patch14_dinov2",
        "from dinov2.hub.backbones import dinov2_vitl14\nm = dinov2_vitl14(pretrained=False)",
    ),
    "dinov2_vitg14": (
        "dinov2", "vit_giant_patch14_dinov2",
        "from dinov2.hub.backbones import dinov2_vitg14\nm = dinov2_vitg14(pretrained=False)",
    ),
    "dinov3_vitl16": (
        "dinov3", "vit_large_patch16_dinov3",
        "from dinov3.hub.backbones import dinov3_vitl16\nm = dinov3_vitl16(pretrained=False)",
    ),
    "dinov3_vith16plus": (
        "dinov3", "vit_huge_plus_patch16_dinov3",
        "from dinov3.hub.backbones import dinov3_vith16plus\nm = dinov3_vith16plus(pretrained=False)",
    ),
    "dinov3_vit7b16": (
        "dinov3", "vit_7b_patch16_dinov3",
        "from dinov3.hub.backbones import dinov3_vit7b16\nm = dinov3_vit7b16(pretrained=False)",
    ),
    "dinov3_convnext_large": (
        "dinov3", "convnext_large",
        "from dinov3.hub.backbones import dinov3_convnext_large\nm = dinov3_convnext_large(pretrained=False)",
    ),
    "dinov3_vits16": (
        "dinov3", "vit_small_patch16_dinov3",
        "from dinov3.hub.backbones import dinov3_vits16\nm = dinov3_vits16(pretrained=False)",
    ),
    "dinov3_convnext_tiny": (
        "dinov3", "convnext_tiny",
        "from dinov3.hub.backbones import dinov3_convnext_tiny\nm = dinov3_convnext_tiny(pretrained=False)",
    ),
    "ms_swin_v2_tiny": (
        "swin", "swinv2_tiny_window8_256",
        "import os, sys\nsys.path.insert(0, os.environ['SWIN_SRC'] + '/models')\n"
        "from swin_transformer_v2 import SwinTransformerV2\n"
        "m = SwinTransformerV2(img_size=256, window_size=8)",
    ),
    "ms_swin_tiny": (
        "swin", "swin_tiny_patch4_window7_224",
        "import os, sys\nsys.path.insert(0, os.environ['SWIN_SRC'] + '/models')\n"
        "from swin_transformer import SwinTransformer\nm = SwinTransformer()",
    ),
    "fb_convnext_tiny": (
        "convnext", "convnext_tiny",
        "from models.convnext import convnext_tiny\nm = convnext_tiny()",
    ),
    "deit3_small": (
        "deit", "deit3_small_patch16_224",
        "from models_v2 import deit_small_patch16_LS\nm = deit_small_patch16_LS()",
    ),
    "fb_xcit_nano": (
        "xcit", "xcit_nano_12_p16_224",
        "from xcit import xcit_nano_12_p16\nm = xcit_nano_12_p16()",
    ),
    "pvt_v2_b0": (
        "pvt", "pvt_v2_b0",
        "from pvt_v2 import pvt_v2_b0\nm = pvt_v2_b0()",
    ),
    "pe_core_t16": (
        "pe", "vit_pe_core_tiny_patch16_384",
        "from core.vision_encoder.pe import CLIP\n"
        "from core.vision_encoder.config import PE_VISION_CONFIG, PE_TEXT_CONFIG\n"
        "m = CLIP(PE_VISION_CONFIG['PE-Core-T16-384'], PE_TEXT_CONFIG['PE-Core-T16-384'])",
    ),
    "eva02_mim_b14": (
        "eva", "eva02_base_patch14_224",
        EVA_STUBS + "from modeling_pretrain import"
        " eva02_base_patch14_xattn_fusedLN_NaiveSwiGLU_subln_RoPE_xavier_normal_init as build\n"
        "m = build()",
    ),
    "openai_clip_b32": (
        "open_clip", "vit_base_patch32_clip_224",
        "import open_clip\nm = open_clip.create_model('ViT-B-32-quickgelu', pretrained=None)",
    ),
}


def shapes_main(name, out):
    """In the upstream's process: a full-size model's keys and shapes, built on the meta device."""
    import torch

    upstream, _arch, build = FULL[name]
    # open_clip moves what it builds to a device, which a meta tensor refuses, and Swin calls
    # .item() while building: those are built on the CPU
    import contextlib
    with torch.device("meta") if upstream in ("dinov2", "dinov3") else contextlib.nullcontext():
        scope = {}
        exec(build, scope)
    sd = scope["m"].state_dict()
    Path(out).write_text(json.dumps([[k, list(v.shape)] for k, v in sd.items()]) + "\n")


def upstream_main(name, out):
    """In the upstream's process: build, randomise, save."""
    import torch

    upstream, build, dtype = SOURCES[name][:3]
    torch.manual_seed(sum(name.encode()))
    scope = {}
    exec(build, scope)
    m = scope["m"]
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    sd = {k: v.detach().to(getattr(torch, DTYPES[dtype])) if v.is_floating_point() else v
          for k, v in m.state_dict().items()}
    torch.save({scope["WRAP"]: sd} if "WRAP" in scope else sd, out)


# Broken copies of a fixture: a tensor the conversion needs missing, or of another shape.
BROKEN = {
    "dinov2_reg_no_pos_embed": ("dinov2_reg.f32.pth", lambda sd: sd.pop("pos_embed")),
    "dinov2_reg_bad_cls_token": (
        "dinov2_reg.f32.pth", lambda sd: sd.__setitem__("cls_token", sd["cls_token"][..., :31])),
    "openai_clip_no_conv1": ("openai_clip.f16.pth", lambda sd: sd.pop("visual.conv1.weight")),
}


def digest(t):
    return hashlib.sha256(t.detach().contiguous().reshape(-1).view(__import__("torch").uint8).numpy().tobytes()).hexdigest()


def main():
    import torch
    import timm

    assert torch.__version__.split("+")[0] == "2.11.0", torch.__version__
    assert timm.__version__ == "1.0.31", timm.__version__
    sys.path.insert(0, str(ROOT / "tools"))
    from make_fixtures import DTYPE_NAMES, create_recording_missing

    OUT.mkdir(parents=True, exist_ok=True)
    EXP.mkdir(parents=True, exist_ok=True)
    register_small_archs()
    only = sys.argv[1:]
    (OUT / "shapes").mkdir(exist_ok=True)
    for name, (upstream, arch, _build) in FULL.items():
        if only and name not in only:
            continue
        var, repo, pin = UPSTREAM[upstream]
        env = dict(os.environ, PYTHONPATH=os.environ[var])
        out = OUT / "shapes" / f"{name}.json"
        subprocess.run([sys.executable, __file__, "--shapes", name, str(out)], env=env, check=True)
        keys = json.loads(out.read_text())
        out.write_text(json.dumps(dict(upstream=dict(project=repo, version=pin), architecture=arch,
                                       keys=keys)) + "\n")
    for name, (upstream, _build, dtype, arch, kwargs, cases) in SOURCES.items():
        if only and name not in only:
            continue
        var, repo, pin = UPSTREAM[upstream]
        src_dir = os.environ.get(var)
        if not src_dir:
            sys.exit(f"{var} must name the {repo} source tree ({pin})")
        src = OUT / f"{name}.{dtype}.pth"
        env = dict(os.environ, PYTHONPATH=src_dir)
        subprocess.run([sys.executable, __file__, "--upstream", name, str(src)], env=env, check=True)
        sd = torch.load(src, weights_only=True)
        sd = sd.get("model_state", sd.get("model", sd))
        torch_dtype = getattr(torch, DTYPES[dtype])
        expected_cases = []
        for case in cases:
            in_chans, num_classes, img_size = case[:3]
            # a fourth element: features_only=True with these out_indices
            out_indices = case[3] if len(case) > 3 else None
            kw = dict(kwargs, in_chans=in_chans)
            if out_indices is not None:
                kw.update(features_only=True, out_indices=out_indices)
            if num_classes is not None:
                kw["num_classes"] = num_classes
            else:
                kw["num_classes"] = NAME_CLASSES.get(name, SOURCE_CLASSES[upstream])
            if img_size is not None:
                kw["img_size"] = img_size
            model, missing = create_recording_missing(
                arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), **kw)
            tensors = []
            for k, v in model.state_dict().items():
                if k in missing:
                    continue
                if v.is_floating_point():
                    v = v.to(torch_dtype)
                tensors.append([k, DTYPE_NAMES[v.dtype], list(v.shape), digest(v)])
            expected_cases.append(dict(in_chans=in_chans, num_classes=kw.get("num_classes"),
                                       out_indices=list(out_indices) if out_indices else None,
                                       img_size=img_size, reinit=sorted(missing), tensors=tensors))
        cfg = timm.create_model(arch, pretrained=False, **kwargs).pretrained_cfg
        pretrained_classes = NAME_CLASSES.get(name, SOURCE_CLASSES.get(upstream, cfg["num_classes"]))
        # the keys and shapes of the model the weights are for: what the strict check compares
        base = timm.create_model(arch, **dict(kwargs, num_classes=pretrained_classes))
        model_keys = [[k, list(v.shape)] for k, v in base.state_dict().items()]
        first_conv, classifier = cfg["first_conv"], cfg["classifier"]
        EXP.joinpath(f"{name}.json").write_text(json.dumps(dict(
            source=src.name,
            upstream=dict(project=repo, version=pin),
            source_keys=[[k, list(v.shape)] for k, v in sd.items()],
            architecture=SMALL_ARCHS.get(arch, arch),
            model_kwargs=kwargs,
            first_conv=[first_conv] if isinstance(first_conv, str) else list(first_conv),
            classifier=[classifier] if isinstance(classifier, str) else list(classifier),
            pretrained_num_classes=pretrained_classes,
            no_layout=name in NO_LAYOUT,
            model_keys=model_keys,
            cases=expected_cases,
        ), indent=1) + "\n")
        print(f"{src.relative_to(ROOT)}: {len(sd)} tensors, {src.stat().st_size} bytes")
    for name, (src, change) in BROKEN.items():
        sd = torch.load(OUT / src, weights_only=True)
        change(sd)
        torch.save(sd, OUT / f"{name}.pth")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--upstream":
        upstream_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "--shapes":
        shapes_main(sys.argv[2], sys.argv[3])
    else:
        main()

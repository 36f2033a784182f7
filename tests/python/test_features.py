"""`timmconv convert --features-only` writes exactly what timm's features_only model holds: the
output loads with strict=True and equals, tensor for tensor, what timm itself loads from the same
source checkpoint with pretrained=True."""

import os
import subprocess
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
CKPT = ROOT / "fixtures" / "ckpt"

CASES = [
    # source, arch, out_indices (None: timm's default), in_chans
    ("test_resnet.f32.zip.pth", "test_resnet", None, 3),
    ("test_resnet.f32.train.pth", "test_resnet", (1, 2), 4),
    ("test_convnext.f32.zip.pth", "test_convnext", (0, 2), 1),
    ("test_vit.f32.zip.pth", "test_vit", None, 3),
    ("test_vit.bf16.safetensors", "test_vit", (1, 3), 2),
    ("test_efficientnet.f16.legacy.pth", "test_efficientnet", None, 1),
    ("crossvit_tiny_240.f32.zip.pth", "crossvit_tiny_240", None, 3),
    ("tresnet_m.f32.zip.pth", "tresnet_m", (2, 3), 1),
]
KWARGS = {
    "crossvit_tiny_240": dict(embed_dim=(16, 32), depth=((1, 1, 0),), num_heads=(2, 2), mlp_ratio=(1, 1, 1)),
    "tresnet_m": dict(layers=[1, 1, 1, 1], width_factor=0.125),
}


@pytest.mark.parametrize("src,arch,out_indices,in_chans", CASES)
def test_features_only_output_loads_strictly_with_timms_values(tmp_path, src, arch, out_indices, in_chans):
    out = tmp_path / "features.safetensors"
    args = [BIN, "convert", str(CKPT / src), "-o", str(out), "--model", arch, "--features-only", "--in-chans", str(in_chans), "-q"]
    if arch in KWARGS:
        # a shrunken model (tools/make_fixtures.py's kwargs): not the architecture's shapes
        args.append("--allow-mismatch")
    if out_indices is not None:
        args += ["--out-indices", ",".join(map(str, out_indices))]
    subprocess.run(args, check=True)
    ours = safetensors.torch.load_file(str(out))
    kwargs = dict(features_only=True, in_chans=in_chans, **KWARGS.get(arch, {}))
    if out_indices is not None:
        kwargs["out_indices"] = out_indices
    fresh = timm.create_model(arch, **kwargs)
    target = fresh.state_dict()
    fresh.load_state_dict({k: v.to(target[k].dtype) for k, v in ours.items()}, strict=True)
    reference = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(CKPT / src)), **kwargs).state_dict()
    assert set(reference) == set(ours)
    for k, v in ours.items():
        assert torch.equal(reference[k], v.to(reference[k].dtype)), k

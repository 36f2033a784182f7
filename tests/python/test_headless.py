"""`convert --num-classes 0` writes what `timm.create_model(NAME, pretrained=True, num_classes=0)`
holds: where timm's headless model replaces the whole head by `Identity` (LeViT's and
EfficientViT-M's `NormLinear`/`BNLinear` heads), the head's norm goes with the classifier; where
the head keeps a norm (ConvNeXt), it stays."""

import os
import subprocess
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))

ARCHS = ["efficientvit_m0", "levit_128s", "convnext_atto", "resnet18"]


@pytest.mark.parametrize("arch", ARCHS)
def test_num_classes_zero_holds_timms_headless_state_dict(tmp_path, arch):
    torch.manual_seed(0)
    src = tmp_path / "src.pth"
    torch.save(timm.create_model(arch).state_dict(), src)
    out = tmp_path / "out.safetensors"
    r = subprocess.run([BIN, "convert", str(src), "-o", str(out), "--model", arch, "--num-classes", "0", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ours = safetensors.torch.load_file(str(out))
    reference = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), num_classes=0).state_dict()
    assert sorted(ours) == sorted(reference)
    for k, v in reference.items():
        assert torch.equal(ours[k], v), k

"""Hub folders written by `timmconv convert --layout hub` load in timm 1.0.31 and hold the
converted values; their config.json equals what timm's own save_config_for_hf writes for the same
model. Run by tools/test.sh with the pinned venv (TIMMCONV_BIN points at the binary)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from timm.models._hub import save_config_for_hf

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
CKPT = ROOT / "fixtures" / "ckpt"

CASES = [
    # source, model, in_chans, num_classes (None: unchanged)
    ("test_resnet.f32.zip.pth", "test_resnet.r160_in1k", 4, 10),
    ("test_vit.bf16.safetensors", "test_vit.r160_in1k", 1, None),
    ("test_convnext.f32.zip.pth", "test_convnext", 7, 0),
    ("test_efficientnet.f16.legacy.pth", "test_efficientnet.r160_in1k", 3, None),
    ("test_resnet.f32.train.pth", "test_resnet", 2, None),
]


def convert(tmp_path, src, model, in_chans, num_classes, *extra):
    out = tmp_path / "hub"
    args = [BIN, "convert", str(CKPT / src), "-o", str(out), "--model", model, "--in-chans", str(in_chans), "--layout", "hub", "-q", *extra]
    if num_classes is not None:
        args += ["--num-classes", str(num_classes)]
    subprocess.run(args, check=True)
    return out


@pytest.mark.parametrize("src,model,in_chans,num_classes", CASES)
def test_hub_folder_loads_in_timm_with_converted_values(tmp_path, src, model, in_chans, num_classes):
    out = convert(tmp_path, src, model, in_chans, num_classes)
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True, **kwargs)
    arch = model.split(".")[0]
    assert loaded.pretrained_cfg["architecture"] == arch
    weights = safetensors.torch.load_file(str(out / "model.safetensors"))
    sd = loaded.state_dict()
    for k, v in weights.items():
        assert k in sd, k
        assert torch.equal(sd[k], v.to(sd[k].dtype)), k
    # the model itself has the requested shape
    first = timm.create_model(arch).pretrained_cfg["first_conv"]
    assert sd[first + ".weight"].shape[1] == in_chans
    if num_classes is not None:
        assert loaded.num_classes == num_classes


@pytest.mark.parametrize("src,model,in_chans,num_classes", CASES)
def test_config_matches_timms_save_config_for_hf(tmp_path, src, model, in_chans, num_classes):
    out = convert(tmp_path, src, model, in_chans, num_classes)
    ours = json.loads((out / "config.json").read_text())
    arch, _, tag = model.partition(".")
    name = model if tag else arch
    cfg_classes = timm.create_model(name).pretrained_cfg["num_classes"]
    # the folder holds no head when num_classes changed: timm's config for a headless model
    classes = cfg_classes if num_classes in (None, cfg_classes) else 0
    reference = timm.create_model(name, in_chans=in_chans, num_classes=classes)
    path = tmp_path / "reference.json"
    save_config_for_hf(reference, str(path))
    theirs = json.loads(path.read_text())
    assert ours == theirs


FINETUNE = ROOT / "fixtures" / "hub" / "test_resnet-ft37"


@pytest.mark.parametrize("in_chans,num_classes", [(3, 37), (4, 37), (3, None), (1, 10)])
def test_save_for_hf_finetune_converts_as_timm_loads_it(tmp_path, in_chans, num_classes):
    """Issue 22, item 1: the folder's config.json (num_classes 37, tag r160_in1k, whose registry
    cfg says 1000) is the pretrained cfg; timm keeps the 37-class head, and so must we."""
    out = tmp_path / "out.safetensors"
    args = [BIN, "convert", str(FINETUNE), "-o", str(out), "--in-chans", str(in_chans), "-q"]
    if num_classes is not None:
        args += ["--num-classes", str(num_classes)]
    subprocess.run(args, check=True)
    kwargs = {"in_chans": in_chans}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    reference = timm.create_model(f"local-dir:{FINETUNE}", pretrained=True, **kwargs).state_dict()
    ours = safetensors.torch.load_file(str(out))
    # timm re-initialises the head only when num_classes differs from the folder's 37
    head = {"fc.weight", "fc.bias"} if num_classes not in (None, 37) else set()
    assert set(reference) - set(ours) == head
    assert set(ours) <= set(reference)
    for k, v in ours.items():
        assert torch.equal(reference[k], v), k
    if not head:
        assert ours["fc.weight"].shape[0] == 37

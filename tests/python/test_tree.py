"""`timmconv inspect --tree`: the elements and bytes per module prefix equal what torch.load's
state dict holds under each prefix, and the stem and classifier marked are timm's cfg's."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import timm
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))


@pytest.mark.parametrize("src,model,depth", [
    ("test_resnet.f32.zip.pth", "test_resnet.r160_in1k", 2),
    ("test_vit.f32.zip.pth", "test_vit.r160_in1k", 1),
    ("test_convnext.f32.zip.pth", "test_convnext.r160_in1k", 3),
])
def test_tree_sums_the_state_dict_per_prefix_and_marks_the_cfg(src, model, depth):
    path = ROOT / "fixtures" / "ckpt" / src
    out = subprocess.run([BIN, "inspect", str(path), "--tree", "--json", "--depth", str(depth), "--model", model],
                         check=True, capture_output=True).stdout
    got = json.loads(out)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)
    want = {}
    for k, v in sd.items():
        parts = k.split(".")
        for d in range(1, max(1, min(depth, len(parts) - 1)) + 1):
            p = ".".join(parts[:d])
            n, b = want.get(p, (0, 0))
            want[p] = (n + v.numel(), b + v.numel() * v.element_size())
    assert {m["prefix"]: (m["params"], m["bytes"]) for m in got["modules"]} == want
    assert got["total_params"] == sum(v.numel() for v in sd.values())
    cfg = timm.models.get_pretrained_cfg(model)
    stems = [cfg.first_conv] if isinstance(cfg.first_conv, str) else list(cfg.first_conv)
    heads = [cfg.classifier] if isinstance(cfg.classifier, str) else list(cfg.classifier)
    marked = {m["prefix"]: m["mark"] for m in got["modules"] if m["mark"]}
    for name, role in [(n, "stem") for n in stems] + [(n, "classifier") for n in heads]:
        # the module itself, or the deepest shown prefix that holds it
        shown = name if name in marked else ".".join(name.split(".")[:depth])
        assert role in marked[shown] and name in marked[shown], (name, marked)
    # parents come before their children
    order = [m["prefix"] for m in got["modules"]]
    for i, p in enumerate(order):
        if "." in p:
            assert order.index(p.rsplit(".", 1)[0]) < i

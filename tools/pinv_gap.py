#!/usr/bin/env python3
"""Where the pseudo-inverse patch-embedding gap comes from (docs/conversion.md, Resolution).

timm 1.0.31's `resample_patch_embed` takes `torch.linalg.pinv` of the float32 resize matrix;
timmconv takes the pseudo-inverse of the same float32 matrix by SVD in double. This script
compares both with the exact answer (the same float32 matrix, pinv and product in float64, rounded
once to float32), tensor by tensor and through the model's logits, for the issue's two patch
cases. Pinned: torch 2.11.0, timm 1.0.31. Run from the repository root after `cargo build`:

    PY=~/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python
    $PY tools/pinv_gap.py [--init timm|randn]

`--init timm` (default) uses timm's own initialisation (seeded), the scale real checkpoints have;
`--init randn` uses the N(0, 1) weights of tests/python/test_resolution.py.
"""

import argparse
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import safetensors.torch
import timm
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
CASES = [("flexivit_small", 8, "bilinear", False), ("vit_small_patch16_224", 14, "bicubic", True)]


def exact(w, new, mode, antialias):
    old = w.shape[-2:]
    eye = torch.eye(old[0] * old[1]).reshape(-1, 1, *old)
    m = F.interpolate(eye, size=(new, new), mode=mode, antialias=antialias, align_corners=False)
    m = m.squeeze(1).permute(1, 2, 0).reshape(new * new, -1).double()
    pinv = torch.linalg.pinv(m)
    c_out, c_in = w.shape[:2]
    return (w.reshape(c_out, c_in, -1).double() @ pinv).reshape(c_out, c_in, new, new).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", choices=["timm", "randn"], default="timm")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    for name, patch, mode, aa in CASES:
        with tempfile.TemporaryDirectory() as d:
            torch.manual_seed(0)
            m = timm.create_model(name)
            sd = m.state_dict()
            if args.init == "randn":
                g = torch.Generator().manual_seed(0)
                sd = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in sd.items()}
            src, out = Path(d) / "src.safetensors", Path(d) / "out.safetensors"
            safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
            r = subprocess.run([BIN, "convert", str(src), "-o", str(out), "--model", name, "--patch-size", str(patch), "-q", "--no-hash"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            got = safetensors.torch.load_file(str(out))
            ref = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), patch_size=patch).eval()
            key = "patch_embed.proj.weight"
            torch_w = ref.state_dict()[key].clone()
            ex = exact(sd[key], patch, mode, aa)
            scale = max(1.0, ex.abs().max().item())
            print(f"{name} --init {args.init}, patch {sd[key].shape[-1]} -> {patch} ({mode}{', antialias' if aa else ''}), max|w| {ex.abs().max().item():.3g}")
            print(f"  tensor: max|timmconv - exact| = {(got[key] - ex).abs().max().item():.3g}, max|torch - exact| = {(torch_w - ex).abs().max().item():.3g}, max|timmconv - torch| = {(got[key] - torch_w).abs().max().item():.3g}  (issue bound 1e-5 x {scale:.3g})")
            g = torch.Generator().manual_seed(1)
            x = torch.randn(4, 3, *ref.patch_embed.img_size, generator=g)
            logits = {}
            with torch.no_grad():
                for label, w in [("torch", torch_w), ("exact", ex), ("timmconv", got[key])]:
                    ref.patch_embed.proj.weight.copy_(w)
                    logits[label] = ref(x)

            def gap(a, b):
                # verify's criterion: |a - b| <= atol + rtol |b|, atol = rtol = 1e-5
                d = (logits[a] - logits[b]).abs()
                worst = (d / (1e-5 + 1e-5 * logits[b].abs())).max().item()
                return f"max|diff| {d.max().item():.3g}, worst (|diff| / (atol + rtol|ref|)) {worst:.3g}"

            print(f"  logits (max|ref| {logits['torch'].abs().max().item():.3g}): timmconv vs torch: {gap('timmconv', 'torch')}; timmconv vs exact: {gap('timmconv', 'exact')}; torch vs exact: {gap('torch', 'exact')}")


if __name__ == "__main__":
    main()

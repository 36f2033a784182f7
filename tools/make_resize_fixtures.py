#!/usr/bin/env python3
"""Fixtures for the Rust tests of the resampling numerics (tests/resolution.rs): inputs and what
torch 2.11.0 / timm 1.0.31 compute from them on CPU, in fixtures/resize/.

    ~/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python tools/make_resize_fixtures.py

- interp.*: F.interpolate on (C, H, W) planes for bicubic/bilinear, with and without antialias,
  up and down, square and rectangular;
- pinv.*: timm's resample_patch_embed on an (O, I, h, w) kernel;
- rel.*: timm's resize_rel_pos_bias_table (default torch path) on flat and 3-D tables;
- cl.*: plain bilinear on channels-last planes as timm's resample_abs_pos_embed hands them to
  F.interpolate (FlexiViT, RADIO with and without align_corners), 13 channels (8 in the
  vector loop, 5 in the scalar tail), asserted bit for bit.

torch's resampling kernels are picked by CPU capability and do not give the same bits everywhere
(tests/resolution.rs says how far they move): the committed fixtures were made at the AVX-512
capability, which the `capability` field of cases.json records for a regenerated set.
"""

import json
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed, resize_rel_pos_bias_table

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "resize"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tensors, cases = {}, []
    for i, (mode, aa, frm, to) in enumerate([
        ("bicubic", True, (14, 14), (24, 24)),
        ("bicubic", True, (14, 14), (9, 9)),
        ("bicubic", True, (16, 16), (14, 20)),
        ("bicubic", True, (7, 5), (3, 11)),
        ("bilinear", False, (15, 15), (30, 30)),
        ("bilinear", False, (15, 15), (8, 11)),
        ("bicubic", False, (13, 13), (23, 23)),
        ("bilinear", True, (12, 12), (5, 7)),
    ]):
        x = torch.randn(6, *frm, generator=g)
        y = F.interpolate(x[None], size=to, mode=mode, antialias=aa, align_corners=False)[0]
        name = f"interp.{i}"
        tensors[name + ".in"], tensors[name + ".out"] = x, y.contiguous()
        cases.append(dict(name=name, op="interp", mode=mode, antialias=aa, frm=frm, to=to))
    for i, (mode, aa, frm, to) in enumerate([
        ("bicubic", True, (16, 16), (14, 14)),
        ("bilinear", False, (16, 16), (8, 8)),
        ("bicubic", True, (8, 8), (12, 10)),
    ]):
        w = torch.randn(4, 3, *frm, generator=g)
        y = resample_patch_embed(w, list(to), interpolation=mode, antialias=aa)
        name = f"pinv.{i}"
        tensors[name + ".in"], tensors[name + ".out"] = w, y.contiguous()
        cases.append(dict(name=name, op="pinv", mode=mode, antialias=aa, frm=frm, to=to))
    for i, (shape, window, new_shape) in enumerate([
        ((13 * 13 + 3, 4), (12, 12), (23 * 23 + 3, 4)),
        ((13 * 13, 3), (4, 4), (7 * 7, 3)),
        ((2, 13, 13), (9, 9), (2, 17, 17)),
        ((2, 13, 13), (6, 8), (2, 11, 15)),
    ]):
        t = torch.randn(*shape, generator=g)
        y = resize_rel_pos_bias_table(t, new_window_size=window, new_bias_shape=new_shape)
        name = f"rel.{i}"
        tensors[name + ".in"], tensors[name + ".out"] = t, y.contiguous()
        cases.append(dict(name=name, op="rel", window=window, new_shape=new_shape))
    for i, (align, frm, to) in enumerate([
        (False, (15, 15), (26, 26)),
        (True, (32, 32), (24, 40)),
        (True, (12, 12), (37, 37)),
        (False, (32, 32), (90, 90)),
    ]):
        x = torch.randn(1, *frm, 13, generator=g)
        y = F.interpolate(x.permute(0, 3, 1, 2), size=to, mode="bilinear", antialias=False, align_corners=align)[0]
        name = f"cl.{i}"
        tensors[name + ".in"], tensors[name + ".out"] = x[0].permute(2, 0, 1).contiguous(), y.contiguous()
        cases.append(dict(name=name, op="interp", mode="bilinear", antialias=False, align_corners=align, frm=frm, to=to, exact=True))
    safetensors.torch.save_file(tensors, str(OUT / "cases.safetensors"))
    (OUT / "cases.json").write_text(json.dumps(dict(torch=torch.__version__, capability=torch.backends.cpu.get_cpu_capability(), cases=cases), indent=1) + "\n")


if __name__ == "__main__":
    main()

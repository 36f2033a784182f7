#!/usr/bin/env python3
"""Shows that docs/rust.md's three candle divergences are the whole difference, and each matters.

Pinned: torch 2.11.0, timm 1.0.31. Run after the candle program (examples/candle), on its folder:

    python tools/check_candle_divergences.py FIXTURES

For mobileone_s0, efficientvit_m0 and hiera_tiny_224 it builds timm's model from FIXTURES/ARCH.pth
(made by tools/make_candle_fixtures.py), changes it the way candle-transformers 0.11.1's model code
differs from timm's (each change alone, then all together), and compares the logits with candle's
(FIXTURES/ARCH.candle.safetensors, saved by the candle program on ARCH.io.safetensors' input).
Prints one line per change: max |timm changed - candle| relative to max |candle logit|. Exits 1
unless timm with all of an architecture's changes equals candle within 1e-4 and timm without any
does not: then the documented causes are all of the difference, and none is missing.
"""

import sys
from pathlib import Path

import safetensors.torch
import torch

REL_TOL = 1e-4


def mobileone_no_identity(model):
    # candle's mobileone_stage gives block 0 of every stage no identity branch (mobileone.rs:243)
    model.stages[0][1].identity = None


def efficientvit_no_attention_biases(model):
    # candle's cascaded_group_attn has no attention bias (efficientvit.rs:294-296)
    for m in model.modules():
        if hasattr(m, "attention_biases"):
            m.attention_biases.zero_()
    model.train()
    model.eval()  # timm caches the biases per device in eval mode; refresh the cache


def efficientvit_head_eps(model):
    # candle's efficientvit_head: batch_norm(outputs, 1e-6, ..) (efficientvit.rs:439)
    model.head.bn.eps = 1e-6


def hiera_global_one_block_early(model):
    # candle's hiera_blocks: use_mask_attention = s < 2 per stage (hiera.rs:228); timm lags one
    # block (hiera.py:579-584), so the first block of stage 3 still uses mask-unit attention
    model.blocks[model.stage_ends[1] + 1].attn.use_mask_unit_attn = False


def hiera_tanh_gelu(model):
    # candle's mlp: .gelu() is the tanh approximation (hiera.rs:109; candle-core op.rs:631)
    for b in model.blocks:
        b.mlp.act = torch.nn.GELU(approximate="tanh")


CASES = {
    "mobileone_s0": [mobileone_no_identity],
    "efficientvit_m0": [efficientvit_no_attention_biases, efficientvit_head_eps],
    "hiera_tiny_224": [hiera_global_one_block_early, hiera_tanh_gelu],
}


def main():
    import timm

    if torch.__version__.split("+")[0] != "2.11.0" or timm.__version__ != "1.0.31":
        raise SystemExit("need torch 2.11.0 and timm 1.0.31")
    if len(sys.argv) != 2:
        raise SystemExit("usage: check_candle_divergences.py FIXTURES")
    d = Path(sys.argv[1])
    torch.set_grad_enabled(False)
    ok = True
    for arch, changes in CASES.items():
        x = safetensors.torch.load_file(d / f"{arch}.io.safetensors")["input"]
        want = safetensors.torch.load_file(d / f"{arch}.candle.safetensors")["logits"]
        scale = want.abs().max().item()

        def rel(applied):
            src = dict(file=str(d / f"{arch}.pth"))
            model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=src).eval()
            for change in applied:
                change(model)
            return (model(x) - want).abs().max().item() / scale

        none, every = rel([]), rel(changes)
        print(f"{arch}: timm as is {none:.1e}")
        for change in changes:
            print(f"{arch}:   only {change.__name__} {rel([change]):.1e}")
        print(f"{arch}:   all of them {every:.1e}")
        if not (every <= REL_TOL < none):
            ok = False
            print(f"FAIL {arch}: the documented divergences are not the whole difference", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

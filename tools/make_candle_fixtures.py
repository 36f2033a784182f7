#!/usr/bin/env python3
"""Source checkpoints and timm's reference outputs for the candle program (examples/candle).

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root, in the test
venv (tools/setup_venv.sh prints its python):

    python tools/make_candle_fixtures.py OUT_DIR

For each architecture below, into OUT_DIR:

  ARCH.pth             torch.save(model.state_dict()) of timm.create_model(ARCH) with seeded
                       values (see `seeded`), in timm's own key layout: the checkpoint timmconv
                       converts.
  ARCH.io.safetensors  `input` (1x3x224x224, seeded), and what timm computes from it in eval mode:
                       `logits` (the 1000-class head), `pre_logits` (what
                       create_model(ARCH, num_classes=0) returns for the same weights) and
                       `logits_in1` (create_model(ARCH, in_chans=1) loading this checkpoint the way
                       timm loads pretrained weights, fed `input`'s first channel).

Nothing is committed but this script: hiera_tiny_224 alone is 110 MB in f32, and the seven come
to about 220 MB, so tools/test.sh runs this into a temporary folder before the candle program.
The values are deterministic (seeded CPU generators), not downloaded weights: the comparison is of
model code, and random weights exercise every tensor a trained checkpoint has.
"""

import sys
from pathlib import Path

import safetensors.torch
import torch

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"
SIZE = 224

# the architectures candle-transformers 0.11.1 has constructors for, smallest variant each
ARCHS = [
    "convnext_atto",
    "repvgg_a0",
    "mobilenetv4_conv_small",
    "fastvit_t8",
    "mobileone_s0",
    "efficientvit_m0",
    "hiera_tiny_224",
]


def seeded(model, seed):
    """Every floating-point parameter gets seeded noise, and BatchNorm statistics are measured.

    timm's own init leaves many tensors at a constant (BatchNorm affine at 1 and 0, layer scales
    at 1e-6, EfficientViT's attention_biases at 0), and a model that ignores a constant tensor can
    still match; so every parameter gets noise, a larger one where timm's init is a constant.
    BatchNorm running statistics are then those of seeded inputs (one train-mode pass, cumulative
    average), as after training: statistics drawn at random let activations grow through a deep
    net until the logits are ~1e17 and nothing can be compared.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            scale = 0.2 if p.numel() > 1 and bool((p == p.flatten()[0]).all()) else 0.02
            p.add_(torch.randn(p.shape, generator=g) * scale)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if bns:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            model.train()
            model(torch.randn((8, 3, SIZE, SIZE), generator=g))
        model.eval()


def main():
    import timm

    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        raise SystemExit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} and {timm.__version__}")
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_candle_fixtures.py OUT_DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    for i, arch in enumerate(ARCHS):
        torch.manual_seed(i)
        model = timm.create_model(arch)
        seeded(model, 1000 + i)
        src = out / f"{arch}.pth"
        torch.save(model.state_dict(), src)
        x = torch.randn((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(i))
        feats = model.forward_features(x)
        io = {
            "input": x,
            "logits": model.forward_head(feats),
            "pre_logits": model.forward_head(feats, pre_logits=True),
        }
        # timm's own in_chans=1 adaptation of the stem, as create_model(pretrained=True) does it
        gray = timm.create_model(
            arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), in_chans=1
        ).eval()
        io["logits_in1"] = gray(x[:, :1])
        safetensors.torch.save_file({k: v.contiguous() for k, v in io.items()}, out / f"{arch}.io.safetensors")
        print(f"{arch}: {sum(t.numel() for t in model.state_dict().values())} values -> {src}", file=sys.stderr)


if __name__ == "__main__":
    main()

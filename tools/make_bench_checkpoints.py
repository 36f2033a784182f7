#!/usr/bin/env python3
"""Write the benchmark checkpoints: real timm architectures, random init, torch.save'd.

    .venv/bin/python tools/make_bench_checkpoints.py [DIR]   (default /tmp/timmconv-bench)

They are large (0.35 to 1.2 GB each), so they live outside the repository.
Pinned: torch 2.11.0, timm 1.0.31.
"""

import sys
from pathlib import Path

import torch
import timm

CHECKPOINTS = [
    ("vit_base_patch16_224", torch.float32),
    ("convnext_base", torch.float32),
    ("vit_large_patch16_224", torch.float32),
    ("vit_large_patch16_224", torch.bfloat16),
]
NAMES = {torch.float32: "f32", torch.bfloat16: "bf16"}


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/timmconv-bench")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for arch, dtype in CHECKPOINTS:
        path = out / f"{arch}.{NAMES[dtype]}.pth"
        if path.exists():
            continue
        model = timm.create_model(arch)
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        torch.save(sd, path)
        print(f"{path} {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()

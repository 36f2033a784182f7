"""Build a test zoo for `timmconv batch`: random-init timm checkpoints and a manifest.

Usage: python tools/make_zoo.py OUT_DIR [--per-family N] [--tags TAG,TAG,...]

`--tags` takes real architectures instead of timm's tiny `test_*` models (a zoo of mid-size
files for throughput: `--tags resnet50.a1_in1k,convnext_tiny.fb_in1k --per-family 3`).

Writes OUT_DIR/ckpt/*.pth (one per family and seed, the formats timm's own checkpoints come in:
a bare state dict, {"state_dict": ...}, {"model": ..., "model_ema": ...}), one corrupt file
(a truncated zip) and OUT_DIR/manifest.jsonl with one `convert` job per checkpoint, cycling
through variants (in_chans, headless, bf16, new classes). Pinned: torch 2.11.0, timm 1.0.31
(tools/setup_venv.sh). Random weights: the conversion does not depend on their values.
"""

import argparse
import json
import pathlib

import timm
import torch

VARIANTS = [
    [],
    ["--in-chans", "4"],
    ["--num-classes", "0"],
    ["--dtype", "bf16"],
    ["--in-chans", "1", "--num-classes", "10"],
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--per-family", type=int, default=5)
    p.add_argument("--tags", help="pretrained tags to build, comma-separated (default: test_*)")
    a = p.parse_args()
    out = pathlib.Path(a.out)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    tags = sorted(a.tags.split(",") if a.tags else timm.list_pretrained("test_*"))
    lines = []
    for tag in tags:
        arch = tag.split(".")[0]
        for seed in range(a.per_family):
            torch.manual_seed(seed)
            sd = timm.create_model(arch, pretrained=False).state_dict()
            wrap = seed % 3
            obj = sd if wrap == 0 else {"state_dict": sd} if wrap == 1 else {"model": sd, "epoch": seed}
            name = f"{arch}-s{seed}.pth"
            torch.save(obj, out / "ckpt" / name)
            k = len(lines)
            variant = VARIANTS[k % len(VARIANTS)]
            lines.append({
                "input": f"ckpt/{name}",
                "output": f"out/{arch}-s{seed}-v{k % len(VARIANTS)}.safetensors",
                "args": ["--model", tag, *variant],
            })
    good = (out / "ckpt" / lines[0]["input"].split("/")[1]).read_bytes()
    (out / "ckpt" / "corrupt.pth").write_bytes(good[: len(good) // 2])
    lines.insert(len(lines) // 2, {
        "input": "ckpt/corrupt.pth",
        "output": "out/corrupt.safetensors",
        "args": ["--model", tags[0]],
    })
    with open(out / "manifest.jsonl", "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
    print(f"{len(lines)} jobs, {len(tags)} families -> {out / 'manifest.jsonl'}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build a `timmconv batch` manifest for a mirror of timm's pretrained zoo.

    timmconv models --pretrained --json > tags.json
    python tools/zoo_manifest.py tags.json CKPT_DIR OUT_DIR [--variant "--in-chans 4"]... > manifest.jsonl

Every tag of `tags.json` (the output of `timmconv models [PATTERN] --pretrained --json`) whose
checkpoint is in CKPT_DIR — as `<tag>.safetensors`, `<tag>.pth`, `<tag>.bin`, or a hub folder
`<tag>/` — becomes one job per variant: `{"input", "output", "args"}` with `--model <tag>` and the
variant's flags; outputs are `OUT_DIR/<tag>/<variant name>.safetensors`. Without --variant the
variants are: unchanged, 4 channels, headless, bf16. Tags without a checkpoint are listed on
stderr. Paths are written as given (relative ones stay relative to the manifest's folder).
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

DEFAULT_VARIANTS = ["", "--in-chans 4", "--num-classes 0", "--dtype bf16"]
SUFFIXES = [".safetensors", ".pth", ".bin"]


def variant_name(flags):
    if not flags:
        return "as-trained"
    return "_".join(f.lstrip("-").replace("-", "_") for f in shlex.split(flags))


def checkpoint(ckpt_dir: Path, tag: str):
    for suffix in SUFFIXES:
        path = ckpt_dir / f"{tag}{suffix}"
        if path.is_file():
            return path
    folder = ckpt_dir / tag
    if folder.is_dir():
        return folder
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tags", help="JSON list from `timmconv models --pretrained --json`")
    p.add_argument("ckpt_dir")
    p.add_argument("out_dir")
    p.add_argument("--variant", action="append", help="convert flags of one variant (repeatable)")
    a = p.parse_args()
    tags = json.loads(Path(a.tags).read_text())
    variants = a.variant if a.variant is not None else DEFAULT_VARIANTS
    missing = 0
    for tag in tags:
        src = checkpoint(Path(a.ckpt_dir), tag)
        if src is None:
            missing += 1
            print(f"no checkpoint for {tag}", file=sys.stderr)
            continue
        for flags in variants:
            out = Path(a.out_dir) / tag / f"{variant_name(flags)}.safetensors"
            args = ["--model", tag, *shlex.split(flags)]
            print(json.dumps({"input": str(src), "output": str(out), "args": args}))
    print(f"{len(tags) - missing} of {len(tags)} tags have a checkpoint", file=sys.stderr)


if __name__ == "__main__":
    main()

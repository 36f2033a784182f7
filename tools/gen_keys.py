#!/usr/bin/env python3
"""Generate timmconv's embedded state-dict keys and shapes of every timm architecture.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root:

    PY=$(bash tools/setup_venv.sh); "$PY" tools/gen_keys.py [--limit N]

Every architecture is built on torch.device('meta') (no memory, no weights) as
`timm.create_model(NAME)` builds it, and its `state_dict()` keys and shapes are recorded, in
order; a pretrained tag whose cfg builds a different model (another num_classes, or another
input size for a model with a fixed input size) is built too and recorded as a delta. That is
exactly what `load_state_dict(strict=True)` compares a checkpoint against.

Writes src/registry/keys.txt.deflate: raw deflate of a text file with
  line 1: a JSON header (versions, counts, build failures)
  `@ARCH` opening an architecture, then one `P SUFFIX SHAPE` line per key, where the key is the
    first P characters of the previous key followed by SUFFIX (front coding), and SHAPE is the
    dimensions joined by `,` (`-` for a 0-dim tensor)
  `%TAG` opening that tag's delta: `+ KEY SHAPE` (added or reshaped) and `- KEY` (absent) lines.
  `%:headless` opening the delta of `timm.create_model(NAME, num_classes=0)`, when it differs
    beyond the classifier's own weight and bias (a head whose norm goes with it, as in LeViT or
    EfficientViT-M: timm builds `Identity` there and drops those keys at load).
"""

import argparse
import json
import sys
import time
import warnings
import zlib
from pathlib import Path

import timm
import torch
from timm.models._registry import get_arch_pretrained_cfgs

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "registry" / "keys.txt.deflate"


def state(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
    out = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    for k, _ in out:
        assert k and not any(c.isspace() for c in k), f"{name}: key {k!r}"
    return model, out


def shape_text(s):
    return ",".join(str(d) for d in s) if s else "-"


def common(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def differs(cfg, default_cfg, fixed):
    if cfg.num_classes != default_cfg.num_classes:
        return True
    return fixed and tuple(cfg.input_size or ()) != tuple(default_cfg.input_size or ())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N architectures (for a quick try)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        sys.exit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} / {timm.__version__}")
    torch.set_num_threads(1)
    names = sorted(timm.list_models(), key=lambda n: n.encode())
    if args.limit:
        names = names[: args.limit]
    body, failures, deltas, headless = [], [], 0, 0
    start = time.time()
    for i, name in enumerate(names):
        try:
            model, keys = state(name)
        except Exception as e:  # noqa: BLE001 - recorded, like gen_registry's build_error
            failures.append(name)
            print(f"{name}: {type(e).__name__}: {e}"[:200], file=sys.stderr)
            continue
        body.append(f"@{name}")
        prev = ""
        for k, s in keys:
            p = common(prev, k)
            body.append(f"{p} {k[p:]} {shape_text(s)}")
            prev = k
        default_cfg = model.pretrained_cfg
        fixed = bool(default_cfg.get("fixed_input_size", False))
        base = dict(keys)
        # {"arch.tag": PretrainedCfg}
        cfgs = {k.partition(".")[2]: v for k, v in (get_arch_pretrained_cfgs(name) or {}).items()}
        default_obj = cfgs.get(default_cfg.get("tag") or "", None)
        for tag, cfg in cfgs.items():
            if default_obj is None or not differs(cfg, default_obj, fixed):
                continue
            try:
                _, tkeys = state(f"{name}.{tag}")
            except Exception as e:  # noqa: BLE001
                print(f"{name}.{tag}: {type(e).__name__}: {e}"[:200], file=sys.stderr)
                continue
            tk = dict(tkeys)
            lines = [f"+ {k} {shape_text(s)}" for k, s in tkeys if base.get(k) != s]
            lines += [f"- {k}" for k in base if k not in tk]
            if lines:
                body.append(f"%{tag}")
                body.extend(lines)
                deltas += 1
        # headless: what num_classes=0 removes besides the cfg's classifier weight and bias
        try:
            _, hkeys = state(name, num_classes=0)
        except Exception as e:  # noqa: BLE001
            print(f"{name} num_classes=0: {type(e).__name__}: {e}"[:200], file=sys.stderr)
            hkeys = None
        if hkeys is not None:
            classifiers = default_cfg.get("classifier") or []
            if isinstance(classifiers, str):
                classifiers = [classifiers]
            own = {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}
            hk = dict(hkeys)
            gone = [k for k in base if k not in hk and k not in own]
            if gone:
                body.append("%:headless")
                body.extend(f"- {k}" for k in gone)
                headless += 1
        if i % 100 == 0:
            print(f"{i}/{len(names)} {name} {time.time() - start:.0f}s", file=sys.stderr)
    header = {
        "generator": "tools/gen_keys.py",
        "timm": timm.__version__,
        "torch": torch.__version__.split("+")[0],
        "architectures": len(names) - len(failures),
        "tag_deltas": deltas,
        "headless_deltas": headless,
        "build_failures": failures,
    }
    text = json.dumps(header, sort_keys=True) + "\n" + "\n".join(body) + "\n"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(text.encode()) + c.flush()
    Path(args.out).write_bytes(data)
    print(f"{len(text)} bytes of text -> {len(data)} bytes deflated, {len(failures)} failures, {deltas} tag deltas, {headless} headless deltas, {time.time() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

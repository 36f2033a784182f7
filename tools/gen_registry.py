#!/usr/bin/env python3
"""Generate timmconv's embedded registry of every timm architecture and pretrained tag.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root:

    .venv/bin/python tools/gen_registry.py [--results tools/data/timm-results]

Writes src/registry/registry.jsonl: a header line, then one minified JSON object per
architecture, sorted by name (bytes), so the binary can binary-search a line and parse only it.
Every architecture is built on torch.device('meta') (no memory, no weights) to read
num_features, feature_info, the parameter count, the factory's model_args and global_pool.
Results tables (top-1/top-5 by `arch.tag`; samples/s, GMACs, activations by architecture) are
joined by image size: each tag gets `results_by_size` (one object per size in the tables, figures of
that size only) and `results`, the object at the tag's pretrained `input_size[-1]` (the size
timm's validate.py and benchmark.py record), or the nearest size where the tables have none at it.
"""

import argparse
import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path

import torch
import timm
from timm.models import _registry
from timm.models._input import _get_global_pool, get_model_args, get_model_input_config

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "registry" / "registry.jsonl"


def jsonable(v):
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def number(s):
    try:
        f = float(s.replace(",", "")) if isinstance(s, str) else float(s)  # "1,012.56"
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# (file, size column, {csv column: Results field}); the accuracy table is keyed by
# `arch.tag`, the benchmarks by architecture. Every row is one (name, size).
TABLES = [
    (
        "results-imagenet.csv",
        "img_size",
        {"top1": "top1", "top5": "top5", "param_count": "param_count_m", "crop_pct": "crop_pct"},
    ),
    (
        "benchmark-infer-amp-nchw-pt291-cu130-5090.csv",
        "infer_img_size",
        {"infer_samples_per_sec": "samples_per_sec", "infer_gmacs": "gmacs", "infer_macts": "macts", "param_count": "param_count_m"},
    ),
    ("benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv", "train_img_size", {"train_samples_per_sec": "train_samples_per_sec"}),
]


def load_results(folder):
    """[{name: {size: {field: value}}}] per table of TABLES, keyed by its `model` column and size."""
    folder = Path(folder)
    out = []
    for file, size_col, fields in TABLES:
        path = folder / file
        if not path.exists():
            raise SystemExit(f"{path} missing (pass --results FOLDER)")
        table = {}
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                size = number(row[size_col])
                if size is None:
                    raise SystemExit(f"{path}: row {row['model']} has no {size_col}")
                d = {size_col: size}
                for src, dst in fields.items():
                    if row.get(src) not in (None, ""):
                        v = number(row[src])
                        d[dst] = v if v is not None else row[src]
                by_size = table.setdefault(row["model"], {})
                if size in by_size:
                    raise SystemExit(f"{path}: two rows for {row['model']} at {size}px")
                by_size[size] = d
        out.append(table)
    return out


def results_by_size(tables, full, arch):
    """One Results object per size found for `full` (accuracy) and `arch` (benchmarks), sizes
    ascending; each object holds figures of that size only."""
    acc, infer, train = tables
    rows = [acc.get(full, {}) if full else {}, infer.get(arch, {}), train.get(arch, {})]
    sizes = sorted({s for r in rows for s in r})
    out = []
    for s in sizes:
        d = {}
        # accuracy first: its param_count is the tag's own; the benchmark's fills in where absent
        for r in rows:
            for k, v in r.get(s, {}).items():
                d.setdefault(k, v)
        out.append({k: d[k] for k in RESULT_FIELDS if k in d})
    return out


# the Results struct's field order
RESULT_FIELDS = [
    "top1", "top5", "img_size", "param_count_m", "crop_pct", "samples_per_sec", "infer_img_size",
    "gmacs", "macts", "train_samples_per_sec", "train_img_size",
]


def size_of(r):
    return r.get("img_size") or r.get("infer_img_size") or r.get("train_img_size")


def headline(by_size, want):
    """The figures at `want` px; else those of the nearest size (ties: the smaller), which say
    their own size. Never a mix of sizes."""
    if not by_size:
        return None
    if want is None:
        return by_size[0]
    return min(by_size, key=lambda r: (abs(size_of(r) - want), size_of(r)))


def describe_arch(name):
    """What building the architecture on the meta device tells."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = timm.create_model(name)
    info = {
        "num_features": getattr(model, "num_features", None),
        "param_count": sum(p.numel() for p in model.parameters()),
        "global_pool": _get_global_pool(model),
        "model_args": jsonable(get_model_args(model, {})),
        "fixed_input_size": bool(get_model_input_config(model).get("fixed_input_size", False)),
        "feature_info": None,
    }
    fi = getattr(model, "feature_info", None)
    if isinstance(fi, (list, tuple)):
        info["feature_info"] = [
            {"num_chs": f.get("num_chs"), "reduction": f.get("reduction"), "module": f.get("module")} for f in fi if isinstance(f, dict)
        ]
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=str(ROOT / "tools" / "data" / "timm-results"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N architectures (for a quick try)")
    args = ap.parse_args()
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        raise SystemExit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} and {timm.__version__}")
    results = load_results(args.results)
    archs = timm.list_models()
    pretrained = set(timm.list_pretrained())
    if args.limit:
        archs = archs[: args.limit]
    start = time.time()
    lines = []
    failed = []
    n_tags = 0
    for i, arch in enumerate(archs):
        # the timm module that defines it (`convnext`, `vision_transformer`): its family
        entry = {"name": arch, "module": _registry._model_to_module.get(arch)}
        try:
            entry.update(describe_arch(arch))
        except Exception as e:  # an architecture that cannot build on meta: cfg only
            failed.append(arch)
            entry["build_error"] = f"{type(e).__name__}: {e}"[:300]
        default_cfg = _registry._model_default_cfgs.get(arch)
        tags = list(default_cfg.tags) if default_cfg else []
        entry["default_tag"] = tags[0] if tags else None
        entry["tags"] = []
        for tag in tags:
            # the registered copy: hf_hub_id resolved to `timm/arch.tag`, architecture and tag set
            cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch).to_dict()
            cfg = {k: jsonable(v) for k, v in cfg.items() if v is not None or k in ("pool_size", "first_conv", "classifier")}
            full = f"{arch}.{tag}" if tag else arch
            t = {"tag": tag, "has_weights": full in pretrained, "cfg": cfg}
            by_size = results_by_size(results, full, arch)
            if by_size:
                size = cfg.get("input_size")
                t["results"] = headline(by_size, size[-1] if isinstance(size, list) and size else None)
                t["results_by_size"] = by_size
            entry["tags"].append(t)
            n_tags += t["has_weights"]
        # the architecture's own figures are the benchmarks' (accuracy belongs to a tag): at the
        # default tag's size, else the smallest benchmarked size
        by_size = results_by_size(results, None, arch)
        if by_size:
            size = (entry["tags"][0]["cfg"].get("input_size") if entry["tags"] else None) or [None]
            entry["results"] = headline(by_size, size[-1])
            entry["results_by_size"] = by_size
        lines.append(entry)
        if (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(archs)} in {time.time() - start:.0f}s", file=sys.stderr)
    lines.sort(key=lambda e: e["name"].encode())
    header = {
        "timm": timm.__version__,
        "torch": torch.__version__.split("+")[0],
        "architectures": len(lines),
        "pretrained": n_tags,
        "generator": "tools/gen_registry.py",
        "build_failures": failed,
    }
    with open(OUT, "w") as f:
        f.write(json.dumps(header, separators=(",", ":"), sort_keys=True) + "\n")
        for e in lines:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"{len(lines)} architectures, {n_tags} pretrained tags, {len(failed)} meta-build failures, {time.time() - start:.0f}s -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Record, for every timm architecture, which weights `create_model(arch, features_only=True,
out_indices=...)` holds and under which names, so `timmconv convert --features-only` can write them.

Pinned: torch 2.11.0, timm 1.0.31. Run from the repository root (two shards use both cores):

    .venv/bin/python tools/gen_features.py --shard 0/2 & .venv/bin/python tools/gen_features.py --shard 1/2
    .venv/bin/python tools/gen_features.py --merge

Everything is built on torch.device('meta'). The mapping is taken by tensor identity: the feature
wrappers (FeatureListNet, FeatureGetterNet, ...) reuse the classification model's modules, so the
wrapped model's state-dict tensors are the very objects of the features model's. Models that build
a features class of their own (EfficientNetFeatures, ...) are matched by name and shape. The mapping
is stored compactly and verified here: applying it to the base model's keys must give exactly the
features model's keys, in order.

Per architecture: out_indices (the default), and for the default and for each highest out index
`i`, `keep` (module prefixes, on whole path components, of the base keys kept) plus the renames
(base module prefix -> features module prefix) and a global prefix.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
import timm
from timm.models import _builder

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "registry" / "features.jsonl"
PARTS = ROOT / ".features-parts"

CAPTURED = []
MISMATCHES = []
WRAPPED = set()
# wrapper models whose per-index layouts are built and compared with the derived cut
VERIFY = {
    "test_resnet", "test_convnext", "test_vit", "test_byobnet", "test_nfnet", "test_vit3", "test_maxvit",
    "test_coatnet", "resnet18", "tresnet_m", "crossvit_tiny_240", "swin_tiny_patch4_window7_224",
    "inception_v3", "levit_128", "regnetx_002", "densenet121", "convnext_atto", "deit_tiny_patch16_224",
}


def inner_was_captured(arch):
    return arch in WRAPPED


def capture(cls):
    original = cls.__init__

    def init(self, model, *args, **kwargs):
        # before the wrapper prunes or rearranges anything
        CAPTURED.append(dict(model.state_dict(keep_vars=True)))
        original(self, model, *args, **kwargs)

    cls.__init__ = init


for name in ("FeatureListNet", "FeatureDictNet", "FeatureHookNet", "FeatureGetterNet", "FeatureGraphNet"):
    capture(getattr(_builder, name))


def build(arch, **kwargs):
    CAPTURED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = timm.create_model(arch, **kwargs)
    return model, (CAPTURED[-1] if CAPTURED else None)


def components(key):
    return key.split(".")


def is_prefix(prefix, key):
    return key == prefix or key.startswith(prefix + ".")


def mapping(arch, base_sd, **kwargs):
    """[(base_key, feature_key)] in features order, by identity or by name."""
    feats, inner = build(arch, features_only=True, **kwargs)
    fsd = feats.state_dict(keep_vars=True)
    pairs = []
    if inner is not None:
        WRAPPED.add(arch)
        by_id = {id(v): k for k, v in inner.items()}
        for fk, v in fsd.items():
            bk = by_id.get(id(v))
            if bk is None or bk not in base_sd:
                raise ValueError(f"features key {fk} has no counterpart in the model")
            pairs.append((bk, fk))
    else:
        for fk, v in fsd.items():
            if fk not in base_sd or tuple(base_sd[fk].shape) != tuple(v.shape):
                raise ValueError(f"features key {fk} is not a model key of the same shape")
            pairs.append((fk, fk))
    return pairs, feats


def keep_prefixes(base_keys, kept):
    """Shortest module prefixes covering every kept key and no dropped key."""
    dropped = [k for k in base_keys if k not in kept]
    out = []
    for k in base_keys:
        if k not in kept or any(is_prefix(p, k) for p in out):
            continue
        parts = components(k)
        for n in range(1, len(parts) + 1):
            p = ".".join(parts[:n])
            if not any(is_prefix(p, d) for d in dropped):
                out.append(p)
                break
    return out


def renames(pairs):
    """(global prefix, [(base_prefix, feature_prefix)]) that turn base keys into feature keys."""
    prefix = ""
    if pairs and all(f == "model." + b for b, f in pairs):
        return "model.", []
    rules = {}
    for b, f in pairs:
        if b == f:
            continue
        bp, fp = components(b), components(f)
        # the longest common trailing components are the tensor's own name within the module
        n = 0
        while n < min(len(bp), len(fp)) and bp[-1 - n] == fp[-1 - n]:
            n += 1
        rules[".".join(bp[: len(bp) - n])] = ".".join(fp[: len(fp) - n])
    return prefix, sorted(rules.items(), key=lambda r: (-len(r[0]), r[0]))


def apply(key, prefix, rules):
    for b, f in rules:
        if is_prefix(b, key):
            key = f + key[len(b):]
            break
    return prefix + key


def describe(arch):
    base, _ = build(arch)
    base_sd = base.state_dict(keep_vars=True)
    base_keys = list(base_sd)
    pairs, feats = mapping(arch, base_sd)
    out_indices = list(getattr(feats.feature_info, "out_indices", []) or [])
    n_stages = len(getattr(base, "feature_info", []) or [])
    prefix, rules = renames(pairs)
    result = {"cls": type(feats).__name__, "out_indices": out_indices, "prefix": prefix, "rules": [list(r) for r in rules], "keep": {}}

    def record(label, pairs):
        kept = {b for b, _ in pairs}
        keep = keep_prefixes(base_keys, kept)
        # verify: the compact form reproduces the features model's keys exactly, in order
        got = [apply(k, prefix, rules) for k in base_keys if any(is_prefix(p, k) for p in keep)]
        want = [f for _, f in pairs]
        if got != want:
            if sorted(got) != sorted(want):
                raise ValueError(f"{label}: compact mapping does not reproduce the features keys")
        result["keep"][label] = keep

    record("default", pairs)
    # a wrapper keeps the model's modules up to the one producing the highest out index, so the
    # layout for index i is the default one cut after stage i's module; models with a features
    # class of their own are built for each index (cheap: they are the small CNN families), and
    # so are the sample of wrapper models that checks the cut (VERIFY)
    stage_modules = [f.get("module") for f in (getattr(base, "feature_info", None) or [])]
    default_kept = [b for b in base_keys if b in {x for x, _ in pairs}]
    wrapper = inner_was_captured(arch)
    for i in range(n_stages):
        derived = None
        if wrapper and stage_modules[i]:
            under = [j for j, k in enumerate(default_kept) if is_prefix(stage_modules[i], k)]
            if under:
                cut = default_kept[: under[-1] + 1]
                derived = [(b, apply(b, prefix, rules)) for b in cut]
        if derived is not None and arch not in VERIFY:
            record(str(i), derived)
            continue
        try:
            p, _ = mapping(arch, base_sd, out_indices=(i,))
        except Exception:  # some families accept only some indices
            result["keep"][str(i)] = None
            continue
        if not all(apply(b, prefix, rules) == f for b, f in p):
            raise ValueError(f"out index {i} renames differently")
        if derived is not None and sorted(derived) != sorted(p):
            MISMATCHES.append(f"{arch}[{i}]")
        record(str(i), p)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    if args.merge:
        entries = {}
        for part in sorted(PARTS.glob("part-*.jsonl")):
            for line in part.read_text().splitlines():
                e = json.loads(line)
                entries[e["name"]] = e
        header = {"timm": timm.__version__, "torch": torch.__version__.split("+")[0], "architectures": len(entries), "generator": "tools/gen_features.py"}
        with open(OUT, "w") as f:
            f.write(json.dumps(header, separators=(",", ":"), sort_keys=True) + "\n")
            for name in sorted(entries, key=str.encode):
                f.write(json.dumps(entries[name], separators=(",", ":")) + "\n")
        ok = sum(1 for e in entries.values() if "error" not in e)
        print(f"{len(entries)} architectures, {ok} with a features layout -> {OUT}", file=sys.stderr)
        return
    k, n = map(int, args.shard.split("/"))
    archs = timm.list_models()
    if args.limit:
        archs = archs[: args.limit]
    archs = archs[k::n]
    PARTS.mkdir(exist_ok=True)
    start = time.time()
    with open(PARTS / f"part-{k}.jsonl", "w") as f:
        for i, arch in enumerate(archs):
            entry = {"name": arch}
            try:
                entry.update(describe(arch))
            except Exception as e:
                entry["error"] = f"{type(e).__name__}: {e}"[:300]
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            if MISMATCHES:
                print(f"derived cut differs from timm's build: {MISMATCHES}", file=sys.stderr)
                MISMATCHES.clear()
            if (i + 1) % 100 == 0:
                print(f"shard {k}: {i + 1}/{len(archs)} in {time.time() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Record, for every timm architecture, which resolution knobs (`img_size`, `patch_size`,
`window_size`) its constructor takes, which weights each one reshapes and how timm 1.0.31's
checkpoint filter adapts them, so `timmconv convert --img-size/--patch-size/--window-size` can.

Pinned: torch 2.11.0, timm 1.0.31. Run from the repository root (two shards use both cores):

    PY=~/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python
    $PY tools/gen_resize.py --shard 0/2 & $PY tools/gen_resize.py --shard 1/2; wait
    $PY tools/gen_resize.py --merge

`--pools-only` adds the global_pool data to the entries of an existing resize.jsonl (same shards,
then --merge), resuming where a previous run stopped.

Everything is built on torch.device('meta'): at the default size and at a changed size per knob;
the state-dict shapes are compared. Each changed key is classified (absolute position embedding,
patch embedding, relative-position bias table, LeViT-style attention biases: EfficientViT-M's
window rule is recorded per key and checked against the changed build); a relative-position table also records how its
window follows the knobs (`stride`: the feature stride over the patch size; `clamp`: Swin-style
window clamped to the stage resolution), checked here against both builds. An architecture whose
changed keys fall outside what its family's checkpoint filter resamples gets a refusal: the reason
is what timm itself does (a size mismatch on load) or that timmconv does not port that filter.
Which of the two is read from the family's `checkpoint_filter_fn` source (the module's source
where it has none): SAM ViTs resample in forward, not in their filter, so timm cannot load them.

It also records, per `global_pool` type, whether the constructor takes it and which keys change
(`catavgmax` doubles `num_features`, so the classifier no longer fits), appear or disappear.
"""

import argparse
import inspect
import json
import re
import sys
import warnings
from pathlib import Path

import torch
import timm

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "registry" / "resize.jsonl"
PARTS = ROOT / ".resize-parts"

# timm modules whose checkpoint_filter_fn timmconv ports, and what each resamples
FAMILIES = {
    "timm.models.vision_transformer": {"abs_pos", "patch"},
    "timm.models.deit": {"abs_pos", "patch"},
    "timm.models.eva": {"abs_pos", "patch"},
    "timm.models.beit": {"abs_pos", "patch", "rel_table"},
    "timm.models.swin_transformer": {"patch", "rel_table"},
    "timm.models.maxxvit": {"rel_table"},
    "timm.models.efficientvit_msra": {"attn_bias"},
    "timm.models.mvitv2": {"rel_pos_1d"},
    "timm.models.tnt": {"abs_pos"},
}
# the --global-pool values timmconv offers (timm's SelectAdaptivePool2d types)
POOLS = ("avg", "max", "avgmax", "catavgmax", "")
# buffers the filters drop and the models rebuild
REBUILT = ("relative_position_index", "attn_mask")


def pair(v):
    if v is None:
        return None
    if isinstance(v, int):
        return [v, v]
    return [int(x) for x in v][-2:]


def build(name, **kw):
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return timm.create_model(name, pretrained=False, **kw)


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def classify(key):
    # TNT's outer (patch) position embedding, which its filter resamples like a ViT's
    if key in ("pos_embed", "patch_pos"):
        return "abs_pos"
    if key == "patch_embed.proj.weight":
        return "patch"
    if key.endswith("relative_position_bias_table"):
        return "rel_table"
    if key.endswith("attention_biases"):
        return "attn_bias"
    if key.endswith(("attn.rel_pos_h", "attn.rel_pos_w")):
        return "rel_pos_1d"
    return None


def rel_pos_divisors(name, img, base_shapes):
    """MViTv2's decomposed rel_pos_h/w (2·size - 1, head_dim): size = img // D per key, D fitted
    to the builds at the default and two other square sizes; None for a key no D fits."""
    keys = [k for k in base_shapes if classify(k) == "rel_pos_1d"]
    if not keys:
        return {}
    builds = [(img[0], base_shapes)]
    for s in (img[0] + 64, img[0] + 96):
        builds.append((s, shapes(build(name, img_size=s))))
    out = {}
    for k in keys:
        fit = [d for d in range(1, 257) if all(sh[k][0] == 2 * (s // d) - 1 for s, sh in builds)]
        out[k] = fit[0] if fit else None
    return out


def halve(r, times):
    """EfficientViT (MSRA)'s stage resolution after `times` stride-2 subsamplings."""
    for _ in range(times):
        r = (r - 1) // 2 + 1
    return r


def bias_rule(model, key, img, patch):
    """How a LeViT-style `attention_biases` table (heads, side²) follows img_size in
    EfficientViT (MSRA): side = min(window, the stage resolution), where the stage resolution is
    min(img) // patch halved (rounding up) once per subsampling before the stage. None when the
    default build does not fit that rule."""
    parts = key.split(".")[:-1]
    side = getattr(model.get_submodule(".".join(parts)), "resolution", None)
    for i in range(len(parts), 0, -1):
        m = model.get_submodule(".".join(parts[:i]))
        if hasattr(m, "window_resolution") and hasattr(m, "resolution"):
            r0 = min(img) // patch[0]
            for d in range(8):
                if halve(r0, d) == m.resolution:
                    rule = {"window": int(m.window_resolution), "patch": int(patch[0]), "halvings": d}
                    return rule if predict_side(rule, img) == side else None
            return None
    return None


def predict_side(rule, img):
    return min(rule["window"], halve(min(img) // rule["patch"], rule["halvings"]))


def default_patch(model):
    pe = getattr(model, "patch_embed", None) or getattr(model, "pixel_embed", None)
    p = getattr(pe, "patch_size", None)
    return pair(p)


def default_grid(model):
    pe = getattr(model, "patch_embed", None) or getattr(model, "pixel_embed", None)
    return pair(getattr(pe, "grid_size", None))


def hybrid_rounding(name, img, patch, grid):
    """Hybrid ViTs embed a backbone's feature map (stride = img / (grid · patch) > 1); at a size
    that is not a multiple of the stride the feature map rounds up (ResNet, ViTamin stems) or
    down (MobileCLIP's): "ceil" or "floor" when builds at two such sizes agree, else None."""
    if not (img and patch and grid) or grid[0] * patch[0] == 0:
        return None
    stride = img[0] // (grid[0] * patch[0])
    if stride <= 1 or img[0] % (grid[0] * patch[0]):
        return None
    found = set()
    for s in (img[0] + stride // 2 + 1, img[0] - stride // 2 + 3):
        try:
            g = default_grid(build(name, img_size=s))
        except Exception:  # noqa: BLE001 - timm cannot build it there: no rule
            return None
        f = (s // stride, -(-s // stride))
        if patch[0] != 1 or g is None:
            return None
        found.add("floor" if g[0] == f[0] else "ceil" if g[0] == f[1] else None)
    return found.pop() if len(found) == 1 and None not in found else None


def window_of(model, key):
    m = model.get_submodule(key[: -len(".relative_position_bias_table")])
    return pair(getattr(m, "window_size", None))


def resolution_of(model, key):
    """The stage resolution a Swin-style block clamps its window to."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            m = model.get_submodule(".".join(parts[:i]))
        except AttributeError:
            continue
        r = getattr(m, "input_resolution", None)
        if r is not None:
            return pair(r)
    return None


def unexpected(ex, knob):
    """Whether a TypeError is the constructor's refusal of the keyword `knob` itself."""
    # Python's own wording names one argument ("unexpected keyword argument 'img_size'"), some
    # timm constructors list them ("unexpected keyword argument(s): ['img_size']")
    return "unexpected keyword argument" in str(ex) and f"'{knob}'" in str(ex)


def build_probe(name, knob, kw):
    """`build(name, **kw)`; where the probe's extra img_size is what the constructor refuses
    (a window_size without an img_size), the knob alone."""
    try:
        return build(name, **kw)
    except TypeError as ex:
        if len(kw) > 1 and unexpected(ex, "img_size") and knob != "img_size":
            return build(name, **{knob: kw[knob]})
        raise


def knob_probe(knob, img, patch, window):
    if knob == "img_size":
        return {"img_size": [img[0] + 64, img[1] + 64] if img[0] < 384 else [img[0] - 64, img[1] - 64]}
    if knob == "patch_size":
        return {"patch_size": 8 if patch[0] != 8 else 16}
    # a window change only shows where the stages are large enough: also raise the image size
    return {"window_size": window[0] + 5, "img_size": img[0] + 160}


def probe_pools(name, base_shapes):
    """global_pool: which pool types the constructor takes, and which keys each one changes."""
    pools = {}
    for pool in POOLS:
        try:
            m = build(name, global_pool=pool)
        except Exception as ex:  # noqa: BLE001 - refused by timm: recorded with its reason
            pools[pool] = {"error": f"{type(ex).__name__}: {ex}"[:200]}
            continue
        new = shapes(m)
        pools[pool] = {
            "changed": sorted(k for k in new if k in base_shapes and new[k] != base_shapes[k]),
            "added": sorted(k for k in new if k not in base_shapes),
            "removed": sorted(k for k in base_shapes if k not in new),
        }
    return pools


def entry(name):
    e = {"name": name}
    base = build(name)
    cfg = base.pretrained_cfg or {}
    img = pair(cfg.get("input_size", (3, 224, 224))[-2:])
    e["img_size"] = img
    patch = default_patch(base)
    e["patch_size"] = patch
    e["grid_size"] = default_grid(base)
    rounding = hybrid_rounding(name, img, patch, e["grid_size"])
    if rounding:
        e["grid_round"] = rounding
    e["prefix_tokens"] = 0 if getattr(base, "no_embed_class", False) else int(getattr(base, "num_prefix_tokens", 0))
    e["no_embed_class"] = bool(getattr(base, "no_embed_class", False))
    module = type(base).__module__
    e["family"] = module.rsplit(".", 1)[-1]
    handled = FAMILIES.get(module, set())
    # _create_vision_transformer's filter choice: FlexiViT and RADIO resample bilinear without
    # antialias, RADIO's position embedding with the align_corners of each checkpoint's own code
    # (its _RADIO_ALIGN_CORNERS)
    plain = e["family"] == "vision_transformer" and ("flexi" in name or "radio" in name)
    e["interpolation"] = "bilinear" if plain else "bicubic"
    e["antialias"] = not plain
    if e["family"] == "vision_transformer" and "radio" in name:
        vt = sys.modules["timm.models.vision_transformer"]
        e["align_corners"] = any(n in name for n in vt._RADIO_ALIGN_CORNERS)
    elif "radio" in name:
        handled = set()
    # a learned table of (1, tokens, dim); XCiT's pos_embed is a module computing its encoding
    if isinstance(getattr(base, "pos_embed", None), torch.Tensor) and base.pos_embed.ndim != 3:
        handled = handled - {"abs_pos"}
    # the filter's own source where the family has one (vision_transformer_sam's module resamples
    # at forward time, its filter does not)
    filt = getattr(sys.modules[module], "checkpoint_filter_fn", None)
    source = inspect.getsource(filt) if filt is not None else inspect.getsource(sys.modules[module])
    # any of timm's resampling helpers (resize_rel_pos_bias_table_levit, ..._nhwc, ...)
    filter_resamples = re.search(r"(resample_abs_pos_embed|resample_patch_embed|resize_rel_pos_bias_table)\w*\(", source) is not None
    base_shapes = shapes(base)
    windows = {k: window_of(base, k) for k in base_shapes if classify(k) == "rel_table"}
    e["window_size"] = None
    ws = [w for w in windows.values() if w]
    if ws:
        e["window_size"] = max(ws)
    wsig = getattr(base, "window_size", None)
    # each table's own target window (Swin-S3 has one per stage): what it is where no stage clamps it
    targets = {}
    if windows:
        try:
            big = build(name, img_size=[img[0] * 4, img[1] * 4])
            targets = {k: window_of(big, k) for k in windows}
        except Exception:  # noqa: BLE001 - no per-table windows: the model's one window applies
            targets = {}
    knobs, refuse, rel = [], {}, {}
    biases = {}
    divisors = rel_pos_divisors(name, img, base_shapes) if "rel_pos_1d" in handled else {}
    if "attn_bias" in handled:
        for k in base_shapes:
            if classify(k) == "attn_bias":
                biases[k] = bias_rule(base, k, img, patch or [1, 1])
    # every knob is asked of timm for every architecture (a ConvNeXt takes patch_size for its
    # stem, a DaViT window_size without relative tables): whether timm builds it decides what is
    # accepted, the shapes that change decide what is refused
    for knob in ("img_size", "patch_size", "window_size"):
        kw = knob_probe(knob, img, patch or [1, 1], e["window_size"] or [7, 7])
        try:
            m = build_probe(name, knob, kw)
        except TypeError as ex:
            if unexpected(ex, knob):
                continue
            refuse[knob] = f"timm 1.0.31 cannot build it with {knob}: {type(ex).__name__}: {ex}"[:300]
            knobs.append(knob)
            continue
        except Exception as ex:  # noqa: BLE001 - any failure is a refusal with timm's reason
            refuse[knob] = f"timm 1.0.31 cannot build it with {knob}: {type(ex).__name__}: {ex}"[:300]
            knobs.append(knob)
            continue
        knobs.append(knob)
        new = shapes(m)
        changed = []
        for k, s in new.items():
            if k in base_shapes and base_shapes[k] != s:
                changed.append(k)
            if k not in base_shapes and not k.endswith(REBUILT):
                refuse[knob] = f"the model at another {knob} holds `{k}`, which the checkpoint lacks"
        for k in base_shapes:
            if k not in new and not k.endswith(REBUILT):
                refuse[knob] = f"the model at another {knob} lacks `{k}`, which the checkpoint holds"
        bad = [k for k in changed if classify(k) not in handled]
        if bad and knob not in refuse:
            k = bad[0]
            if filter_resamples:
                why = "timmconv does not port this family's resampling of it"
            else:
                why = f"timm 1.0.31's {e['family']} checkpoint filter does not resample it, so timm cannot load the weights"
            refuse[knob] = f"`{k}` changes shape {base_shapes[k]} -> {new[k]} and {why}"
        for k in changed:
            if classify(k) == "rel_pos_1d" and knob not in refuse:
                ni = pair(kw.get("img_size", img))
                if divisors.get(k) is None or new[k][0] != 2 * (ni[0] // divisors[k]) - 1:
                    refuse[knob] = f"timmconv cannot predict the length of `{k}`"
        for k in changed:
            if classify(k) == "attn_bias" and knob not in refuse:
                side = getattr(m.get_submodule(k.rsplit(".", 1)[0]), "resolution", None)
                ni = pair(kw.get("img_size", img))
                if biases.get(k) is None or predict_side(biases[k], ni) != side:
                    refuse[knob] = f"timmconv cannot predict the attention window of `{k}`"
        for k in changed:
            if classify(k) == "rel_table" and knob not in refuse:
                w0, w1 = windows[k], window_of(m, k)
                res0, res1 = resolution_of(base, k), resolution_of(m, k)
                pp = patch or [1, 1]
                r = rel.setdefault(k, {})
                if res0 is not None:
                    r["clamp"] = True
                    r["stride"] = [img[0] // (res0[0] * pp[0]) if res0[0] else 0, img[1] // (res0[1] * pp[1]) if res0[1] else 0]
                else:
                    r["clamp"] = False
                    r["stride"] = [img[0] // (w0[0] * pp[0]), img[1] // (w0[1] * pp[1])]
                # check the rule predicts the changed build
                ni = pair(kw.get("img_size", img))
                npp = pair(kw.get("patch_size", pp))
                nwin = pair(kw.get("window_size")) or targets.get(k) or e["window_size"]
                # stages halve rounding up (Swin's PatchMerging pads, timm's output_resolution)
                feat = [-(-(ni[i] // npp[i]) // r["stride"][i]) for i in range(2)]
                pred = [min(nwin[i], feat[i]) for i in range(2)] if r["clamp"] else feat
                if pred != w1:
                    refuse[knob] = f"timmconv cannot predict the window of `{k}` ({w1}, not {pred})"
                shape = base_shapes[k]
                r["extra"] = shape[0] - (2 * w0[0] - 1) * (2 * w0[1] - 1) if len(shape) == 2 else 0
                if r["clamp"] and targets.get(k):
                    r["window"] = targets[k]
    # every table, also those the probes did not change (Swin's clamped last stages)
    if rel:
        template = next(iter(rel.values()))
        for k, w0 in windows.items():
            if k in rel:
                continue
            res0 = resolution_of(base, k)
            pp = patch or [1, 1]
            shape = base_shapes[k]
            rel[k] = {
                "clamp": res0 is not None,
                "stride": [img[0] // (res0[0] * pp[0]), img[1] // (res0[1] * pp[1])] if res0 else [img[0] // (w0[0] * pp[0]), img[1] // (w0[1] * pp[1])],
                "extra": shape[0] - (2 * w0[0] - 1) * (2 * w0[1] - 1) if len(shape) == 2 else 0,
            }
            if res0 is not None and targets.get(k):
                rel[k]["window"] = targets[k]
            del template
            template = None
    e["pools"] = probe_pools(name, base_shapes)
    e["knobs"] = knobs
    if refuse:
        e["refuse"] = refuse
    if rel:
        e["rel_tables"] = {k: rel[k] for k in sorted(rel)}
    if divisors and "img_size" in knobs and "img_size" not in refuse:
        e["rel_pos_1d"] = {k: divisors[k] for k in sorted(divisors)}
    if biases and "img_size" in knobs and "img_size" not in refuse:
        e["attn_biases"] = {k: biases[k] for k in sorted(biases)}
    del wsig
    return e


def accepts(name, knob):
    """Whether timm 1.0.31 builds `name` with `knob` changed (the probe `entry` uses), asked of
    timm itself: True, False for an unexpected-keyword TypeError, else timm's error text."""
    base = build(name)
    img = pair((base.pretrained_cfg or {}).get("input_size", (3, 224, 224))[-2:])
    patch = default_patch(base) or [1, 1]
    try:
        build_probe(name, knob, knob_probe(knob, img, patch, [7, 7]))
    except TypeError as ex:
        if unexpected(ex, knob):
            return False
        return f"{type(ex).__name__}: {ex}"[:200]
    except Exception as ex:  # noqa: BLE001 - timm's own refusal, recorded with its reason
        return f"{type(ex).__name__}: {ex}"[:200]
    return True


def unanalysed(name, error):
    """An entry for an architecture whose analysis failed: the knobs timm accepts are still
    recorded (so nothing is reported as "takes no img_size" that timm takes), each refused with
    what was checked."""
    e = {"name": name, "knobs": [], "error": error}
    refuse = {}
    for knob in ("img_size", "patch_size", "window_size"):
        try:
            ok = accepts(name, knob)
        except Exception:  # noqa: BLE001 - not even the default build: nothing is accepted
            continue
        if ok is False:
            continue
        e["knobs"].append(knob)
        refuse[knob] = (f"timm 1.0.31 builds it with {knob}, but timmconv could not analyse the change: {error}"
                        if ok is True else f"timm 1.0.31 cannot build it with {knob}: {ok}")[:300]
    if refuse:
        e["refuse"] = refuse
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--pools-only", action="store_true", help="add pool data to the existing resize.jsonl entries")
    args = ap.parse_args()
    if args.merge:
        # entries of the existing file stay unless a part replaces them (a --pools-only pass that
        # stopped early leaves the rest without pool data)
        merged = {}
        if OUT.exists():
            merged = {json.loads(l)["name"]: json.loads(l) for l in OUT.read_text().splitlines()[1:]}
        for p in sorted(PARTS.glob("*.jsonl")):
            for l in p.read_text().splitlines():
                if l.strip():
                    e = json.loads(l)
                    merged[e["name"]] = e
        lines = sorted(merged.values(), key=lambda e: e["name"].encode())
        header = {
            "architectures": len(lines),
            "generator": "tools/gen_resize.py",
            "timm": timm.__version__,
            "torch": torch.__version__.split("+")[0],
        }
        with OUT.open("w") as f:
            f.write(json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
            for e in lines:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        print(f"wrote {OUT} ({len(lines)} architectures)")
        return
    i, n = (int(x) for x in args.shard.split("/"))
    names = args.only or timm.list_models()
    PARTS.mkdir(exist_ok=True)
    if args.pools_only:
        existing = {json.loads(l)["name"]: json.loads(l) for l in OUT.read_text().splitlines()[1:]}
        out = PARTS / f"part{i}.jsonl"
        done = {json.loads(l)["name"] for l in out.read_text().splitlines()} if out.exists() else set()
        with out.open("a") as f:
            for j, name in enumerate(names):
                if j % n != i or name in done:
                    continue
                e = existing[name]
                try:
                    e["pools"] = probe_pools(name, shapes(build(name)))
                except Exception as ex:  # noqa: BLE001
                    e["pools"] = {}
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
                f.flush()
        return
    out = PARTS / f"part{i}.jsonl"
    with out.open("w") as f:
        for j, name in enumerate(names):
            if j % n != i:
                continue
            try:
                e = entry(name)
            except Exception as ex:  # noqa: BLE001
                e = unanalysed(name, f"{type(ex).__name__}: {ex}"[:300])
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
            f.flush()


if __name__ == "__main__":
    main()

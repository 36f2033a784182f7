#!/usr/bin/env python3
"""Sweep `timmconv convert --img-size` over every architecture whose constructor takes `img_size`
(from src/registry/resize.jsonl): each gets a checkpoint of seeded random weights at its default
size and a target size drawn from a seeded generator; timm 1.0.31 loads it at that size and
timmconv converts it. An architecture passes when both succeed and every tensor matches
(resampled float32 within 1e-6·max(1, max|ref|), 1e-5 for pseudo-inverse patch embeddings,
resampled float16/bfloat16 within one unit in the last place; everything else bit-identical), or
when both refuse. Not run in CI (it builds hundreds of models).

The reference is timm's own loading path, run lean so that every size fits in memory: the model is
built on the meta device (`create_model(NAME, pretrained=True,
pretrained_cfg_overlay=dict(file=SRC), img_size=SIZE)`), timm's `load_pretrained` (its checkpoint
filter, the strict `load_state_dict` against the model's keys and shapes) runs on the real
tensors, and what it hands `load_state_dict` is the reference. Sources are written tensor by
tensor from seeded normals (std 0.02) straight from the meta build's keys, float32 up to
`--bf16-above` million parameters and bfloat16 above. `--full` uses timm's own init and a real
`create_model` instead (two float32 models in memory).

    PY=~/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python
    $PY tools/sweep_resize.py --max-params 1000 --out sweep.jsonl [--shard 0/2]
    $PY tools/sweep_resize.py --min-params 1000 --out big.jsonl
    $PY tools/sweep_resize.py --summary sweep.jsonl   # several files: cat them first

`--max-params` (millions, from the embedded registry) bounds the time: larger architectures are
recorded as skipped ("over the parameter bound"), so the summary counts them; `--min-params`
leaves the smaller ones to another run. Architectures run smallest first, so a sweep stopped
early has covered the most; a rerun with the same `--out` resumes after the last recorded
architecture (`--rerun-failed` runs the failures again and keeps their newest row). Each
model's files live in a temporary folder (`SWEEP_TMP`) removed right after its check.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import safetensors
import safetensors.torch
import timm
import torch

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))


# timm's error when it tries to download something (offline machine)
NETWORK = "LocalEntryNotFoundError"


def layouts():
    lines = (ROOT / "src" / "registry" / "resize.jsonl").read_text().splitlines()[1:]
    return [json.loads(l) for l in lines]


def params():
    out = {}
    for l in (ROOT / "src" / "registry" / "registry.jsonl").read_text().splitlines()[1:]:
        e = json.loads(l)
        out[e["name"]] = e.get("param_count")
    return out


def draw(e):
    rng = random.Random(f"sweep:{e['name']}")
    img = e.get("img_size") or [224, 224]
    step = 2 * (e.get("patch_size") or [16, 16])[0] if e.get("patch_size") else 32
    k = rng.choice([-2, -1, 1, 2, 3])
    return max(step * 2, img[0] + k * step)


def source(name, path):
    # timm's own init (seeded): tied modules (CoaT's shared conv position encodings) keep equal
    # values under each of their keys, as in a real checkpoint
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = timm.create_model(name)
    safetensors.torch.save_file({k: v.contiguous().clone() for k, v in m.state_dict().items()}, str(path))


def meta_build(name, **kw):
    with torch.device("meta"), warnings.catch_warnings(), no_backbone_download():
        warnings.simplefilter("ignore")
        return timm.create_model(name, **kw)


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def source_lean(name, path, dtype):
    """A checkpoint of the model's state-dict keys and shapes (built on `meta`, so no init and no
    memory beyond one tensor at a time), written tensor by tensor: seeded normal values (std 0.02)
    in `dtype` for floating tensors, zeros for integer ones (`num_batches_tracked`); keys that
    share one parameter (CoaT's tied position convolutions) get the same values."""
    model = meta_build(name)
    entries = list(model.state_dict(keep_vars=True).items())
    header, offset, uses = {}, 0, {}
    for k, v in entries:
        dt = dtype if v.is_floating_point() else v.dtype
        size = v.numel() * torch.empty((), dtype=dt).element_size()
        header[k] = {"dtype": SAFETENSORS_DTYPES[dt], "shape": list(v.shape), "data_offsets": [offset, offset + size]}
        offset += size
        uses[id(v)] = uses.get(id(v), 0) + 1
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tied = {}
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i, (k, v) in enumerate(entries):
            if id(v) in tied:
                t = tied[id(v)]
            elif v.is_floating_point():
                g = torch.Generator().manual_seed(i)
                t = (torch.randn(v.shape, generator=g) * 0.02).to(dtype)
            else:
                t = torch.zeros(v.shape, dtype=v.dtype)
            if uses[id(v)] > 1:
                tied[id(v)] = t
            f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


class no_backbone_download:
    """The hybrid ViTs with a ResNet-D backbone ask timm for that backbone's pretrained weights
    whenever they load a checkpoint (`resnet26d(pretrained=pretrained, …)`); the checkpoint then
    overwrites every backbone tensor, so building the backbone untrained gives the same model
    without the network."""

    def __enter__(self):
        import timm.models.vision_transformer_hybrid as h

        self.saved = {n: getattr(h, n) for n in ("resnet26d", "resnet50d")}
        for n, f in self.saved.items():
            setattr(h, n, lambda *a, _f=f, **kw: _f(*a, **{**kw, "pretrained": False}))

    def __exit__(self, *exc):
        import timm.models.vision_transformer_hybrid as h

        for n, f in self.saved.items():
            setattr(h, n, f)


def reference_lean(name, src, size):
    """What timm 1.0.31 loads into `create_model(NAME, pretrained=True,
    pretrained_cfg_overlay=dict(file=SRC), img_size=SIZE)`: timm's own `load_pretrained` (its
    checkpoint filter, strict `load_state_dict`) on a model built on `meta`, the filter's result
    captured where it enters `load_state_dict`. Returns the tensors under the model's state-dict
    keys; raises what timm raises."""
    import timm.models._builder as builder

    captured = []
    load_sd, load_pretrained = torch.nn.Module.load_state_dict, builder.load_pretrained

    def capture(self, sd, *a, **kw):
        if not captured:
            captured.append(dict(sd))
        return load_sd(self, sd, *a, **kw)

    def on_cpu(*a, **kw):
        # the filter runs on real tensors, outside the meta build
        with torch.device("cpu"):
            return load_pretrained(*a, **kw)

    torch.nn.Module.load_state_dict, builder.load_pretrained = capture, on_cpu
    try:
        model = meta_build(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), img_size=size)
    finally:
        torch.nn.Module.load_state_dict, builder.load_pretrained = load_sd, load_pretrained
    if not captured:
        raise RuntimeError("sweep: timm loaded no state dict")
    sd = captured[0]
    out = {}
    for k, v in model.state_dict().items():
        if k not in sd:
            raise LookupError(f"sweep: timm keeps its own init for `{k}` (loaded non-strictly)")
        if sd[k].is_meta:
            raise LookupError(f"sweep: timm's filter takes `{k}` from the model, which is on meta")
        out[k] = sd[k]
    return out


def ordered(x):
    """Float16/bfloat16 bits as integers ordered like the values (adjacent values differ by 1)."""
    i = x.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(i < 0, -(i & 0x7FFF), i)


def close(got, want):
    """One unit in the last place for f16/bf16."""
    return bool(((ordered(got) - ordered(want)).abs() <= 1).all())


def compare(got, ref, resampled):
    """None when `got` (timmconv's tensors, a safe_open handle) matches `ref`, else why."""
    keys = set(got.keys())
    if keys != set(ref):
        return f"keys differ: {sorted(keys ^ set(ref))[:5]}"
    for k in sorted(keys):
        v, want = got.get_tensor(k), ref[k]
        if v.shape != want.shape:
            return f"{k}: shape {list(v.shape)}, timm {list(want.shape)}"
        if k in resampled:
            if v.dtype != want.dtype and want.dtype != torch.float32:
                return f"{k}: dtype {v.dtype}, timm {want.dtype}"
            if v.dtype in (torch.float16, torch.bfloat16):
                if not close(v, want.to(v.dtype)):
                    return f"{k}: more than one unit in the last place from timm"
                continue
            pinv = resampled[k]["operation"] == "patch_embed"
            tol = (1e-5 if pinv else 1e-6) * max(1.0, want.abs().max().item() if want.numel() else 0.0)
            diff = (v.float() - want.float()).abs().max().item() if v.numel() else 0.0
            if diff > tol:
                return f"{k}: max |diff| {diff} > {tol}"
        elif not torch.equal(v, want.to(v.dtype)):
            return f"{k} differs"
    return None


def one(e, lean=True, dtype=torch.float32):
    name = e["name"]
    size = draw(e)
    res = {"name": name, "img_size": size, "reference": "lean" if lean else "full", "dtype": str(dtype).split(".")[-1]}
    with tempfile.TemporaryDirectory(dir=os.environ.get("SWEEP_TMP")) as d:
        src = Path(d) / "src.safetensors"
        out = Path(d) / "out.safetensors"
        try:
            source_lean(name, src, dtype) if lean else source(name, src)
        except Exception as ex:  # noqa: BLE001
            res.update(result="skip", why=f"source: {type(ex).__name__}: {ex}"[:200])
            return res
        r = subprocess.run([BIN, "convert", str(src), "-o", str(out), "--model", name, "--img-size", str(size), "--json", "-q", "--no-hash"], capture_output=True, text=True)
        try:
            if lean:
                ref = reference_lean(name, src, size)
            else:
                with warnings.catch_warnings(), no_backbone_download():
                    warnings.simplefilter("ignore")
                    ref = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), img_size=size).state_dict()
            timm_err = None
        except LookupError as ex:
            res.update(result="skip", why=str(ex)[:200])
            return res
        except Exception as ex:  # noqa: BLE001
            ref, timm_err = None, f"{type(ex).__name__}: {ex}"[:200]
        if timm_err is not None and NETWORK in timm_err:
            res.update(result="skip", why=f"timm needs the network: {timm_err}"[:200])
            return res
        if r.returncode != 0 and timm_err is not None:
            res.update(result="pass", how="both refuse", timmconv=r.stderr.strip()[:200], timm=timm_err)
            return res
        if r.returncode != 0:
            res.update(result="fail", how="timmconv refuses what timm loads", timmconv=r.stderr.strip()[:300])
            return res
        if timm_err is not None:
            res.update(result="fail", how="timm refuses what timmconv converts", timm=timm_err)
            return res
        resampled = {x["key"]: x for x in json.loads(r.stdout)["resampled"]}
        with safetensors.safe_open(str(out), "pt") as got:
            why = compare(got, ref, resampled)
        if why is not None:
            res.update(result="fail", how=why)
            return res
        res.update(result="pass", how="parity", resampled=len(resampled))
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-params", type=float, default=None, help="millions of parameters")
    ap.add_argument("--min-params", type=float, default=None, help="millions: smaller ones are left to another run")
    ap.add_argument("--bf16-above", type=float, default=1000, help="millions: larger sources are bfloat16 (memory)")
    ap.add_argument("--full", action="store_true", help="timm's own init and create_model as the reference (memory: two float32 models)")
    ap.add_argument("--out", default="sweep.jsonl")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--summary")
    ap.add_argument("--rerun-failed", action="store_true")
    ap.add_argument("--only", nargs="*", help="these architectures (runs them again)")
    args = ap.parse_args()
    if args.summary:
        newest = {}
        for l in Path(args.summary).read_text().splitlines():
            if l.strip():
                r = json.loads(l)
                if NETWORK in r.get("timm", ""):
                    # rows of sweeps before this rule: the same skip
                    r = {"name": r["name"], "result": "skip", "why": f"timm needs the network: {r['timm']}"[:200]}
                newest[r["name"]] = r
        rows = list(newest.values())
        ran = [r for r in rows if r["result"] != "skip"]
        ok = [r for r in ran if r["result"] == "pass"]
        print(f"{len(ok)} of {len(ran)} pass ({sum(r.get('how') == 'both refuse' for r in ok)} as the same refusal); {len(rows) - len(ran)} skipped")
        for r in ran:
            if r["result"] != "pass":
                print("FAIL", r["name"], r.get("img_size"), r.get("how"), r.get("timmconv", ""), r.get("timm", ""))
        for r in rows:
            if r["result"] == "skip":
                print("SKIP", r["name"], r.get("why"))
        return
    i, n = (int(x) for x in args.shard.split("/"))
    counts = params()
    todo = [e for e in layouts() if "img_size" in e.get("knobs", [])]
    todo.sort(key=lambda e: (counts.get(e["name"]) or 0, e["name"]))
    todo = [e for j, e in enumerate(todo) if j % n == i]
    done = {}
    if Path(args.out).exists():
        for l in Path(args.out).read_text().splitlines():
            if l.strip():
                r = json.loads(l)
                done[r["name"]] = r["result"]
    if args.min_params is not None:
        todo = [e for e in todo if (counts.get(e["name"]) or 0) > args.min_params * 1e6]
    if args.only:
        todo = [e for e in todo if e["name"] in args.only]
    elif args.rerun_failed:
        todo = [e for e in todo if done.get(e["name"]) == "fail"]
    else:
        todo = [e for e in todo if e["name"] not in done]
    print(f"{len(todo)} architectures", file=sys.stderr)
    with open(args.out, "a") as f:
        for e in todo:
            if args.max_params is not None and (counts.get(e["name"]) or 0) > args.max_params * 1e6:
                res = {"name": e["name"], "result": "skip", "why": f"over the parameter bound ({counts.get(e['name'])} > {args.max_params:g} M)"}
                f.write(json.dumps(res) + "\n")
                continue
            t = time.time()
            try:
                big = (counts.get(e["name"]) or 0) > args.bf16_above * 1e6
                res = one(e, lean=not args.full, dtype=torch.bfloat16 if big else torch.float32)
            except Exception as ex:  # noqa: BLE001
                res = {"name": e["name"], "result": "fail", "how": f"sweep: {type(ex).__name__}: {ex}"[:300]}
            res["seconds"] = round(time.time() - t, 1)
            f.write(json.dumps(res) + "\n")
            f.flush()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Sweep `timmconv convert --img-size` over every architecture whose constructor takes `img_size`
(from src/registry/resize.jsonl): each gets a randomly initialised checkpoint (seeded) at its
default size and a target size drawn from a seeded generator; timm 1.0.31 loads it at that size
(`create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=…), img_size=…)`) and
timmconv converts it. An architecture passes when both succeed and every tensor matches (resampled
float32 within 1e-6·max(1, max|ref|), 1e-5 for pseudo-inverse patch embeddings; everything else
bit-identical), or when both refuse. Not run in CI (it builds hundreds of models).

    PY=~/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python
    $PY tools/sweep_resize.py --max-params 30 --out sweep.jsonl [--shard 0/2]
    $PY tools/sweep_resize.py --summary sweep.jsonl

`--max-params` (millions, from the embedded registry) bounds the time: larger architectures are
recorded as skipped ("over the parameter bound"), so the summary counts them. Architectures run
smallest first, so a sweep stopped early has covered the most; a rerun with the same `--out`
resumes after the last recorded architecture (`--rerun-failed` runs the failures again and keeps
their newest row). Each model's files live in a temporary folder removed right after its check.
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


def one(e):
    name = e["name"]
    size = draw(e)
    res = {"name": name, "img_size": size}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src.safetensors"
        out = Path(d) / "out.safetensors"
        try:
            source(name, src)
        except Exception as ex:  # noqa: BLE001
            res.update(result="skip", why=f"source: {type(ex).__name__}: {ex}"[:200])
            return res
        r = subprocess.run([BIN, "convert", str(src), "-o", str(out), "--model", name, "--img-size", str(size), "--json", "-q", "--no-hash"], capture_output=True, text=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), img_size=size).state_dict()
            timm_err = None
        except Exception as ex:  # noqa: BLE001
            ref, timm_err = None, f"{type(ex).__name__}: {ex}"[:200]
        if timm_err is not None and NETWORK in timm_err:
            # timm wanted a pretrained backbone from the hub (hybrid ViTs with resnet*d): not a
            # refusal, and nothing to compare with offline
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
        got = safetensors.torch.load_file(str(out))
        if set(got) != set(ref):
            res.update(result="fail", how="keys differ", diff=sorted(set(got) ^ set(ref))[:5])
            return res
        for k, v in got.items():
            want = ref[k]
            if k in resampled:
                pinv = resampled[k]["operation"] == "patch_embed"
                tol = (1e-5 if pinv else 1e-6) * max(1.0, want.abs().max().item())
                if v.shape != want.shape:
                    res.update(result="fail", how=f"{k}: shape {list(v.shape)}, timm {list(want.shape)}")
                    return res
                diff = (v.float() - want.float()).abs().max().item() if v.numel() else 0.0
                if diff > tol:
                    res.update(result="fail", how=f"{k}: max |diff| {diff} > {tol}")
                    return res
            elif v.shape != want.shape or not torch.equal(v, want.to(v.dtype)):
                res.update(result="fail", how=f"{k} differs")
                return res
        res.update(result="pass", how="parity", resampled=len(resampled))
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-params", type=float, default=None, help="millions of parameters")
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
                res = one(e)
            except Exception as ex:  # noqa: BLE001
                res = {"name": e["name"], "result": "fail", "how": f"sweep: {type(ex).__name__}: {ex}"[:300]}
            res["seconds"] = round(time.time() - t, 1)
            f.write(json.dumps(res) + "\n")
            f.flush()


if __name__ == "__main__":
    main()

"""The registry's resolution knobs are timm's own answer: for every architecture of timm 1.0.31,
`img_size`, `patch_size` and `window_size` are listed in src/registry/resize.jsonl exactly when
`timm.create_model(NAME, KNOB=…)` on the meta device does not refuse the keyword (a TypeError
"unexpected keyword argument"). Whether the weights can then be adapted is the registry's
refusal, checked elsewhere (test_resolution.py); here only which knobs timm takes, so that a
refusal never claims timm lacks an argument it has (XCiT's img_size once did).

Every architecture is built up to three times (about 4 minutes of CPU, shared over the cores)."""

import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import timm
import torch

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "src" / "registry" / "resize.jsonl"
# probe values, independent of the generator's: any value timm would build
PROBES = {"img_size": 288, "patch_size": 8, "window_size": 12}


def taken(name):
    """The knobs timm does not refuse as keywords for `name`."""
    out = []
    for knob, value in PROBES.items():
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                timm.create_model(name, pretrained=False, **{knob: value})
        except TypeError as ex:
            # Python's wording, or a timm constructor's list ("argument(s): ['img_size']")
            if "unexpected keyword argument" in str(ex) and f"'{knob}'" in str(ex):
                continue
        except Exception:  # noqa: BLE001 - taken, but not at this value: still taken
            pass
        out.append(knob)
    return name, out


def test_registry_knobs_are_what_timm_takes():
    lines = REGISTRY.read_text().splitlines()[1:]
    registry = {e["name"]: e["knobs"] for e in map(json.loads, lines)}
    names = timm.list_models()
    assert sorted(registry) == sorted(names)
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        answers = dict(pool.map(taken, names, chunksize=16))
    wrong = {n: (registry[n], answers[n]) for n in names if sorted(registry[n]) != sorted(answers[n])}
    assert not wrong, f"{len(wrong)} architectures (registry, timm): {dict(list(wrong.items())[:10])}"

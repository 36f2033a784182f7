"""timm's results tables (tools/data/timm-results, copied unchanged from pytorch-image-models)
read straight from the CSVs, independently of tools/gen_registry.py, for the tests to check
timmconv's figures against."""

import csv
from pathlib import Path

import timm

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "tools" / "data" / "timm-results"
ACC = "results-imagenet.csv"
INFER = "benchmark-infer-amp-nchw-pt291-cu130-5090.csv"
TRAIN = "benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv"


def read(file, size_col):
    """{model: {size: row}}"""
    out = {}
    with open(TABLES / file, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["model"], {})[int(row[size_col])] = row
    return out


def tables():
    return read(ACC, "img_size"), read(INFER, "infer_img_size"), read(TRAIN, "train_img_size")


def figures_at(t, full, arch, size):
    """The figures timmconv should show for `full` at `size`: each from the row of that size."""
    acc, infer, train = t
    out = {}
    a = acc.get(full, {}).get(size)
    b = infer.get(arch, {}).get(size)
    r = train.get(arch, {}).get(size)
    if a:
        out.update(top1=float(a["top1"]), top5=float(a["top5"]), img_size=float(a["img_size"]),
                   param_count_m=float(a["param_count"]), crop_pct=float(a["crop_pct"]))
    if b:
        out.update(samples_per_sec=float(b["infer_samples_per_sec"]), infer_img_size=float(b["infer_img_size"]),
                   gmacs=float(b["infer_gmacs"]), macts=float(b["infer_macts"]))
        out.setdefault("param_count_m", float(b["param_count"]))
    if r:
        out.update(train_samples_per_sec=float(r["train_samples_per_sec"]), train_img_size=float(r["train_img_size"]))
    return out


def sizes(t, full, arch):
    acc, infer, train = t
    return sorted(set(acc.get(full, {})) | set(infer.get(arch, {})) | set(train.get(arch, {})))


def input_size(full):
    """The tag's pretrained input size, as timm's validate.py records it (input_size[-1])."""
    return timm.models.get_pretrained_cfg(full).input_size[-1]


def headline(t, full):
    """The figures at the tag's input size, else at the nearest size (ties: the smaller)."""
    arch = full.split(".")[0]
    have = sizes(t, full, arch)
    if not have:
        return {}
    want = input_size(full)
    size = want if want in have else min(have, key=lambda s: (abs(s - want), s))
    return figures_at(t, full, arch, size)

"""`timmconv info --json` shows each tag's figures at its own input size: for 20 tags drawn
(seeded) from architectures that timm's inference benchmark has at several sizes, every figure of
`results` equals the CSV rows of the tag's input size, and `results_by_size` holds exactly one
object per size the tables have, each with that size's rows' figures."""

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import timm

from timm_tables import figures_at, headline, input_size, sizes, tables

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
T = tables()


def drawn():
    acc, infer, _ = T
    multi = {arch for arch, by in infer.items() if len(by) > 1}
    # tags with weights and an accuracy row, of architectures benchmarked at several sizes
    tags = sorted(n for n in timm.list_pretrained() if n.split(".")[0] in multi and n in acc)
    return random.Random(13).sample(tags, 20)


def info(name):
    out = subprocess.run([BIN, "info", "--json", name], check=True, capture_output=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("name", drawn())
def test_every_figure_is_the_csv_row_of_the_tags_input_size(name):
    got = info(name)
    arch = name.split(".")[0]
    want = headline(T, name)
    assert got["results"] == want
    # the draw is of tags the accuracy table has at their own size: nothing may come from another
    assert got["results"]["img_size"] == input_size(name)
    for k in ("infer_img_size", "train_img_size"):
        if k in got["results"]:
            assert got["results"][k] == input_size(name), k
    assert got["results_by_size"] == [figures_at(T, name, arch, s) for s in sizes(T, name, arch)]
    assert len(got["results_by_size"]) >= 2


def test_the_issues_example_shows_224px_costs():
    # convnext_tiny.in12k_ft_in1k is 224 px; the benchmark's 384 px row (13.14 GMACs) was shown
    r = info("convnext_tiny.in12k_ft_in1k")["results"]
    assert (r["top1"], r["img_size"], r["gmacs"], r["macts"], r["samples_per_sec"]) == (84.192, 224, 4.47, 13.44, 5940.47)


def test_info_card_lists_every_size_and_stars_the_tags():
    out = subprocess.run([BIN, "info", "resnet50.a1_in1k"], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("  results "))
    assert lines[start + 1].split() == ["px", "top1", "top5", "crop", "GMACs", "M", "acts", "samples/s", "train/s"]
    rows = []
    for l in lines[start + 2 :]:
        if not l.startswith("    "):
            break
        rows.append(l.split())
    arch = "resnet50"
    want = sizes(T, "resnet50.a1_in1k", arch)
    got = [int(r[0].lstrip("*")) for r in rows]
    assert got == want
    starred = [r for r in rows if r[0].startswith("*")]
    assert [r[0] for r in starred] == [f"*{input_size('resnet50.a1_in1k')}"]
    # the starred row's figures are the 224 px rows: top1, top5, GMACs, activations, samples/s
    want = figures_at(T, "resnet50.a1_in1k", arch, 224)
    r = starred[0]
    assert [float(r[1]), float(r[2]), float(r[4]), float(r[5]), float(r[6])] == [
        want["top1"], want["top5"], want["gmacs"], want["macts"], want["samples_per_sec"]]


def off_size():
    """Tags whose input size the tables lack, though they have other sizes (up to 5, seeded; timm
    1.0.31 has 2)."""
    tags = []
    for n in timm.list_pretrained():
        arch = n.split(".")[0]
        have = sizes(T, n, arch)
        if have and input_size(n) not in have:
            tags.append(n)
    return random.Random(13).sample(sorted(tags), min(5, len(tags)))


@pytest.mark.parametrize("name", off_size())
def test_without_a_row_at_the_tags_size_the_nearest_size_is_shown_and_named(name):
    got = info(name)
    want = headline(T, name)
    assert got["results"] == want
    size = next(want[k] for k in ("img_size", "infer_img_size", "train_img_size") if k in want)
    card = subprocess.run([BIN, "info", name], check=True, capture_output=True, text=True).stdout
    assert f"none at the tag's {input_size(name)}px; the nearest size, {size:g}px, is marked *" in card


def test_same_command_same_bytes():
    for args in (["info", "--json", "resnet50.a1_in1k"], ["info", "convnext_tiny.in12k_ft_in1k"]):
        a = subprocess.run([BIN, *args], check=True, capture_output=True).stdout
        b = subprocess.run([BIN, *args], check=True, capture_output=True).stdout
        assert a == b

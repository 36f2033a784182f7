"""`timmconv models --plot`: the SVG parsed back (xml.etree) holds one mark per model that has
both figures, a label for each model on the Pareto frontier, and that frontier equals one computed
here, independently, from timm's CSVs (each tag at its own input size) and timm.list_pretrained."""

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import timm

from timm_tables import headline, tables

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
SVG = "{http://www.w3.org/2000/svg}"
T = tables()
PATTERNS = ["convnext_*", "resnet5*", "efficientnet_b*"]


def plot(tmp_path, *extra):
    out = tmp_path / "chart.svg"
    subprocess.run([BIN, "models", *PATTERNS, "--pretrained", "--plot", str(out), *extra], check=True, capture_output=True)
    return out


def expected(x, y, higher_better):
    pts = {}
    for name in timm.list_pretrained(PATTERNS):
        r = headline(T, name)
        if x in r and y in r:
            pts[name] = (r[x], r[y])

    def better_x(a, b):
        return a >= b if higher_better else a <= b

    front = {
        n
        for n, (px, py) in pts.items()
        if not any(
            better_x(qx, px) and qy >= py and (qx != px or qy != py) for m, (qx, qy) in pts.items() if m != n
        )
    }
    return set(pts), front


@pytest.mark.parametrize("x,y,higher", [("samples_per_sec", "top1", True), ("gmacs", "top5", False)])
def test_plot_has_one_mark_per_model_and_labels_the_frontier(tmp_path, x, y, higher):
    path = plot(tmp_path, "--x", x, "--y", y)
    root = ET.parse(path).getroot()
    marks = [c.get("data-name") for c in root.iter(f"{SVG}circle")]
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    models, front = expected(x, y, higher)
    assert len(marks) == len(set(marks)) == len(models)
    assert set(marks) == models
    assert front and front <= texts
    # no other model is labelled
    assert (models - front).isdisjoint(texts)
    title = next(t for t in texts if t.startswith(f"{y} against {x}"))
    assert f"{len(models)} timm pretrained tags" in title
    # the source line, wrapped to the canvas: its lines read in order
    lines = " ".join("".join(t.itertext()).strip() for t in root.iter(f"{SVG}text"))
    assert "RTX 5090" in lines and "results-imagenet.csv" in lines


def test_same_command_same_bytes(tmp_path):
    a = plot(tmp_path).read_bytes()
    b = plot(tmp_path).read_bytes()
    assert a == b
    table = [BIN, "models", *PATTERNS, "--pretrained", "--sort", "top1"]
    assert subprocess.run(table, capture_output=True).stdout == subprocess.run(table, capture_output=True).stdout

"""The hostile corpus (tools/make_hostile.py, fixtures/hostile/, plus the large attacks it builds at
test time) against the timmconv binary: no panic, no hang, bounded memory, no leftover file, the
input untouched, the expected refusal, and the differential property — a file whose payload
`torch.load(weights_only=False)` runs (proved by the generator with a marker file) is never
`ok` for `inspect --scan`. Run by tools/test.sh with the pinned venv (TIMMCONV_BIN)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

import kernels

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
HOSTILE = ROOT / "fixtures" / "hostile"
MANIFEST = json.loads((HOSTILE / "MANIFEST.json").read_text())["files"]
RSS_LIMIT_MB = 256
TIMEOUT_S = 10

sys.path.insert(0, str(ROOT / "tools"))
import make_hostile  # noqa: E402


class Run:
    def __init__(self, rc, out, err, rss_mb, seconds):
        self.rc, self.out, self.err, self.rss_mb, self.seconds = rc, out, err, rss_mb, seconds


def run(*args, cwd=None):
    """Runs the binary, killing it after TIMEOUT_S: a hang fails the test, not the suite."""
    start = time.monotonic()
    p = subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=cwd, stdin=subprocess.DEVNULL)
    try:
        out, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"timmconv {' '.join(map(str, args))} ran over {TIMEOUT_S} s")
    return Run(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), None,
               time.monotonic() - start)


# A small interpreter spawns the binary and reports its peak RSS: measured from pytest itself,
# a child's ru_maxrss starts at the RSS of the process it was forked from (torch, ~500 MB).
MEASURE = r"""
import json, os, subprocess, sys, time
timeout, argv = float(sys.argv[1]), sys.argv[2:]
with open(os.environ["OUT_FILE"], "wb") as out, open(os.environ["ERR_FILE"], "wb") as err:
    p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            print(json.dumps(dict(rc=None)))
            sys.exit(0)
        time.sleep(0.005)
print(json.dumps(dict(rc=os.waitstatus_to_exitcode(status), rss_kb=usage.ru_maxrss)))
"""


def run_measured(*args):
    """Like run, and measures the child's own peak RSS."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, OUT_FILE=f"{d}/out", ERR_FILE=f"{d}/err")
        m = subprocess.run([sys.executable, "-S", "-c", MEASURE, str(TIMEOUT_S), BIN, *map(str, args)],
                           capture_output=True, text=True, env=env, check=True)
        res = json.loads(m.stdout)
        if res["rc"] is None:
            pytest.fail(f"timmconv {' '.join(map(str, args))} ran over {TIMEOUT_S} s")
        out = Path(f"{d}/out").read_bytes().decode("utf-8", "replace")
        err = Path(f"{d}/err").read_bytes().decode("utf-8", "replace")
    run_ = Run(res["rc"], out, err, res["rss_kb"] / 1024, time.monotonic() - start)
    FIGURES.append(dict(args=[str(a) for a in args], rc=run_.rc, rss_mb=run_.rss_mb, seconds=run_.seconds))
    return run_


# every measured run, written to $TIMMCONV_HOSTILE_REPORT (JSON) at the end when set: the figures
# docs/security.md reports
FIGURES = []


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    path = os.environ.get("TIMMCONV_HOSTILE_REPORT")
    if path:
        Path(path).write_text(json.dumps(FIGURES, indent=1))


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_sane(r, what):
    assert r.rc in (0, 1, 2), f"{what}: exit {r.rc}\n{r.err}"
    assert "panicked" not in r.err, f"{what}: panic\n{r.err}"


def attack(entry, folder, tmp_path):
    """Every command on one file, with every property checked; returns the runs."""
    path = folder / entry["file"]
    before = sha(path)
    limit = RSS_LIMIT_MB + entry.get("extra_rss_mb", 0)
    runs = {}
    for name, args in {
        "inspect": ["inspect", path],
        "json": ["inspect", "--json", path],
        "scan": ["inspect", "--scan", path],
        "scan_json": ["inspect", "--scan", "--json", path],
    }.items():
        runs[name] = r = run_measured(*args)
        check_sane(r, f"{entry['file']} {name}")
        assert r.rss_mb <= limit, f"{entry['file']} {name}: peak RSS {r.rss_mb:.0f} MB"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "x.safetensors"
    r = runs["convert"] = run_measured("convert", path, "-o", out)
    check_sane(r, f"{entry['file']} convert")
    assert r.rss_mb <= limit, f"{entry['file']} convert: peak RSS {r.rss_mb:.0f} MB"
    assert r.rc == entry["convert"], f"{entry['file']}: convert exit {r.rc}\n{r.err}"
    assert entry["message"] in r.err, f"{entry['file']}: {r.err}"
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == (["x.safetensors"] if r.rc == 0 else []), f"{entry['file']}: left {left}"
    if r.rc != 0:
        assert str(path) in r.err or entry["file"] in r.err or "tensor `" in r.err, r.err
    assert sha(path) == before, f"{entry['file']}: the input changed"
    # the differential property
    if entry["runs_code"]:
        assert runs["scan"].rc != 0, f"{entry['file']}: torch.load runs its payload, scan said ok"
    # nothing a file names reaches the terminal raw
    for name in ("inspect", "scan"):
        text = runs[name].out + runs[name].err
        assert not any(c in text.replace("\n", "") for c in "\r\x1b\u202e"), \
            f"{entry['file']} {name}: raw control characters in the output"
    return runs


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_hostile_file(entry, tmp_path):
    attack(entry, HOSTILE, tmp_path)


# files timmconv must convert: their tensors must be torch's. No file in this list runs code
# (the generator proved it); torch.load(weights_only=False) still runs in a throw-away process, in
# an empty folder, which re-saves the tensors it got for this one to read with weights_only=True.
CONVERTED = [e for e in MANIFEST if e["convert"] == 0 and not e["runs_code"]]
TORCH_TENSORS = r"""
import sys, torch
sd = torch.load(sys.argv[1], weights_only=False, map_location="cpu")
torch.save({k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}, sys.argv[2])
"""


@pytest.mark.parametrize("entry", CONVERTED, ids=[e["file"] for e in CONVERTED])
def test_converted_values_are_torchs(entry, tmp_path):
    from safetensors import safe_open
    src = HOSTILE / entry["file"]
    out = tmp_path / "x.safetensors"
    r = run("convert", src, "-o", out)
    assert r.rc == 0, r.err
    clean = tmp_path / "torch.pth"
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-c", TORCH_TENSORS, src.resolve(), clean], cwd=work,
                   check=True, capture_output=True, timeout=120)
    assert list(work.iterdir()) == []
    want = torch.load(clean, weights_only=True)
    with safe_open(out, "pt") as f:
        assert sorted(f.keys()) == sorted(want), entry["file"]
        for k in f.keys():
            got, exp = f.get_tensor(k), want[k]
            assert got.dtype == exp.dtype and got.shape == exp.shape, k[:80]
            # bitwise: NaN payloads and -0.0 count
            assert torch.equal(got.contiguous().view(torch.uint8), exp.contiguous().view(torch.uint8)), k[:80]


def test_corpus_covers_every_class_and_proves_payloads_live():
    classes = {e["cls"] for e in MANIFEST}
    assert {1, 2, 3, 4, 6, 7, 9, 10} <= classes
    assert len(MANIFEST) >= 60
    assert sum(e["runs_code"] for e in MANIFEST) >= 15
    for e in MANIFEST:
        assert sha(HOSTILE / e["file"]) == e["sha256"], e["file"]


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    return folder, make_hostile.build_large(folder)


@pytest.mark.parametrize("index", range(4))
def test_large_attack(large, index, tmp_path):
    folder, entries = large
    runs = attack(entries[index], folder, tmp_path)
    # every input finishes in seconds (the timeout above is the bound; this names the figure)
    assert all(r.seconds < TIMEOUT_S for r in runs.values())


def test_hub_force_never_deletes_what_it_did_not_write(tmp_path):
    src = ROOT / "fixtures" / "ckpt" / "test_resnet.f32.zip.pth"
    out = tmp_path / "hub"
    model = ["--model", "test_resnet.r160_in1k", "--layout", "hub"]
    assert run("convert", src, "-o", out, *model).rc == 0
    # a planted file: refused, folder untouched
    (out / "notes.txt").write_text("mine")
    before = {p.name: sha(p) for p in out.iterdir()}
    r = run("convert", src, "-o", out, *model, "--force")
    assert r.rc == 2 and "notes.txt" in r.err, r.err
    assert {p.name: sha(p) for p in out.iterdir()} == before
    (out / "notes.txt").unlink()
    # the input inside the folder: refused, input intact
    inside = out / "input.pth"
    inside.write_bytes(src.read_bytes())
    r = run("convert", inside, "-o", out, *model, "--force")
    assert r.rc == 2 and ("input" in r.err), r.err
    assert sha(inside) == sha(src)
    inside.unlink()
    # an export timmconv wrote: replaced, and nothing else left beside it
    r = run("convert", src, "-o", out, *model, "--force", "--in-chans", "1")
    assert r.rc == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_renames_cannot_make_an_unreadable_file(tmp_path):
    src = HOSTILE / "thousand_kilobyte_names.pth"
    out = tmp_path / "x.safetensors"
    r = run("convert", src, "-o", out, "--rename", "^0000n+$=__metadata__")
    assert r.rc == 2 and "__metadata__" in r.err, r.err
    # each name repeated 100 times: a 100 MB header, over the readers' limit
    r = run("convert", src, "-o", out, "--rename", "^(.*)$=" + "$1" * 100)
    assert r.rc == 2 and "MAX_HEADER_BYTES" in r.err, r.err
    assert list(tmp_path.iterdir()) == []


def test_fifo_input_is_refused_at_once(tmp_path):
    fifo = tmp_path / "in.pth"
    os.mkfifo(fifo)
    for args in (["inspect", fifo], ["inspect", "--scan", fifo], ["convert", fifo, "-o", tmp_path / "o.safetensors"]):
        r = run(*args)
        assert r.rc == 2 and "not a regular file" in r.err, r.err
        assert r.seconds < 5
    r = run("inspect", tmp_path)
    assert r.rc == 2 and "folder" in r.err


@kernels.needs_vector_kernels("NaN payloads cast to bfloat16")
def test_bf16_casts_write_torchs_nan(tmp_path):
    src = HOSTILE / "nan_payloads.pth"
    out = tmp_path / "x.safetensors"
    assert run("convert", src, "-o", out, "--dtype", "bf16").rc == 0
    from safetensors.torch import load_file
    got = load_file(out)["w"].view(torch.int16)
    want = torch.load(src, weights_only=True)["w"].to(torch.bfloat16).view(torch.int16)
    assert torch.equal(got, want), (got, want)


def test_storage_with_two_dtypes_is_refused_naming_the_key():
    r = run("inspect", HOSTILE / "storage_two_dtypes.pth")
    assert r.rc == 2 and "storage `0`" in r.err, r.err


def test_scan_lines_cannot_be_forged():
    r = run("inspect", "--scan", HOSTILE / "global_name_with_cr.pth")
    assert r.rc == 1
    lines = r.out.splitlines()
    assert lines[-1].startswith("UNSAFE"), r.out
    assert any(l.startswith("unknown") and "\\u{d}" in l for l in lines), r.out
    r = run("inspect", HOSTILE / "name_with_newline.pth")
    assert "a\\u{a}ok: only allowed" in r.out, r.out


def test_long_names_print(tmp_path):
    r = run("inspect", HOSTILE / "name_70000_chars.pth")
    assert r.rc == 0 and "x" * 70000 in r.out


# Third pass (branch red). The differential property for values, on every corpus file whose
# payload does not run: whenever timmconv converts a file that torch.load(weights_only=False)
# also loads, the tensors must be torch's, bit for bit. (test_converted_values_are_torchs only
# covers the files the manifest says must convert; this one also catches a file that is
# expected to be refused but converts to other weights.) torch loads all of them in one
# throw-away process, in an empty folder.
DIFFERENTIAL = [e for e in MANIFEST if not e["runs_code"]]
TORCH_ALL = r"""
import os, sys, torch
out = sys.argv[1]
for i, path in enumerate(sys.argv[2:]):
    try:
        sd = torch.load(path, weights_only=False, map_location="cpu")
        sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
        torch.save(sd, os.path.join(out, f"{i}.pt"))
    except BaseException:
        pass
"""


@pytest.fixture(scope="module")
def torch_values(tmp_path_factory):
    out = tmp_path_factory.mktemp("torch_values")
    work = tmp_path_factory.mktemp("torch_work")
    paths = [str((HOSTILE / e["file"]).resolve()) for e in DIFFERENTIAL]
    subprocess.run([sys.executable, "-c", TORCH_ALL, out, *paths], cwd=work, capture_output=True,
                   timeout=600)
    assert list(work.iterdir()) == []
    return {e["file"]: out / f"{i}.pt" for i, e in enumerate(DIFFERENTIAL)}


@pytest.mark.parametrize("entry", DIFFERENTIAL, ids=[e["file"] for e in DIFFERENTIAL])
def test_whatever_timmconv_converts_is_torchs(entry, torch_values, tmp_path):
    from safetensors import safe_open
    out = tmp_path / "x.safetensors"
    r = run("convert", HOSTILE / entry["file"], "-o", out)
    saved = torch_values[entry["file"]]
    if r.rc != 0 or not saved.exists():
        return  # refused, or torch cannot load it either
    want = torch.load(saved, weights_only=True)
    with safe_open(out, "pt") as f:
        assert sorted(f.keys()) == sorted(want), entry["file"]
        for k in f.keys():
            got, exp = f.get_tensor(k), want[k]
            assert got.dtype == exp.dtype and got.shape == exp.shape, \
                f"{entry['file']} {k[:80]}: timmconv {got.dtype} {tuple(got.shape)}, torch {exp.dtype} {tuple(exp.shape)}"
            exp = exp.resolve_neg().resolve_conj().contiguous()
            assert torch.equal(got.contiguous().view(torch.uint8), exp.view(torch.uint8)), \
                f"{entry['file']} {k[:80]}: timmconv {got.flatten()[:8].tolist()}, torch {exp.flatten()[:8].tolist()}"


def test_tar_archives_torch_opens_are_never_ok_for_the_scan():
    """torch.load tries Python's tarfile before anything else, and tarfile accepts a header by
    its checksum alone (a V7 header has no magic): a tar whose first header reads as a run of
    pickles, or starts with 0x80 0x02, is still the tar format, whose `storages` member torch
    unpickles with plain pickle.load."""
    for name in ("tar_v7_header_is_five_pickles.pth", "tar_ustar_header_starts_as_pickle.pth",
                 "tar_then_zip_end_signature_first.pth", "safetensors_tar_polyglot.pth"):
        r = run("inspect", "--scan", HOSTILE / name)
        assert r.rc != 0, f"{name}: {r.out}"
        assert "tar" in (r.out + r.err), r.out + r.err


def test_stop_inside_a_frame_is_never_ok_for_the_scan():
    """CPython reads a large FRAME whole: torch.load's next legacy pickle starts after the frame,
    not after a STOP inside it (legacy_frame_hides_next_pickles.pth: decoys after the STOP, a
    payload after the frame)."""
    r = run("inspect", "--scan", HOSTILE / "legacy_frame_hides_next_pickles.pth")
    assert r.rc != 0 and "frame" in r.out, r.out

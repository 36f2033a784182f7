"""`timmconv batch` over a test zoo made at test time by tools/make_zoo.py (random-init timm 1.0.31
checkpoints of 13 test_* families, 66 jobs, one corrupt). Run by tools/test.sh with the pinned
venv (TIMMCONV_BIN points at the binary)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_zoo.py"), str(d)], check=True)
    return d


def jobs(zoo):
    return [json.loads(l) for l in (zoo / "manifest.jsonl").read_text().splitlines()]


def batch(zoo, *args, env=None, manifest="manifest.jsonl"):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION", "TIMMCONV_SHARD"))}
    e.update(env or {})
    return subprocess.run([BIN, "batch", str(zoo / manifest), *args], env=e, capture_output=True, text=True)


def report(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def fresh(zoo, name):
    """A copy of the zoo's inputs and manifest with no outputs."""
    d = zoo.parent / name
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(zoo / "ckpt", d / "ckpt")
    shutil.copy(zoo / "manifest.jsonl", d / "manifest.jsonl")
    return d


def test_shards_cover_every_job_once_and_match_convert(zoo):
    d = fresh(zoo, "sharded")
    n, seen = 3, []
    for i in range(n):
        r = batch(d, "--shard", f"{i}/{n}", "--jobs", "2", "--report", str(d / f"r{i}.jsonl"))
        assert r.returncode in (0, 1), r.stderr
        assert f"shard {i}/{n}" in r.stderr
        rows = report(d / f"r{i}.jsonl")
        assert all((row["line"] - 1) % n == i for row in rows)
        seen += rows
    lines = sorted(row["line"] for row in seen)
    assert lines == list(range(1, len(jobs(d)) + 1))
    failed = [row for row in seen if row["status"] == "failed"]
    assert [Path(f["input"]).name for f in failed] == ["corrupt.pth"]
    assert "corrupt.pth" in failed[0]["error"]
    assert all(row["status"] == "converted" for row in seen if row not in failed)
    # each output is byte-identical to the single convert with the same args
    single = d / "single"
    single.mkdir()
    for k, job in enumerate(jobs(d)):
        if "corrupt" in job["input"]:
            continue
        out = single / f"{k}.safetensors"
        subprocess.run([BIN, "convert", str(d / job["input"]), "-o", str(out), "-q", *job["args"]], check=True)
        assert out.read_bytes() == (d / job["output"]).read_bytes(), job
    # a rerun does no work
    r = batch(d, "--jobs", "2", "--report", str(d / "again.jsonl"))
    assert r.returncode == 1
    rows = report(d / "again.jsonl")
    assert {row["status"] for row in rows if "corrupt" not in row["input"]} == {"skipped"}
    # a changed option converts again
    m = [json.loads(l) for l in (d / "manifest.jsonl").read_text().splitlines() if "corrupt" not in l][:1]
    m[0]["args"] += ["--dtype", "f16"] if "--dtype" not in m[0]["args"] else []
    (d / "one.jsonl").write_text(json.dumps(m[0]) + "\n")
    r = batch(d, "--report", str(d / "one.jsonl.r"), "-q", manifest="one.jsonl")
    rows = report(d / "one.jsonl.r")
    # the stale output (timmconv's own, other options) is replaced; it now holds the new dtype
    assert rows[0]["status"] == ("skipped" if "f16" not in m[0]["args"] else "converted"), rows
    if "f16" in m[0]["args"]:
        with safetensors.safe_open(d / m[0]["output"], "np") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} <= {"F16", "I64"}
    # a file timmconv did not write is never replaced
    foreign = d / "foreign.safetensors"
    foreign.write_bytes(b"not mine")
    job = dict(m[0], output="foreign.safetensors")
    (d / "foreign.jsonl").write_text(json.dumps(job) + "\n")
    r = batch(d, "-q", manifest="foreign.jsonl")
    assert r.returncode == 1 and foreign.read_bytes() == b"not mine"


@pytest.mark.parametrize(
    "env,shard",
    [
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}, "2/4"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5"}, "2/5"),
        ({"JOB_COMPLETION_INDEX": "1", "TIMMCONV_SHARD_COUNT": "6"}, "1/6"),
    ],
)
def test_scheduler_environment_picks_the_shard(zoo, env, shard):
    d = fresh(zoo, "env" + shard.replace("/", "_"))
    r = batch(d, "--report", str(d / "r.jsonl"), "--jobs", "2", env=env)
    assert f"shard {shard} (" in r.stderr, r.stderr
    i, n = map(int, shard.split("/"))
    assert sorted(row["line"] for row in report(d / "r.jsonl")) == [k + 1 for k in range(len(jobs(d))) if k % n == i]


def test_kubernetes_index_without_count_is_refused(zoo):
    r = batch(zoo, env={"JOB_COMPLETION_INDEX": "0"})
    assert r.returncode == 2 and "--shard-count" in r.stderr


@pytest.mark.parametrize(
    "line,why",
    [
        ("{not json", "line 2"),
        ('{"input": "a.pth"}', "line 2"),
        ('{"input": "a.pth", "output": "b.safetensors", "args": ["--no-such-flag"]}', "line 2"),
        ('{"input": "a.pth", "output": "b.safetensors", "args": ["--in-chans", "x"]}', "line 2"),
    ],
)
def test_malformed_line_is_named_and_nothing_runs(zoo, line, why):
    d = fresh(zoo, "bad")
    first = (d / "manifest.jsonl").read_text().splitlines()[0]
    (d / "bad.jsonl").write_text(first + "\n" + line + "\n")
    r = batch(d, manifest="bad.jsonl")
    assert r.returncode == 2 and why in r.stderr, r.stderr
    assert not (d / "out").exists()


def test_sigkill_then_restart_leaves_complete_outputs_only(zoo):
    d = fresh(zoo, "killed")
    p = subprocess.Popen([BIN, "batch", str(d / "manifest.jsonl"), "--jobs", "2", "-q"])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((d / "out").glob("*.safetensors")) if (d / "out").exists() else []) < 20:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = list((d / "out").glob("*.safetensors"))
    assert 0 < len(done) < len(jobs(d)) - 1
    for f in done:  # every file there is whole
        with safetensors.safe_open(f, "np") as s:
            assert len(s.keys()) > 0
    r = batch(d, "--jobs", "2", "--report", str(d / "r.jsonl"))
    assert r.returncode == 1
    rows = report(d / "r.jsonl")
    assert sum(row["status"] == "skipped" for row in rows) >= len(done) - 2
    # a SIGKILLed writer's temp file stays behind under its hidden .timmconv-partial-* name (no
    # process is left to remove it); every real name holds a complete output
    names = [p.name for p in (d / "out").iterdir() if not p.name.startswith(".timmconv-partial-")]
    assert sorted(names) == sorted(
        Path(j["output"]).name for j in jobs(d) if "corrupt" not in j["input"]
    )

"""The scheduler files of docs/batch/ run `timmconv batch` as the schedulers would: the Slurm
array script with the variables Slurm sets for each task, the Kubernetes Indexed Job's command
with the index each pod gets (the manifest parsed with PyYAML, as kubectl would read it). Every
job of the test zoo (tools/make_zoo.py) must be converted by exactly one task. Also the zoo
manifest builder, tools/zoo_manifest.py."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
N = 4


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_zoo.py"), str(d)], check=True)
    return d


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION", "TIMMCONV_SHARD"))}
    env["PATH"] = f"{Path(BIN).parent}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def lines_done(reports):
    rows = [json.loads(l) for r in reports for l in r.read_text().splitlines()]
    return sorted(r["line"] for r in rows), rows


def test_slurm_array_script_covers_every_job_once(zoo, tmp_path):
    if Path(BIN).name != "timmconv":
        pytest.skip("the script calls `timmconv` by name")
    d = tmp_path / "slurm"
    shutil.copytree(zoo / "ckpt", d / "ckpt")
    shutil.copy(zoo / "manifest.jsonl", d / "manifest.jsonl")
    script = ROOT / "docs" / "batch" / "slurm-array.sh"
    for task in range(N):
        # what `sbatch --array=0-3` sets for each task
        env = clean_env(SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="0",
                        SLURM_ARRAY_TASK_MAX=str(N - 1), SLURM_ARRAY_TASK_COUNT=str(N),
                        SLURM_CPUS_PER_TASK="2")
        r = subprocess.run(["bash", str(script), str(d / "manifest.jsonl")], env=env, capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stderr  # 1: the zoo's one corrupt checkpoint
        assert f"shard {task}/{N}" in r.stderr, r.stderr
    done, rows = lines_done(sorted((d / "reports").glob("task-*.jsonl")))
    total = len((d / "manifest.jsonl").read_text().splitlines())
    assert done == list(range(1, total + 1))
    assert sum(r["status"] == "failed" for r in rows) == 1
    # the same array again does no work
    (d / "reports").rename(d / "reports-first")
    for task in range(N):
        env = clean_env(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(N))
        subprocess.run(["bash", str(script), str(d / "manifest.jsonl")], env=env, capture_output=True, check=False)
    _, again = lines_done(sorted((d / "reports").glob("task-*.jsonl")))
    assert len(again) == total
    assert all(r["status"] in ("skipped", "failed") for r in again)
    assert sum(r["status"] == "skipped" for r in again) == total - 1


def test_kubernetes_indexed_job_is_valid_and_its_command_covers_every_job_once(zoo, tmp_path):
    doc = yaml.safe_load((ROOT / "docs" / "batch" / "k8s-indexed-job.yaml").read_text())
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "Job"
    spec = doc["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    count = int(env["TIMMCONV_SHARD_COUNT"])
    assert count == spec["completions"]
    mount = container["volumeMounts"][0]["mountPath"]
    command = " ".join(container["args"])
    m = re.search(r"timmconv batch (\S+)(.*)$", command)
    assert m, command
    manifest, rest = m.group(1), m.group(2).split()
    assert manifest.startswith(mount + "/")
    d = tmp_path / "k8s"
    shutil.copytree(zoo / "ckpt", d / "ckpt")
    shutil.copy(zoo / "manifest.jsonl", d / "manifest.jsonl")
    (d / "reports").mkdir()
    for index in range(count):
        args = [a.replace(mount, str(d)).replace("${JOB_COMPLETION_INDEX}", str(index)) for a in rest]
        r = subprocess.run([BIN, "batch", manifest.replace(mount, str(d)), *args],
                           env=clean_env(JOB_COMPLETION_INDEX=str(index), **env), capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stderr
        assert f"shard {index}/{count}" in r.stderr, r.stderr
    done, _ = lines_done(sorted((d / "reports").glob("pod-*.jsonl")))
    total = len((d / "manifest.jsonl").read_text().splitlines())
    assert done == list(range(1, total + 1))


def test_zoo_manifest_from_the_pretrained_list(zoo, tmp_path):
    tags = json.loads(subprocess.run([BIN, "models", "test_*", "--pretrained", "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    have = [t for t in tags if t.startswith(("test_resnet.", "test_vit."))]
    src = sorted((zoo / "ckpt").glob("*.pth"))
    for t in have:
        family = t.split(".")[0]
        match = next(p for p in src if p.name.startswith(family + "-"))
        shutil.copy(match, ckpts / f"{t}.pth")
    (tmp_path / "tags.json").write_text(json.dumps(tags))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "zoo_manifest.py"), str(tmp_path / "tags.json"),
                        str(ckpts), str(tmp_path / "out"), "--variant", "", "--variant", "--in-chans 4"],
                       capture_output=True, text=True, check=True)
    jobs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(jobs) == 2 * len(have)
    assert f"{len(have)} of {len(tags)} tags" in r.stderr
    (tmp_path / "manifest.jsonl").write_text(r.stdout)
    b = subprocess.run([BIN, "batch", str(tmp_path / "manifest.jsonl"), "-q"], env=clean_env(),
                       capture_output=True, text=True)
    assert b.returncode == 0, b.stderr
    for j in jobs:
        assert Path(j["output"]).is_file()


def test_no_hash_skips_on_the_recorded_size_and_mtime(zoo, tmp_path):
    d = tmp_path / "nohash"
    shutil.copytree(zoo / "ckpt", d / "ckpt")
    shutil.copy(zoo / "manifest.jsonl", d / "manifest.jsonl")
    run = lambda name: subprocess.run([BIN, "batch", str(d / "manifest.jsonl"), "--no-hash", "-q", "--jobs", "2",
                                       "--report", str(d / name)], env=clean_env(), capture_output=True, text=True)
    assert run("r1.jsonl").returncode == 1  # the corrupt one
    first = [json.loads(l) for l in (d / "r1.jsonl").read_text().splitlines()]
    done = [r for r in first if r["status"] == "converted"]
    from safetensors import safe_open
    with safe_open(done[0]["output"], "np") as f:
        meta = f.metadata()
    assert "source_sha256" not in meta and int(meta["source_size"]) == Path(done[0]["input"]).stat().st_size
    # a new mtime on one input: only its jobs convert again
    touched = Path(done[0]["input"])
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    run("r2.jsonl")
    second = [json.loads(l) for l in (d / "r2.jsonl").read_text().splitlines()]
    again = {r["input"] for r in second if r["status"] == "converted"}
    assert again == {str(touched)}, again
    assert sum(r["status"] == "skipped" for r in second) == len(done) - sum(r["input"] == str(touched) for r in done)

"""`--registry FILE` / TIMMCONV_REGISTRY: a registry written by the shipped tools/gen_registry.py
(run here on the pinned timm 1.0.31 for two architectures) replaces the embedded one. Run by
tools/test.sh (TIMMCONV_BIN points at the binary)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
ARCHS = ["test_resnet", "test_vit"]

GENERATE = """
import sys, importlib.util, timm
spec = importlib.util.spec_from_file_location("gen_registry", sys.argv[1])
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
gen.OUT = sys.argv[2]
archs = sys.argv[3].split(",")
gen.timm.list_models = lambda *a, **k: list(archs)
sys.argv = [sys.argv[0]]  # the shipped results tables (tools/data)
gen.main()
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg") / "registry.jsonl"
    subprocess.run([sys.executable, "-c", GENERATE, str(ROOT / "tools" / "gen_registry.py"), str(out), ",".join(ARCHS)],
                   check=True, timeout=300, capture_output=True)
    return out


def run(*args, **env):
    e = {k: v for k, v in os.environ.items() if k != "TIMMCONV_REGISTRY"}
    e.update(env)
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=e, timeout=60)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_registry_file_replaces_the_embedded_one(registry, how):
    args, env = (["--registry", registry], {}) if how == "flag" else ([], {"TIMMCONV_REGISTRY": str(registry)})
    r = run("models", "--json", *args, **env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ARCHS
    assert run("info", "test_vit", *args, **env).returncode == 0
    # resnet50 is in the embedded registry, not in this one
    assert run("info", "resnet50").returncode == 0
    r = run("info", "resnet50", *args, **env)
    assert r.returncode == 2 and "resnet50" in r.stderr


def test_convert_takes_the_cfg_from_the_registry_file(registry, tmp_path):
    out = tmp_path / "o.safetensors"
    r = run("--registry", registry, "convert", ROOT / "fixtures" / "ckpt" / "test_resnet.f32.zip.pth",
            "-o", out, "--model", "test_resnet", "--in-chans", 1, "-q")
    assert r.returncode == 0, r.stderr
    assert out.exists()


@pytest.mark.parametrize("text", ["", "not json\n", '{"timm":"1","torch":"2","architectures":1,"pretrained":0}\n{"x":1}\n',
                                  '{"timm":"1","torch":"2","architectures":2,"pretrained":0}\n{"name":"b"}\n{"name":"a"}\n'])
def test_bad_registry_file_is_refused(tmp_path, text):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    r = run("--registry", bad, "models")
    assert r.returncode == 2
    assert str(bad) in r.stderr and "gen_registry" in r.stderr
    r = run("--registry", tmp_path / "missing.jsonl", "models")
    assert r.returncode == 2 and "missing.jsonl" in r.stderr

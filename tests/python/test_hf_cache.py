"""`timmconv convert hf-hub:ORG/REPO` shares the Hugging Face cache with huggingface_hub and timm.

A small hub on 127.0.0.1 serves repos written by timm's own `save_for_hf` (random-init models,
model.safetensors or pytorch_model.bin plus config.json). Either huggingface_hub fills the cache
(`hf_hub_download`) and timmconv reads it with HF_HUB_OFFLINE=1, or timmconv downloads into it
and timm reads it offline; in both cases the converted weights must equal the state dict of
`timm.create_model('hf-hub:…', pretrained=True, in_chans=…)` (timm 1.0.31, torch 2.11.0), and
timmconv takes the architecture from config.json (no --model). Run by tools/test.sh."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from huggingface_hub import hf_hub_download
from timm.models._hub import save_for_hf

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
HF_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE")


class Hub(http.server.BaseHTTPRequestHandler):
    """/ORG/REPO/resolve/REV/FILE with the headers huggingface_hub and hf-hub read."""

    repos = {}

    def log_message(self, *args):
        pass

    def _file(self):
        repo, _, rest = self.path.lstrip("/").partition("/resolve/")
        _rev, _, name = rest.partition("/")
        return self.repos.get(repo, {}).get(name)

    def _answer(self, body):
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        size = len(body)
        rng = self.headers.get("Range")
        start, end = 0, size - 1
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a), int(b) if b else size - 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end + 1 - start))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
        self.end_headers()
        return body[start : end + 1]

    def do_HEAD(self):
        self._answer(self._file())

    def do_GET(self):
        data = self._answer(self._file())
        if data:
            self.wfile.write(data)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path_factory.mktemp("repos")
    server.shutdown()


def publish(hub, repo, arch, safe):
    """A repo as timm's push_to_hf_hub writes it, from a random-init model."""
    _, folder = hub
    torch.manual_seed(len(repo))
    model = timm.create_model(arch, pretrained=False)
    out = folder / repo.replace("/", "--")
    save_for_hf(model, str(out), safe_serialization=safe)
    Hub.repos[repo] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert ("model.safetensors" in Hub.repos[repo]) == safe
    return Hub.repos[repo]


def env(**kv):
    e = {k: v for k, v in os.environ.items() if k not in HF_VARS}
    e.update(kv)
    return e


def timm_state_dict(cache, repo, in_chans, tmp_path):
    """timm.create_model('hf-hub:…', pretrained=True) offline on `cache`, in a fresh process:
    huggingface_hub reads its environment when imported."""
    out = tmp_path / "timm.safetensors"
    code = (
        "import sys, timm, safetensors.torch\n"
        "m = timm.create_model(sys.argv[1], pretrained=True, in_chans=int(sys.argv[2]))\n"
        "safetensors.torch.save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[3])\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, f"hf-hub:{repo}", str(in_chans), str(out)],
        check=True,
        env=env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1"),
    )
    return safetensors.torch.load_file(str(out))


def assert_same(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for k, v in ours.items():
        assert v.shape == theirs[k].shape, k
        assert torch.equal(v, theirs[k].to(v.dtype)), k


def test_cache_filled_by_huggingface_hub_converts_offline(hub, tmp_path):
    endpoint, _ = hub
    repo = "org/resnet-safe"
    publish(hub, repo, "test_resnet", safe=True)
    cache = tmp_path / "cache"
    for name in ("config.json", "model.safetensors"):
        hf_hub_download(repo, name, cache_dir=str(cache), endpoint=endpoint)
    assert (cache / "models--org--resnet-safe" / "refs" / "main").read_text() == COMMIT
    out = tmp_path / "out.safetensors"
    subprocess.run(
        [BIN, "convert", f"hf-hub:{repo}", "-o", str(out), "--in-chans", "1", "-q"],
        check=True,
        env=env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9"),
    )
    ours = safetensors.torch.load_file(str(out))
    assert ours["conv1.0.weight"].shape[1] == 1
    assert_same(ours, timm_state_dict(cache, repo, 1, tmp_path))
    meta = json.loads(safetensors.safe_open(str(out), "pt").metadata()["timmconv"])
    assert meta["model"] == "test_resnet"


def test_timmconv_download_is_read_by_timm_offline(hub, tmp_path):
    endpoint, _ = hub
    repo = "org/vit-bin"
    publish(hub, repo, "test_vit", safe=False)
    cache = tmp_path / "home" / "hub"
    out = tmp_path / "out.safetensors"
    # HF_HOME/hub is the cache when HF_HUB_CACHE is unset
    subprocess.run(
        [BIN, "convert", f"hf-hub:{repo}", "-o", str(out), "--in-chans", "4", "-q"],
        check=True,
        env=env(HF_HOME=str(tmp_path / "home"), HF_ENDPOINT=endpoint),
    )
    snap = cache / "models--org--vit-bin" / "snapshots" / COMMIT
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "pytorch_model.bin"]
    ours = safetensors.torch.load_file(str(out))
    assert ours["patch_embed.proj.weight"].shape[1] == 4
    assert_same(ours, timm_state_dict(cache, repo, 4, tmp_path))

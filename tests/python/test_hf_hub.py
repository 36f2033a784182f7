"""`hf-hub:ORG/REPO[@REVISION]` inputs. A small HTTP server on 127.0.0.1 serves a hub-shaped
repo (made by timm's own save_for_hf from a random-init model); timmconv downloads from it with the
hf-hub crate, or huggingface_hub's hf_hub_download fills the cache and timmconv reads it offline.
Either way the converted file must equal the state dict of
`timm.create_model('hf-hub:…', pretrained=True, in_chans=…)` reading the same cache with
HF_HUB_OFFLINE=1 (timm 1.0.31, torch 2.11.0, huggingface_hub as installed with timm by
tools/setup_venv.sh). Run by tools/test.sh (TIMMCONV_BIN points at the binary)."""

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import safetensors.torch
import timm
import torch
from timm.models import save_for_hf

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """repos: {"org/name": {filename: bytes}}, all at COMMIT and reachable as main or COMMIT."""

    def __init__(self):
        self.repos = {}
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                # /{org}/{name}/resolve/{revision}/{filename}
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if len(parts) < 5 or parts[2] != "resolve" or parts[3] not in ("main", COMMIT):
                    return None, "RepoNotFound"
                repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                if repo is None:
                    return None, "RepoNotFound"
                name = "/".join(parts[4:])
                if name not in repo:
                    return None, "EntryNotFound"
                return repo[name], None

            def _reply(self, body_wanted):
                data, err = self._file()
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", err)
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a)
                    end = int(b) if b else end
                body = data[start : end + 1]
                self.send_response(206 if rng else 200)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if body_wanted:
                    self.wfile.write(body)

            def do_HEAD(self):
                self._reply(False)

            def do_GET(self):
                self._reply(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, repo, folder):
        self.repos[repo] = {p.name: p.read_bytes() for p in Path(folder).iterdir()}

    def close(self):
        self.server.shutdown()


def make_repo(tmp_path, arch, safe=True, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    folder = tmp_path / f"repo-{arch}-{int(safe)}"
    save_for_hf(model, folder, safe_serialization=safe)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    h = Hub()
    h.add("acme/test-resnet", make_repo(tmp, "test_resnet"))
    h.add("acme/test-vit-bin", make_repo(tmp, "test_vit", safe=False))
    yield h
    h.close()


def env(cache, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    e["HF_HUB_CACHE"] = str(cache)
    e["HF_HOME"] = str(Path(cache).parent / "hf-home")
    e.update(extra)
    return e


def timmconv(*args, environ):
    return subprocess.run([BIN, *map(str, args)], env=environ, capture_output=True, text=True, timeout=120)


TIMM_OFFLINE = """
import sys, timm, safetensors.torch
m = timm.create_model(sys.argv[1], pretrained=True, **eval(sys.argv[3]))
safetensors.torch.save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[2])
"""


def timm_offline(cache, name, out, **kwargs):
    """timm's own loading of `name` from `cache` with the network off, saved to `out`."""
    subprocess.run(
        [sys.executable, "-c", TIMM_OFFLINE, name, str(out), repr(kwargs)],
        env=env(cache, HF_HUB_OFFLINE="1"),
        check=True,
        timeout=300,
    )
    return safetensors.torch.load_file(str(out))


def assert_same(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for k, v in theirs.items():
        assert ours[k].shape == v.shape, k
        assert torch.equal(ours[k].to(v.dtype), v), k


@pytest.mark.parametrize("repo,in_chans", [("acme/test-resnet", 1), ("acme/test-vit-bin", 4)])
def test_download_into_cache_that_timm_reads_offline(hub, tmp_path, repo, in_chans):
    cache = tmp_path / "cache"
    out = tmp_path / "out.safetensors"
    r = timmconv("convert", f"hf-hub:{repo}", "-o", out, "--in-chans", in_chans, "-q",
                 environ=env(cache, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT
    assert (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").read_text().strip() == COMMIT
    assert (snap / "config.json").is_file()
    # the model came from config.json: no --model was given
    meta = json.loads(safetensors.safe_open(str(out), "pt").metadata()["timmconv"])
    assert meta["model"] == json.loads((snap / "config.json").read_text())["architecture"]
    theirs = timm_offline(cache, f"hf-hub:{repo}", tmp_path / "timm.safetensors", in_chans=in_chans)
    assert_same(safetensors.torch.load_file(str(out)), theirs)


HF_DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download
for f in sys.argv[2:]:
    hf_hub_download(sys.argv[1], f)
"""


@pytest.mark.parametrize("revision", ["", "@main", "@" + COMMIT])
def test_cache_made_by_huggingface_hub_is_read_offline(hub, tmp_path, revision):
    cache = tmp_path / "cache"
    subprocess.run(
        [sys.executable, "-c", HF_DOWNLOAD, "acme/test-resnet", "config.json", "model.safetensors"],
        env=env(cache, HF_ENDPOINT=hub.url),
        check=True,
        timeout=300,
    )
    seen = len(hub.requests)
    out = tmp_path / "out.safetensors"
    r = timmconv("convert", f"hf-hub:acme/test-resnet{revision}", "-o", out, "--in-chans", 2, "-q",
                 environ=env(cache, HF_HUB_OFFLINE="1", HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    assert len(hub.requests) == seen, "an offline conversion touched the network"
    theirs = timm_offline(cache, "hf-hub:acme/test-resnet", tmp_path / "timm.safetensors", in_chans=2)
    assert_same(safetensors.torch.load_file(str(out)), theirs)
    # inspect reads the same cached file
    r = timmconv("inspect", f"hf-hub:acme/test-resnet{revision}", "--json",
                 environ=env(cache, HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_tensors"] == len(safetensors.torch.load_file(
        str(next((cache / "models--acme--test-resnet" / "snapshots").iterdir()) / "model.safetensors")))


def test_offline_and_not_cached_is_refused(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out.safetensors"
    r = timmconv("convert", "hf-hub:acme/nothing", "-o", out, environ=env(cache, HF_HUB_OFFLINE="1"))
    assert r.returncode == 2
    assert "HF_HUB_OFFLINE" in r.stderr and str(cache) in r.stderr
    assert not out.exists()


def test_missing_repo_is_an_error_naming_it(hub, tmp_path):
    out = tmp_path / "out.safetensors"
    r = timmconv("convert", "hf-hub:acme/missing", "-o", out, environ=env(tmp_path / "c", HF_ENDPOINT=hub.url))
    assert r.returncode == 2
    assert "acme/missing" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", ["hf-hub:", "hf-hub:acme", "hf-hub:a/b/c", "hf-hub:acme/x@", "hf-hub:../x"])
def test_bad_hub_names_are_refused(tmp_path, name):
    r = timmconv("convert", name, "-o", tmp_path / "o.safetensors", environ=env(tmp_path / "c", HF_HUB_OFFLINE="1"))
    assert r.returncode == 2
    assert "hf-hub:ORG/REPO" in r.stderr


def test_fifo_input_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    start = time.monotonic()
    r = timmconv("convert", fifo, "-o", tmp_path / "o.safetensors", "--model", "test_resnet", environ=os.environ)
    assert time.monotonic() - start < 60
    assert r.returncode == 2
    assert "not a regular file" in r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_hub_folder_input_uses_its_config(tmp_path):
    folder = make_repo(tmp_path, "test_resnet")
    out = tmp_path / "o.safetensors"
    r = timmconv("convert", folder, "-o", out, "--in-chans", 1, "-q", environ=os.environ)
    assert r.returncode == 0, r.stderr
    model = timm.create_model(f"local-dir:{folder}", pretrained=True, in_chans=1)
    assert_same(safetensors.torch.load_file(str(out)), model.state_dict())
    empty = tmp_path / "empty"
    empty.mkdir()
    r = timmconv("convert", empty, "-o", out, "--force", environ=os.environ)
    assert r.returncode == 2 and "model.safetensors" in r.stderr


def test_architecture_unknown_to_the_registry_converts_from_its_config(tmp_path):
    folder = make_repo(tmp_path, "test_resnet")
    timm_model = timm.create_model(f"local-dir:{folder}", pretrained=True, in_chans=1, num_classes=3)
    # the same weights described as a model this registry has never heard of
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architecture"] = "brand_new_net"
    cfg["pretrained_cfg"]["architecture"] = "brand_new_net"
    (folder / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.safetensors"
    r = timmconv("convert", folder, "-o", out, "--in-chans", 1, "--num-classes", 3, "-q", environ=os.environ)
    assert r.returncode == 0, r.stderr
    ours = safetensors.torch.load_file(str(out))
    theirs = timm_model.state_dict()
    # timm re-initialises a resized head; everything else must be timm's
    head = cfg["pretrained_cfg"]["classifier"]
    assert f"{head}.weight" not in ours
    assert_same(ours, {k: v for k, v in theirs.items() if not k.startswith(head + ".")})


def test_architecture_without_a_first_conv_converts_for_any_in_chans(tmp_path):
    # csatv2 (first_conv: [], a fixed DCT stem) has the same state dict for every in_chans
    torch.manual_seed(0)
    src = tmp_path / "csatv2.pth"
    torch.save(timm.create_model("csatv2").state_dict(), src)
    out = tmp_path / "o.safetensors"
    r = timmconv("convert", src, "-o", out, "--model", "csatv2", "--in-chans", 1, environ=os.environ)
    assert r.returncode == 0, r.stderr
    assert "first_conv: []" in r.stderr
    model = timm.create_model("csatv2", in_chans=1)
    model.load_state_dict(torch.load(src), strict=True)
    assert_same(safetensors.torch.load_file(str(out)), model.state_dict())

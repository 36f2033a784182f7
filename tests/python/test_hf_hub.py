"""`hf-hub:ORG/REPO[@REVISION]` inputs. A small HTTP server on 127.0.0.1 serves a hub-shaped
repo (made by timm's own save_for_hf from a random-init model); timmconv downloads from it with its
own downloader, or huggingface_hub's hf_hub_download fills the cache and timmconv reads it offline.
Either way the converted file must equal the state dict of
`timm.create_model('hf-hub:…', pretrained=True, in_chans=…)` reading the same cache with
HF_HUB_OFFLINE=1 (timm 1.0.31, torch 2.11.0, huggingface_hub as installed with timm by
tools/setup_venv.sh). Run by tools/test.sh (TIMMCONV_BIN points at the binary).

The same server turns hostile per (repo, file) through `Hub.tricks`: path-shaped ETags and commits,
a 500, a body that does not hash to its ETag or is shorter than its Content-Length, and a redirect
to a second server (a "CDN") that records the headers it is sent."""

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
        # (repo, filename) -> {"etag", "linked_etag", "commit", "commit_twice", "status", "body",
        # "extra_length", "redirect"}: what a hostile hub sends instead
        self.tricks = {}
        self.auth = []  # (path, Authorization header or None) of every request
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                # /{org}/{name}/resolve/{revision}/{filename}
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                hub.auth.append((self.path, self.headers.get("Authorization")))
                if len(parts) < 5 or parts[2] != "resolve" or parts[3] not in ("main", COMMIT):
                    return None, "RepoNotFound", {}
                repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                if repo is None:
                    return None, "RepoNotFound", {}
                name = "/".join(parts[4:])
                if name not in repo:
                    return None, "EntryNotFound", {}
                return repo[name], None, hub.tricks.get((f"{parts[0]}/{parts[1]}", name), {})

            def _reply(self, body_wanted):
                data, err, trick = self._file()
                if trick:
                    return self._hostile(data, trick, body_wanted)
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

            def _hostile(self, data, trick, body_wanted):
                if "status" in trick:
                    self.send_response(trick["status"])
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                sha = hashlib.sha256(data).hexdigest()
                body = trick.get("body", data)
                # honour a Range as the hub does, so a client that probes first (hf-hub 0.4.3
                # did) gets as far as using the names
                rng = self.headers.get("Range")
                full = len(body)
                if rng and rng.startswith("bytes=") and "redirect" not in trick:
                    a, _, b = rng[6:].partition("-")
                    body = body[int(a) : (int(b) + 1 if b else None)]
                self.send_response(302 if "redirect" in trick else 206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes 0-{max(len(body) - 1, 0)}/{full}")
                self.send_header("ETag", trick.get("etag", '"' + sha + '"'))
                if "linked_etag" in trick:
                    self.send_header("X-Linked-Etag", trick["linked_etag"])
                self.send_header("X-Repo-Commit", trick.get("commit", COMMIT))
                if trick.get("commit_twice"):
                    self.send_header("X-Repo-Commit", "f" * 40)
                if "redirect" in trick:
                    self.send_header("Location", trick["redirect"])
                    body = b""
                self.send_header("Content-Length", str(len(body) + trick.get("extra_length", 0)))
                self.end_headers()
                try:
                    if body_wanted:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client refused the headers and hung up, as it should
                # HTTP/1.0: the connection closes here, short of a lying Content-Length

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


class Cdn:
    """A second origin (another port) that serves blobs by name and records every request's
    headers, as a CDN behind a hub redirect would."""

    def __init__(self):
        self.blobs = {}
        self.seen = []
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                cdn.seen.append((self.path, dict(self.headers)))
                data = cdn.blobs.get(self.path.split("?")[0])
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", '"cdn-object-1"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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
    # both weight files, so that a wrong fallback would succeed
    both = make_repo(tmp, "test_resnet", safe=False)
    (both / "model.safetensors").write_bytes((h.repos["acme/test-resnet"])["model.safetensors"])
    h.add("acme/both", both)
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


def paths_under(root, skip):
    """Every path below `root` (folders, files, links) except those inside `skip`."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            continue
        out.update(str(d / n) for n in dirnames + filenames if d / n != skip)
    return out


def files_under(root):
    """Everything below `root` that is not a folder (files, links, partial downloads)."""
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_symlink() or not p.is_dir())


def hostile_run(hub, tmp_path, repo, tricks, **extra_env):
    """Serves `acme/both` as `repo` with `tricks` on model.safetensors, converts it, and checks
    what every refusal must hold: exit 2 without a panic, no output, nothing new anywhere under
    tmp_path outside the cache, nothing beside tmp_path, and no file at all in the cache."""
    hub.repos[repo] = dict(hub.repos["acme/both"])
    hub.tricks[(repo, "model.safetensors")] = tricks
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "o.safetensors"
    out.parent.mkdir()
    before = paths_under(tmp_path, cache)
    beside = set(os.listdir(tmp_path.parent))
    r = timmconv("convert", f"hf-hub:{repo}", "-o", out, "-q", environ=env(cache, HF_ENDPOINT=hub.url, **extra_env))
    assert r.returncode == 2, r.stderr
    assert "panicked" not in r.stderr and "RUST_BACKTRACE" not in r.stderr, r.stderr
    assert paths_under(tmp_path, cache) == before
    assert set(os.listdir(tmp_path.parent)) == beside
    assert list(out.parent.iterdir()) == []
    if cache.exists():
        assert files_under(cache) == []
    return r, cache


@pytest.mark.parametrize("header,value", [
    ("etag", '"../../escape"'),
    ("etag", "../../../../escape"),
    ("etag", "W/\"../../escape\""),
    ("linked_etag", "/tmp/timmconv-absolute-etag"),
    ("etag", "ABSOLUTE"),
    ("etag", '"a.b"'),
    ("commit", "../../x"),
    ("commit", "0123456789abcdef0123456789abcdef0123456/"),
    ("commit", "/tmp/timmconv-absolute-commit"),
    ("commit", COMMIT.upper()),
])
def test_hostile_names_are_refused_before_the_cache_is_touched(hub, tmp_path, header, value):
    # regression: hf-hub 0.4.3 joined these into blobs/{etag} and snapshots/{commit} unchecked
    if value == "ABSOLUTE":
        value = str(tmp_path / "outside" / "absolute-etag")
    r, cache = hostile_run(hub, tmp_path, f"evil/{header}-{abs(hash(value))}", {header: value})
    name = {"etag": "ETag", "linked_etag": "ETag", "commit": "X-Repo-Commit"}[header]
    assert f"refusing the server's {name} `{value}`" in r.stderr, r.stderr
    assert "nothing was written" in r.stderr
    assert not cache.exists(), files_under(cache)
    assert not Path(value).exists() and not (tmp_path / "outside").exists()
    assert not Path("/tmp/timmconv-absolute-etag").exists()


def test_a_header_sent_twice_is_refused(hub, tmp_path):
    r, cache = hostile_run(hub, tmp_path, "evil/twice", {"commit_twice": True})
    assert "X-Repo-Commit header is sent 2 times" in r.stderr, r.stderr
    assert not cache.exists()


def test_server_error_on_safetensors_does_not_fall_back_to_the_pickle(hub, tmp_path):
    # regression: any error on model.safetensors used to fall back to pytorch_model.bin
    hub.requests.clear()
    r, _ = hostile_run(hub, tmp_path, "evil/err500", {"status": 500})
    assert "HTTP 500" in r.stderr and "evil/err500/resolve/main/model.safetensors" in r.stderr, r.stderr
    assert not any("pytorch_model.bin" in path for _, path, _ in hub.requests), hub.requests


def test_body_that_does_not_hash_to_its_etag_is_refused_and_removed(hub, tmp_path):
    data = hub.repos["acme/both"]["model.safetensors"]
    evil = bytearray(data)
    evil[-1] ^= 1
    r, cache = hostile_run(hub, tmp_path, "evil/sha", {"body": bytes(evil)})
    assert f"the server's ETag says {hashlib.sha256(data).hexdigest()}" in r.stderr, r.stderr
    # the folder the temporary file went to is there, empty
    assert (cache / "models--evil--sha" / "blobs").is_dir()


def test_body_shorter_than_its_content_length_is_refused(hub, tmp_path):
    r, _ = hostile_run(hub, tmp_path, "evil/short", {"extra_length": 1000})
    assert "evil/short/resolve/main/model.safetensors" in r.stderr, r.stderr
    assert "Content-Length" in r.stderr or "closed before" in r.stderr, r.stderr


def test_missing_weights_fall_back_only_on_not_found(hub, tmp_path):
    # a 404 with EntryNotFound (the hub's "no such file") is the one reason to try the pickle
    cache = tmp_path / "cache"
    out = tmp_path / "o.safetensors"
    r = timmconv("convert", "hf-hub:acme/test-vit-bin", "-o", out, "-q", environ=env(cache, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    snap = cache / "models--acme--test-vit-bin" / "snapshots" / COMMIT
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "pytorch_model.bin"]


def test_config_error_is_an_error_not_a_missing_config(hub, tmp_path):
    hub.repos["evil/config"] = dict(hub.repos["acme/test-resnet"])
    hub.tricks[("evil/config", "config.json")] = {"status": 503}
    out = tmp_path / "o.safetensors"
    r = timmconv("convert", "hf-hub:evil/config", "-o", out, "-q", "--model", "test_resnet",
                 environ=env(tmp_path / "cache", HF_ENDPOINT=hub.url))
    assert r.returncode == 2, r.stderr
    assert "HTTP 503" in r.stderr and f"evil/config/resolve/{COMMIT}/config.json" in r.stderr, r.stderr
    assert not out.exists()


def test_redirect_to_another_host_gets_no_token(hub, tmp_path):
    """An LFS file: the hub answers 302 with X-Linked-Etag (the sha256) and X-Repo-Commit, the
    CDN on another origin serves the bytes. The token goes to the hub, never to the CDN."""
    cdn = Cdn()
    try:
        data = hub.repos["acme/test-resnet"]["model.safetensors"]
        sha = hashlib.sha256(data).hexdigest()
        cdn.blobs[f"/blob/{sha}"] = data
        hub.repos["acme/lfs"] = dict(hub.repos["acme/test-resnet"])
        hub.tricks[("acme/lfs", "model.safetensors")] = {
            "redirect": f"{cdn.url}/blob/{sha}?signed=1",
            "etag": '"0000000000000000000000000000000000000000"',
            "linked_etag": f'"{sha}"',
        }
        cache = tmp_path / "cache"
        out = tmp_path / "o.safetensors"
        hub.auth.clear()
        r = timmconv("convert", "hf-hub:acme/lfs", "-o", out, "--in-chans", 1, "-q",
                     environ=env(cache, HF_ENDPOINT=hub.url, HF_TOKEN="hf_secret_token"))
        assert r.returncode == 0, r.stderr
        assert [a for p, a in hub.auth if "acme/lfs" in p] == ["Bearer hf_secret_token"] * 2, hub.auth
        assert len(cdn.seen) == 1
        assert not any(k.lower() == "authorization" for k in cdn.seen[0][1]), cdn.seen
        assert "hf_secret_token" not in json.dumps(cdn.seen)
        repo = cache / "models--acme--lfs"
        assert (repo / "blobs" / sha).read_bytes() == data
        link = repo / "snapshots" / COMMIT / "model.safetensors"
        assert os.readlink(link) == f"../../blobs/{sha}"
        theirs = timm_offline(cache, "hf-hub:acme/lfs", tmp_path / "timm.safetensors", in_chans=1)
        assert_same(safetensors.torch.load_file(str(out)), theirs)
    finally:
        cdn.close()


def test_token_from_hf_home_reaches_the_hub(hub, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text("hf_file_token\n")
    hub.auth.clear()
    r = timmconv("inspect", "hf-hub:acme/test-resnet", "--json", environ=env(cache, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    assert {a for _, a in hub.auth} == {"Bearer hf_file_token"}, hub.auth


def test_parallel_downloads_into_one_cache_all_succeed(hub, tmp_path):
    # batch --jobs can fetch one repo from several processes at once: each stages its blob and
    # link under its own name and renames it into place, so none fails on another's files
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([BIN, "convert", "hf-hub:acme/test-resnet", "-o", tmp_path / f"o{i}.safetensors", "-q"],
                         env=env(cache, HF_ENDPOINT=hub.url), stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    repo = cache / "models--acme--test-resnet"
    assert sorted(p.name for p in (repo / "snapshots" / COMMIT).iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in repo.rglob(".timmconv-*")], "a staging file was left behind"
    assert len({(tmp_path / f"o{i}.safetensors").read_bytes() for i in range(6)}) == 1

#!/usr/bin/env python3
"""Generate timmconv's embedded state-dict keys and shapes of every timm architecture.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root:

    PY=$(bash tools/setup_venv.sh); "$PY" tools/gen_keys.py [--limit N]
    "$PY" tools/gen_keys.py --repack src/registry/keys.packed   # re-pack recorded text, no builds

Every architecture is built on torch.device('meta') (no memory, no weights) as
`timm.create_model(NAME)` builds it, and its `state_dict()` keys and shapes are recorded, in
order; a pretrained tag whose cfg builds a different model (another num_classes, or another
input size for a model with a fixed input size) is built too and recorded as a delta. That is
exactly what `load_state_dict(strict=True)` compares a checkpoint against.

The recorded text is
  line 1: a JSON header (versions, counts, build failures)
  `@ARCH` opening an architecture, then one `P SUFFIX SHAPE` line per key, where the key is the
    first P characters of the previous key followed by SUFFIX (front coding), and SHAPE is the
    dimensions joined by `,` (`-` for a 0-dim tensor)
  `%TAG` opening that tag's delta: `+ KEY SHAPE` (added or reshaped) and `- KEY` (absent) lines.
  `%:headless` opening the delta of `timm.create_model(NAME, num_classes=0)`, when it differs
    beyond the classifier's own weight and bias (a head whose norm goes with it, as in LeViT or
    EfficientViT-M: timm builds `Identity` there and drops those keys at load).

Writes src/registry/keys.packed, that text split so that one architecture is read without
inflating the others (`pack`):
  line 1: the header line
  line 2: the deflated length of each chunk, in order, joined by spaces
  then one `ARCH CHUNK [TAG ...]` line per architecture, in the text's order (sorted by bytes):
    the chunk holding its lines and the tags of its `%TAG` deltas
  an empty line
  then the chunks, each the raw deflate of the whole lines (`@ARCH` to the next `@`) of
    consecutive architectures, closed once it holds CHUNK_TEXT bytes of text.
`--repack FILE` reads the text back from FILE (this format, or the single raw-deflate stream of
earlier versions) and packs it again, building nothing.
"""

import argparse
import json
import sys
import time
import warnings
import zlib
from pathlib import Path

import timm
import torch
from timm.models._registry import get_arch_pretrained_cfgs

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "registry" / "keys.packed"
# Text per chunk: small enough that one look-up inflates well under a millisecond, large enough
# that keys shared between neighbouring architectures still compress together.
CHUNK_TEXT = 64 << 10


def deflate(text):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(text.encode()) + c.flush()


def pack(text):
    """The recorded text (header line, then the body) in the packed, indexed form."""
    header, _, body = text.partition("\n")
    archs = []  # (name, lines)
    for line in body.splitlines():
        if line.startswith("@"):
            archs.append((line[1:], [line]))
        else:
            assert archs, f"line before any arch: {line!r}"
            archs[-1][1].append(line)
    names = [n for n, _ in archs]
    assert names == sorted(names, key=str.encode) and len(set(names)) == len(names), "arch order"
    chunks, index, cur = [], [], []
    for name, lines in archs:
        tags = [l[1:] for l in lines if l.startswith("%")]
        assert all(t and not any(c.isspace() for c in t) for t in tags), f"{name}: tags {tags!r}"
        cur.append("\n".join(lines) + "\n")
        index.append(" ".join([name, str(len(chunks)), *tags]))
        if sum(map(len, cur)) >= CHUNK_TEXT:
            chunks.append(deflate("".join(cur)))
            cur = []
    if cur:
        chunks.append(deflate("".join(cur)))
    head = "\n".join([header, " ".join(str(len(c)) for c in chunks), *index]) + "\n\n"
    return head.encode() + b"".join(chunks)


def unpack(data):
    """The recorded text back from `pack`'s form."""
    head, sep, rest = data.partition(b"\n\n")
    assert sep, "no end of the index"
    header, lens, *_ = head.decode().split("\n")
    parts, at = [], 0
    for n in map(int, lens.split()):
        parts.append(zlib.decompress(rest[at : at + n], -15).decode())
        at += n
    assert at == len(rest), "trailing bytes"
    return header + "\n" + "".join(parts)


def read_text(path):
    data = Path(path).read_bytes()
    if data.startswith(b'{"'):
        return unpack(data)
    return zlib.decompress(data, -15).decode()  # the single stream of earlier versions


def state(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
    out = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    for k, _ in out:
        assert k and not any(c.isspace() for c in k), f"{name}: key {k!r}"
    return model, out


def shape_text(s):
    return ",".join(str(d) for d in s) if s else "-"


def common(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def differs(cfg, default_cfg, fixed):
    if cfg.num_classes != default_cfg.num_classes:
        return True
    return fixed and tuple(cfg.input_size or ()) != tuple(default_cfg.input_size or ())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N architectures (for a quick try)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--repack", metavar="FILE", help="pack the text recorded in FILE again, building nothing")
    args = ap.parse_args()
    if args.repack:
        write(read_text(args.repack), args.out)
        return
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        sys.exit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} / {timm.__version__}")
    torch.set_num_threads(1)
    names = sorted(timm.list_models(), key=lambda n: n.encode())
    if args.limit:
        names = names[: args.limit]
    body, failures, deltas, headless = [], [], 0, 0
    start = time.time()
    for i, name in enumerate(names):
        try:
            model, keys = state(name)
        except Exception as e:  # noqa: BLE001 - recorded, like gen_registry's build_error
            failures.append(name)
            print(f"{name}: {type(e).__name__}: {e}"[:200], file=sys.stderr)
            continue
        body.append(f"@{name}")
        prev = ""
        for k, s in keys:
            p = common(prev, k)
            body.append(f"{p} {k[p:]} {shape_text(s)}")
            prev = k
        default_cfg = model.pretrained_cfg
        fixed = bool(default_cfg.get("fixed_input_size", False))
        base = dict(keys)
        # {"arch.tag": PretrainedCfg}
        cfgs = {k.partition(".")[2]: v for k, v in (get_arch_pretrained_cfgs(name) or {}).items()}
        default_obj = cfgs.get(default_cfg.get("tag") or "", None)
        for tag, cfg in cfgs.items():
            if default_obj is None or not differs(cfg, default_obj, fixed):
                continue
            try:
                _, tkeys = state(f"{name}.{tag}")
            except Exception as e:  # noqa: BLE001
                print(f"{name}.{tag}: {type(e).__name__}: {e}"[:200], file=sys.stderr)
                continue
            tk = dict(tkeys)
            lines = [f"+ {k} {shape_text(s)}" for k, s in tkeys if base.get(k) != s]
            lines += [f"- {k}" for k in base if k not in tk]
            if lines:
                body.append(f"%{tag}")
                body.extend(lines)
                deltas += 1
        # headless: what num_classes=0 removes besides the cfg's classifier weight and bias
        try:
            _, hkeys = state(name, num_classes=0)
        except Exception as e:  # noqa: BLE001
            print(f"{name} num_classes=0: {type(e).__name__}: {e}"[:200], file=sys.stderr)
            hkeys = None
        if hkeys is not None:
            classifiers = default_cfg.get("classifier") or []
            if isinstance(classifiers, str):
                classifiers = [classifiers]
            own = {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}
            hk = dict(hkeys)
            gone = [k for k in base if k not in hk and k not in own]
            if gone:
                body.append("%:headless")
                body.extend(f"- {k}" for k in gone)
                headless += 1
        if i % 100 == 0:
            print(f"{i}/{len(names)} {name} {time.time() - start:.0f}s", file=sys.stderr)
    header = {
        "generator": "tools/gen_keys.py",
        "timm": timm.__version__,
        "torch": torch.__version__.split("+")[0],
        "architectures": len(names) - len(failures),
        "tag_deltas": deltas,
        "headless_deltas": headless,
        "build_failures": failures,
    }
    text = json.dumps(header, sort_keys=True) + "\n" + "\n".join(body) + "\n"
    write(text, args.out)
    print(f"{len(failures)} failures, {deltas} tag deltas, {headless} headless deltas, {time.time() - start:.0f}s", file=sys.stderr)


def write(text, out):
    data = pack(text)
    assert unpack(data) == text, "pack does not round-trip"
    Path(out).write_bytes(data)
    print(f"{len(text)} bytes of text -> {len(data)} bytes packed", file=sys.stderr)


if __name__ == "__main__":
    main()

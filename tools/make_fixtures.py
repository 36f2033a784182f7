#!/usr/bin/env python3
"""Generate timmconv's test fixtures from PyTorch and timm themselves.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root:

    .venv/bin/python tools/make_fixtures.py

Writes, deterministically (fixed seeds):

  fixtures/ckpt/        small checkpoints from timm's test_* models (and two reduced real
                        architectures: crossvit for tuple first_conv/classifier, tresnet for a
                        space-to-depth stem) in every container and dtype timmconv reads,
                        training-checkpoint wrappers, strided and storage-sharing tensors.
  fixtures/expected/read/<file>.json
                        what torch.load + timm's load_state_dict give for each checkpoint: the
                        chosen state-dict key and, per tensor, dtype, shape and the SHA-256 of its
                        bytes in row-major order.
  fixtures/expected/convert/<file>.json
                        for in_chans in {1,2,3,4,7} x num_classes in {cfg's, 0, 10}: every tensor of
                        timm.create_model(arch, pretrained=True,
                        pretrained_cfg_overlay=dict(file=SRC), in_chans=.., num_classes=..)
                        .state_dict(), cast back to the source dtype, hashed the same way; keys
                        timm re-initialised (the dropped head, an unadaptable stem) are listed.
  fixtures/malicious/   pickles and torch.save zips that run a payload when unpickled by Python,
                        with index.json naming the global each must be refused for. The generator
                        proves each payload is live by unpickling it in a throw-away subprocess.
"""

import argparse
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import timm
import safetensors.torch

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
CKPT = FIX / "ckpt"
EXP_READ = FIX / "expected" / "read"
EXP_CONV = FIX / "expected" / "convert"
MAL = FIX / "malicious"

# Reduced real architectures, built with these kwargs (the test passes the same cfg values).
FAMILIES = {
    "test_resnet": {},
    "test_efficientnet": {},
    "test_vit": {},
    "test_convnext": {},
    # tuple first_conv ('patch_embed.0.proj', 'patch_embed.1.proj') and classifier ('head.0', 'head.1')
    "crossvit_tiny_240": dict(embed_dim=(16, 32), depth=((1, 1, 0),), num_heads=(2, 2), mlp_ratio=(1, 1, 1)),
    # space-to-depth stem: body.conv1.conv.weight has 48 = 16 x 3 input channels
    "tresnet_m": dict(layers=[1, 1, 1, 1], width_factor=0.125),
}

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "bool",
}

# (family, dtype, container) sources that the conversion tests run on.
CONVERT_SOURCES = [
    ("test_resnet", "f32", "zip"),
    ("test_resnet", "f16", "zip"),
    ("test_resnet", "bf16", "legacy"),
    ("test_resnet", "f32", "safetensors"),
    ("test_resnet", "f32", "train"),
    ("test_efficientnet", "f32", "zip"),
    ("test_efficientnet", "f16", "legacy"),
    ("test_vit", "f32", "zip"),
    ("test_vit", "bf16", "safetensors"),
    ("test_convnext", "f32", "zip"),
    ("test_convnext", "bf16", "zip"),
    ("crossvit_tiny_240", "f32", "zip"),
    ("tresnet_m", "f32", "zip"),
]
IN_CHANS = [1, 2, 3, 4, 7]


def tensor_bytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def digest(t):
    return hashlib.sha256(tensor_bytes(t)).hexdigest()


def describe(sd):
    return [[k, DTYPE_NAMES[v.dtype], list(v.shape), digest(v)] for k, v in sd.items() if isinstance(v, torch.Tensor)]


def source_name(family, dtype, container):
    ext = {"zip": "zip.pth", "legacy": "legacy.pth", "safetensors": "safetensors", "train": "train.pth"}[container]
    return f"{family}.{dtype}.{ext}"


def make_model(family, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model(family, **FAMILIES[family])
    # give every tensor a non-default value so that a mix-up shows, keeping activations alive
    # (zero-initialised norms and heads, and BN statistics far from the data, would make the
    # features all zero and hide the weights from a parity check)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        for name, b in model.named_buffers():
            if "running_mean" in name:
                b.copy_(torch.randn_like(b) * 0.1)
            elif "running_var" in name:
                b.copy_(torch.rand_like(b) * 0.5 + 0.75)
            elif b.is_floating_point():
                b.copy_(torch.rand_like(b) + 0.5)
            elif "num_batches_tracked" in name:
                b.fill_(7)
    return model.eval()


def save(obj, path, container):
    if container == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, path)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def make_sources():
    CKPT.mkdir(parents=True, exist_ok=True)
    for family, dtype, container in sorted(set(CONVERT_SOURCES) | {(f, "f32", "zip") for f in FAMILIES}):
        model = make_model(family)
        sd = OrderedDict((k, v.to(DTYPES[dtype]) if v.is_floating_point() else v) for k, v in model.state_dict().items())
        path = CKPT / source_name(family, dtype, container)
        if container == "safetensors":
            safetensors.torch.save_file(sd, str(path), metadata={"format": "pt"})
        elif container == "train":
            # a timm train.py checkpoint: DDP-prefixed weights, a torch.compile-prefixed EMA
            # (different values, so picking the wrong one shows), optimizer state, argparse args
            ema = make_model(family, seed=1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            model.train()
            x = torch.randn(2, 3, 32, 32)
            model(x).sum().backward()
            opt.step()
            model.eval()
            ckpt = OrderedDict(
                epoch=3,
                arch=family,
                state_dict=OrderedDict(("module." + k, v) for k, v in model.state_dict().items()),
                optimizer=opt.state_dict(),
                args=argparse.Namespace(model=family, lr=0.1, epochs=10),
                version=2,
                metric=0.25,
                state_dict_ema=OrderedDict(("_orig_mod." + k, v) for k, v in ema.state_dict().items()),
            )
            save(ckpt, path, "zip")
        else:
            save(sd, path, container)


def make_views():
    """Tensors whose views torch.save keeps: offsets, strides, shared storages, every dtype."""
    torch.manual_seed(3)
    base = torch.randn(6, 8)
    flat = torch.arange(40, dtype=torch.float32)
    sd = OrderedDict()
    sd["transposed"] = base.t()  # non-contiguous
    sd["column"] = base[:, 3]  # strided, offset 3
    sd["row_slice"] = base[2:4]  # offset 16, shares base's storage
    sd["base"] = base
    sd["narrow_a"] = flat[5:15]  # two views of one storage at different offsets
    sd["narrow_b"] = flat[20:40].view(4, 5)
    sd["expanded"] = torch.randn(1, 5).expand(3, 5)  # stride 0
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 4)
    sd["f64"] = torch.randn(3, dtype=torch.float64)
    sd["f16"] = torch.randn(2, 3).half().t()
    sd["bf16"] = torch.randn(5).bfloat16()
    sd["i64"] = torch.tensor([-(2**40), 0, 2**40])
    sd["i32"] = torch.tensor([-7, 8], dtype=torch.int32)
    sd["i16"] = torch.tensor([[-3, 4]], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    save(sd, CKPT / "views.zip.pth", "zip")
    save(sd, CKPT / "views.legacy.pth", "legacy")
    # protocol 4 and 5 pickles inside the zip
    torch.save(sd, CKPT / "views.proto4.pth", pickle_protocol=4)
    # a zip whose entries were recompressed with deflate (a user's re-packed archive)
    deflated = CKPT / "views.deflated.pth"
    with zipfile.ZipFile(CKPT / "views.zip.pth") as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            dst.writestr(fixed, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)


def expected_read(path, **kw):
    """The state dict timm would take from `path`, described."""
    from timm.models._helpers import load_state_dict

    sd = load_state_dict(str(path), weights_only=False, **kw)
    raw = torch.load(path, weights_only=False) if not str(path).endswith(".safetensors") else None
    key = ""
    if isinstance(raw, dict):
        use_ema = kw.get("use_ema", True)
        if use_ema and raw.get("state_dict_ema") is not None:
            key = "state_dict_ema"
        elif use_ema and raw.get("model_ema") is not None:
            key = "model_ema"
        elif "state_dict" in raw:
            key = "state_dict"
        elif "model" in raw:
            key = "model"
    return {"state_key": key or None, "tensors": describe(sd)}


def make_expected_read():
    for path in sorted(CKPT.iterdir()):
        exp = expected_read(path)
        if path.name.endswith(".train.pth"):
            exp["no_ema"] = expected_read(path, use_ema=False)
        write_json(EXP_READ / (path.name + ".json"), exp)


def create_recording_missing(name, **kwargs):
    """timm.create_model, also returning the keys its load_state_dict reported missing (the
    tensors timm re-initialised rather than loaded)."""
    missing = []
    original = torch.nn.Module.load_state_dict

    def recording(self, state_dict, strict=True, assign=False):
        result = original(self, state_dict, strict=strict, assign=assign)
        missing.extend(result.missing_keys)
        return result

    torch.nn.Module.load_state_dict = recording
    try:
        model = timm.create_model(name, **kwargs)
    finally:
        torch.nn.Module.load_state_dict = original
    return model, set(missing)


def make_expected_convert():
    for family, dtype, container in CONVERT_SOURCES:
        name = source_name(family, dtype, container)
        src = CKPT / name
        base = timm.create_model(family, **FAMILIES[family])
        cfg = base.pretrained_cfg
        cases = []
        for in_chans in IN_CHANS:
            for num_classes in [cfg["num_classes"], 0, 10]:
                model, missing = create_recording_missing(
                    family,
                    pretrained=True,
                    pretrained_cfg_overlay=dict(file=str(src)),
                    in_chans=in_chans,
                    num_classes=num_classes,
                    **FAMILIES[family],
                )
                tensors, reinit = [], sorted(missing)
                for k, v in model.state_dict().items():
                    if k in missing:
                        continue
                    if v.is_floating_point():
                        v = v.to(DTYPES[dtype])
                    tensors.append([k, DTYPE_NAMES[v.dtype], list(v.shape), digest(v)])
                cases.append(dict(in_chans=in_chans, num_classes=num_classes, reinit=reinit, tensors=tensors))
        first_conv = cfg["first_conv"]
        classifier = cfg["classifier"]
        write_json(
            EXP_CONV / (name + ".json"),
            dict(
                architecture=family,
                model_kwargs={k: v for k, v in FAMILIES[family].items()},
                first_conv=[first_conv] if isinstance(first_conv, str) else list(first_conv),
                classifier=[classifier] if isinstance(classifier, str) else list(classifier),
                base_chans=cfg["input_size"][0],
                num_classes=cfg["num_classes"],
                cases=cases,
            ),
        )


def make_expected_cast():
    """torch's own f32 -> f16/bf16 and bf16 -> f32 casts of whole checkpoints."""
    for src, targets in [("test_resnet.f32.zip.pth", ("f16", "bf16")), ("test_vit.bf16.safetensors", ("f32", "f16"))]:
        from timm.models._helpers import load_state_dict

        sd = load_state_dict(str(CKPT / src))
        for t in targets:
            cast = OrderedDict((k, v.to(DTYPES[t]) if v.is_floating_point() else v) for k, v in sd.items())
            write_json(FIX / "expected" / "cast" / f"{src}.{t}.json", {"tensors": describe(cast)})


REGISTRY_PATTERNS = [
    "resnet*", "*vit_small*", "convnext_*", "efficientnet_b[0-3]*", "test_*", "tresnet_?",
    "crossvit_*", "vit_base_patch16_224", "*mobilenetv3*", "regnet[xy]_0??", "deit*distilled*",
    "[!a-r]*net*",
]
INFO_SAMPLE = [
    "test_resnet", "test_vit.r160_in1k", "resnet50", "resnet50.a1_in1k", "convnext_tiny.in12k_ft_in1k",
    "vit_base_patch16_224.augreg2_in21k_ft_in1k", "efficientnet_b0", "crossvit_tiny_240", "tresnet_m",
    "deit_tiny_distilled_patch16_224", "mobilenetv3_large_100.ra_in1k", "inception_v3.tv_in1k", "regnety_040",
]


def make_expected_registry():
    """timm's own answers for `models --json` and `info --json`."""
    lists = []
    for p in REGISTRY_PATTERNS:
        lists.append(dict(patterns=[p], pretrained=False, names=timm.list_models(p)))
        lists.append(dict(patterns=[p], pretrained=True, names=timm.list_pretrained(p)))
    lists.append(dict(patterns=["resnet18*", "resnet34*"], pretrained=False, names=timm.list_models(["resnet18*", "resnet34*"])))
    lists.append(dict(patterns=["resnet18*", "vit_tiny*"], pretrained=True, names=timm.list_pretrained(["resnet18*", "vit_tiny*"])))
    lists.append(dict(patterns=[], pretrained=False, names=timm.list_models()))
    lists.append(dict(patterns=[], pretrained=True, names=timm.list_pretrained()))
    infos = []
    for name in INFO_SAMPLE:
        model = timm.create_model(name)  # a real build, not the registry generator's meta one
        cfg = model.pretrained_cfg
        fi = getattr(model, "feature_info", None)
        infos.append(dict(
            name=name,
            architecture=cfg["architecture"],
            tag=cfg.get("tag"),
            num_features=model.num_features,
            param_count=sum(p.numel() for p in model.parameters()),
            feature_info=[dict(num_chs=f["num_chs"], reduction=f["reduction"], module=f["module"]) for f in fi] if isinstance(fi, list) else None,
            pretrained_cfg=json.loads(json.dumps({k: v for k, v in cfg.items() if v is not None or k in ("pool_size", "first_conv", "classifier")})),
        ))
        del model
    write_json(FIX / "expected" / "registry.json", dict(timm=timm.__version__, lists=lists, infos=infos))


VERIFY_CASES = [
    # source, arch, in_chans, num_classes (None: the cfg's)
    ("test_resnet.f32.zip.pth", "test_resnet", 4, 10),
    ("test_vit.bf16.safetensors", "test_vit", 1, None),
    ("test_convnext.f32.zip.pth", "test_convnext", 3, 0),
    ("test_efficientnet.f16.legacy.pth", "test_efficientnet", 1, 10),
    ("test_resnet.f32.train.pth", "test_resnet", 2, None),
]


def make_verify():
    """TorchScript exports and input/logits fixtures for `timmconv verify`.

    The reference model is timm's own: create_model(arch, pretrained=True, file=SRC, in_chans,
    num_classes); its logits on a fixed input are the fixture. The exported module is a traced copy
    whose every tensor that the converted weights will provide is perturbed, so that only loading
    the right weights reproduces the logits; the tensors timm re-initialised (a new head) keep the
    reference's values, as the module is what the user trains from.
    """
    out = FIX / "verify"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = []
    for src, arch, in_chans, num_classes in VERIFY_CASES:
        base_cfg = timm.create_model(arch).pretrained_cfg
        nc = base_cfg["num_classes"] if num_classes is None else num_classes
        torch.manual_seed(0)
        model, missing = create_recording_missing(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(CKPT / src)), in_chans=in_chans, num_classes=nc)
        model.eval()
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            # a freshly initialised head may be all zeros (timm's init), which would hide every
            # other weight; give the re-initialised tensors values the logits depend on
            for k, v in model.state_dict().items():
                if k in missing and v.is_floating_point():
                    v.copy_(torch.randn(v.shape, generator=g) * 0.1)
        x = torch.randn(2, in_chans, *base_cfg["input_size"][1:], generator=g)
        with torch.no_grad():
            logits = model(x)
        name = f"{arch}.in{in_chans}.nc{nc}"
        import copy

        perturbed = copy.deepcopy(model)
        with torch.no_grad():
            sd = perturbed.state_dict()
            for k, v in sd.items():
                if k in missing or not v.is_floating_point():
                    continue
                if "running_var" in k:
                    v.mul_(1.5)
                else:
                    v.add_(torch.randn(v.shape, generator=g) * 0.05)
            traced = torch.jit.trace(perturbed, x)
            assert not torch.allclose(traced(x), logits), f"{name}: perturbing changed nothing"
        traced.save(str(out / f"{name}.pt"))
        safetensors.torch.save_file({"input": x.contiguous(), "logits": logits.contiguous()}, str(out / f"{name}.io.safetensors"))
        cases.append(dict(name=name, source=src, model=arch, in_chans=in_chans, num_classes=num_classes, reinit=sorted(missing)))
    write_json(out / "cases.json", cases)


# ---------------------------------------------------------------- malicious pickles

MARKER_DIR = "/tmp/timmconv-payload"


def marker(name):
    return f"{MARKER_DIR}/{name}"


class Reduce:
    """An object whose pickle calls func(*args) on load."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def touch_cmd(name):
    return f"mkdir -p {MARKER_DIR} && touch {marker(name)}"


def py_touch(name):
    return f"__import__('os').makedirs('{MARKER_DIR}', exist_ok=True) or open('{marker(name)}', 'w').close()"


def raw_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def first_global(data):
    """The first global a pickle references that is not collections.OrderedDict."""
    import pickletools

    strings = []
    for op, arg, _pos in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            g = arg.replace(" ", ".")
        elif op.name == "STACK_GLOBAL":
            g = f"{strings[-2]}.{strings[-1]}"
        else:
            if isinstance(arg, str):
                strings.append(arg)
            continue
        if g != "collections.OrderedDict":
            return g
    raise ValueError("no global")


def malicious_pickles():
    """(file name, bytes, forbidden global, live) for each technique."""
    import builtins
    import operator
    import functools
    import runpy
    import subprocess as sp
    import webbrowser

    out = []

    def add(name, data, glob, live=True):
        # the name as the pickle spells it (protocol < 3 writes builtins as __builtin__)
        # (handcrafted pickles spell theirs as given)
        if not name.startswith(("stack_global", "memo_")):
            found = first_global(data)
            assert found.split(".")[-1] == glob.split(".")[-1], (name, found, glob)
            glob = found
        out.append((name, data, glob, live))

    for proto in (0, 2, 3, 4, 5):
        add(f"os_system_p{proto}.pkl", pickle.dumps(Reduce(os.system, (touch_cmd(f"os_system_p{proto}"),)), protocol=proto), f"{os.system.__module__}.system")
    add("posix_system.pkl", raw_global("posix", "system") + binunicode(touch_cmd("posix_system")) + b"\x85R.", "posix.system")
    add("nt_system.pkl", b"\x80\x02" + raw_global("nt", "system") + binunicode("calc") + b"\x85R.", "nt.system", live=False)
    add("builtins_eval.pkl", pickle.dumps(Reduce(builtins.eval, (py_touch("builtins_eval"),)), protocol=2), "builtins.eval")
    add("builtins_exec.pkl", pickle.dumps(Reduce(builtins.exec, (py_touch("builtins_exec"),)), protocol=4), "builtins.exec")
    add(
        "builtins_compile.pkl",
        b"\x80\x02" + raw_global("builtins", "exec") + raw_global("builtins", "compile") + binunicode(py_touch("builtins_compile")) + binunicode("x") + binunicode("exec") + b"\x87R\x85R.",
        "builtins.exec",
    )
    # getattr(__import__('os'), 'system')('...')
    add(
        "builtins_getattr.pkl",
        b"\x80\x02" + raw_global("builtins", "getattr") + raw_global("builtins", "__import__") + binunicode("os") + b"\x85R" + binunicode("system") + b"\x86R" + binunicode(touch_cmd("builtins_getattr")) + b"\x85R.",
        "builtins.getattr",
    )
    add("builtins_import.pkl", b"\x80\x02" + raw_global("builtins", "__import__") + binunicode("os") + b"\x85R.", "builtins.__import__", live=False)
    add("subprocess_popen.pkl", pickle.dumps(Reduce(sp.Popen, (["sh", "-c", touch_cmd("subprocess_popen")],)), protocol=4), "subprocess.Popen")
    add("subprocess_check_output.pkl", pickle.dumps(Reduce(sp.check_output, (["sh", "-c", touch_cmd("subprocess_check_output")],)), protocol=2), "subprocess.check_output")
    add("runpy_run_path.pkl", b"\x80\x02" + raw_global("runpy", "_run_code") + binunicode(py_touch("runpy_run_path")) + b"}\x86R.", "runpy._run_code")
    add("webbrowser_open.pkl", pickle.dumps(Reduce(webbrowser.open, ("http://127.0.0.1:9/",)), protocol=2), "webbrowser.open", live=False)
    # operator.methodcaller('system', cmd)(os) ... expressed as attrgetter/methodcaller reduces
    add(
        "operator_attrgetter.pkl",
        b"\x80\x02" + raw_global("operator", "attrgetter") + binunicode("system") + b"\x85R" + raw_global("os", "path") + b"\x85R.",
        "operator.attrgetter",
        live=False,
    )
    add("operator_methodcaller.pkl", pickle.dumps(Reduce(operator.methodcaller, ("system", touch_cmd("x"))), protocol=2), "operator.methodcaller", live=False)
    add("functools_partial.pkl", pickle.dumps(Reduce(functools.partial, (os.system, touch_cmd("functools_partial"))), protocol=2), "functools.partial", live=False)
    # STACK_GLOBAL with the module name hidden in the memo, fetched back by BINGET
    add(
        "stack_global_memo.pkl",
        b"\x80\x04" + b"\x8c\x08harmless\x94" + b"\x8c\x02os\x94" + b"\x8c\x06system\x94" + b"h\x01h\x02\x93" + binunicode(touch_cmd("stack_global_memo")) + b"\x85R.",
        "os.system",
    )
    # memo slot overwritten: first an allowed global, then the same slot re-PUT with a dangerous one
    add(
        "memo_confusion.pkl",
        b"\x80\x02" + raw_global("collections", "OrderedDict") + b"q\x00" + b"0" + raw_global("posix", "system") + b"q\x00" + b"0h\x00" + binunicode(touch_cmd("memo_confusion")) + b"\x85R.",
        "posix.system",
    )
    # a payload nested deep inside an otherwise normal state dict
    sd = OrderedDict(weight=[1.0, 2.0], nested={"a": [Reduce(os.system, (touch_cmd("nested_state_dict"),))]})
    add("nested_state_dict.pkl", pickle.dumps(sd, protocol=2), f"{os.system.__module__}.system")
    return out


def make_malicious():
    if MAL.exists():
        shutil.rmtree(MAL)
    MAL.mkdir(parents=True)
    index = []
    for name, data, glob, live in malicious_pickles():
        (MAL / name).write_bytes(data)
        index.append(dict(file=name, global_=glob, marker=marker(Path(name).stem), live=live))
    # torch.save zips whose data.pkl carries the payload: at the top, and inside a tensor's
    # rebuild arguments
    sd = OrderedDict(w=torch.ones(2), evil=Reduce(os.system, (touch_cmd("zip_state_dict"),)))
    torch.save(sd, MAL / "zip_state_dict.pth")
    index.append(dict(file="zip_state_dict.pth", global_=f"{os.system.__module__}.system", marker=marker("zip_state_dict"), live=True))

    class EvilTensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (Reduce(os.system, (touch_cmd("zip_rebuild_args"),)), 0, (2,), (1,), False, OrderedDict()))

    buf = io.BytesIO()
    pickle.dump(OrderedDict(w=EvilTensor()), buf, protocol=2)
    with zipfile.ZipFile(MAL / "zip_rebuild_args.pth", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    index.append(dict(file="zip_rebuild_args.pth", global_=f"{os.system.__module__}.system", marker=marker("zip_rebuild_args"), live=False))
    # a pickle/zip polyglot: a valid pickle at offset 0 that is also a zip with a benign data.pkl
    evil = pickle.dumps(Reduce(os.system, (touch_cmd("polyglot"),)), protocol=2)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(OrderedDict(), protocol=2))
    (MAL / "polyglot.pth").write_bytes(evil + zbuf.getvalue())
    index.append(dict(file="polyglot.pth", global_=f"{os.system.__module__}.system", marker=marker("polyglot"), live=True))
    write_json(MAL / "index.json", index)
    prove_live(index)


def prove_live(index):
    """Unpickle each live payload with Python in a subprocess and check that it ran."""
    shutil.rmtree(MARKER_DIR, ignore_errors=True)
    for entry in index:
        if not entry["live"]:
            continue
        path = MAL / entry["file"]
        if path.suffix == ".pth":
            code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
        else:
            code = f"import pickle; pickle.loads(open({str(path)!r}, 'rb').read())"
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
        if not os.path.exists(entry["marker"]):
            raise SystemExit(f"payload of {entry['file']} did not run under Python: fixture is not live")
    shutil.rmtree(MARKER_DIR, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["verify"], help="regenerate only this part")
    args = ap.parse_args()
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        raise SystemExit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} and {timm.__version__}")
    torch.use_deterministic_algorithms(True)
    if args.only == "verify":
        make_verify()
        return
    if CKPT.exists():
        shutil.rmtree(CKPT)
    for d in (EXP_READ, EXP_CONV, FIX / "expected" / "cast"):
        if d.exists():
            shutil.rmtree(d)
    make_sources()
    make_views()
    make_expected_read()
    make_expected_convert()
    make_expected_cast()
    make_expected_registry()
    make_verify()
    make_malicious()
    (FIX / "VERSIONS").write_text(f"torch {torch.__version__}\ntimm {timm.__version__}\nmade by tools/make_fixtures.py\n")


if __name__ == "__main__":
    main()

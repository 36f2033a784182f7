"""`timmconv convert --img-size/--patch-size/--window-size` gives what timm 1.0.31 itself loads:
every case builds a randomly initialised model (seeded) at its default size, saves it in a temp
dir in the source dtype, converts it, and compares the output with
`timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=SRC), img_size=…,
…).state_dict()`, i.e. with timm's own checkpoint filter applied by timm. Resampled float32
tensors must be within 1e-6·max(1, max|ref|) (1e-5 for pseudo-inverse patch embeddings),
resampled f16/bf16 tensors within one unit in the last place, everything else bit-identical.
Run by tools/test.sh with the pinned venv (TIMMCONV_BIN points at the binary)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

import kernels

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

CASES = [
    # id, model, source dtype, knobs (timm kwargs), in_chans, num_classes
    ("vit_base_384", "vit_base_patch16_224", "f32", dict(img_size=384), None, None),
    ("deit_distilled_288_bf16", "deit_base_distilled_patch16_224", "bf16", dict(img_size=288), None, 0),
    ("vit_small_rect_f16", "vit_small_patch16_224", "f16", dict(img_size=(224, 320)), None, None),
    ("vit_small_down_160", "vit_small_patch16_224", "f32", dict(img_size=160), 1, None),
    ("vit_reg4_320", "vit_little_patch16_reg4_gap_256", "f32", dict(img_size=320), None, 0),
    ("vit_reg4_down_bf16", "vit_little_patch16_reg4_gap_256", "bf16", dict(img_size=192), None, None),
    ("eva02_tiny_336", "eva02_tiny_patch14_224", "f32", dict(img_size=336), None, None),
    ("beit_base_384", "beit_base_patch16_224", "f32", dict(img_size=384), None, None),
    ("swin_tiny_384_w12", "swin_tiny_patch4_window7_224", "f32", dict(img_size=384, window_size=12), None, 0),
    # stages that halve an odd side round up (208 -> 52, 26, 13, 7): windows 12, 12, 12 and 7
    ("swin_tiny_208_w12", "swin_tiny_patch4_window7_224", "f32", dict(img_size=208, window_size=12), None, None),
    # Swin-S3's windows differ per stage (7, 7, 14, 7): at 208 the third clamps to 13
    ("swin_s3_tiny_208", "swin_s3_tiny_224", "f32", dict(img_size=208), None, None),
    # a patch change through the pseudo-inverse, the last stage's window clamped to 4
    ("swin_tiny_p8", "swin_tiny_patch4_window7_224", "f32", dict(patch_size=8), None, None),
    ("maxvit_tiny_288_bf16", "maxvit_tiny_tf_224", "bf16", dict(img_size=288), 1, None),
    ("flexivit_small_p8", "flexivit_small", "f32", dict(patch_size=8), None, None),
    ("vit_small_p14_in1", "vit_small_patch16_224", "f32", dict(patch_size=14), 1, None),
    ("vit_small_p14_f16", "vit_small_patch16_224", "f16", dict(patch_size=14, img_size=280), None, 0),
    # LeViT-style attention biases (resize_rel_pos_bias_table_levit in efficientvit_msra's filter):
    # up (the last stage's 4x4 windows grow to 5x5), down (every window shrinks), rectangular (the
    # model takes the shorter side)
    ("efficientvit_m0_288", "efficientvit_m0", "f32", dict(img_size=288), None, None),
    ("efficientvit_m1_128_bf16", "efficientvit_m1", "bf16", dict(img_size=128), 1, None),
    ("efficientvit_m2_rect_f16", "efficientvit_m2", "f16", dict(img_size=(320, 160)), None, None),
    # a hybrid ViT at a size that is not a multiple of its backbone's stride: the ResNet's feature
    # map rounds up (230 / 32 -> 8)
    ("vit_small_r26_s32_230", "vit_small_r26_s32_224", "f32", dict(img_size=230), None, None),
    # TNT's outer position embedding `patch_pos` (its filter: resample_abs_pos_embed, 1 prefix token)
    ("tnt_s_200", "tnt_s_patch16_224", "f32", dict(img_size=200), None, None),
    # MViTv2's decomposed rel_pos_h/w through its filter's F.interpolate(mode='linear')
    ("mvitv2_tiny_288", "mvitv2_tiny", "f32", dict(img_size=288), None, None),
    ("mvitv2_tiny_192_in1", "mvitv2_tiny", "f32", dict(img_size=192), 1, None),
    # a downscale takes five or more antialias taps, which torch sums partly unfused (GCC
    # vectorises the products): near-zero bfloat16 values show any float32 difference
    ("siglip_384_down_bf16", "vit_base_patch16_siglip_384", "bf16", dict(img_size=320), None, None),
    ("vit_base_down_112_bf16", "vit_base_patch16_224", "bf16", dict(img_size=112), None, 0),
    # FlexiViT and RADIO position embeddings go through torch's channels-last bilinear kernel
    # (product weights, fused sums): a bfloat16 source shows any float32 difference
    ("flexivit_small_288_bf16", "flexivit_small", "bf16", dict(img_size=288), None, None),
    # C-RADIOv3-B aligns corners (timm's _RADIO_ALIGN_CORNERS): down 32 -> 24, up 32 -> 40
    ("radio_v3_base_384", "vit_base_patch16_radio_v3", "f32", dict(img_size=384), None, 0),
    ("radio_v3_base_640_bf16", "vit_base_patch16_radio_v3", "bf16", dict(img_size=640), 1, None),
    # a patch change: bilinear pseudo-inverse kernels, the grid 32 -> 48 with aligned corners
    ("radio_v3_base_p8", "vit_base_patch16_radio_v3", "f32", dict(patch_size=8, img_size=384), None, None),
    # C-RADIOv3-L does not align corners (its repository code switched in 2025-07)
    ("radio_v3_large_448_f16", "vit_large_patch16_radio_v3", "f16", dict(img_size=448), None, None),
]


def flag(v):
    return ",".join(str(x) for x in v) if isinstance(v, (tuple, list)) else str(v)


def make_source(tmp_path, model, dtype):
    # built on meta and filled from a seeded generator: timm's own init would double the time
    with torch.device("meta"):
        m = timm.create_model(model, pretrained=False)
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in m.state_dict().items():
        if v.is_floating_point():
            sd[k] = torch.randn(v.shape, generator=g).to(DTYPES[dtype])
        else:
            sd[k] = torch.randint(0, 8, v.shape, generator=g).to(v.dtype)
    src = tmp_path / f"{model}.{dtype}.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
    return src, sd


def ordered(x):
    """Float16/bfloat16 bits as integers ordered like the values (adjacent values differ by 1)."""
    i = x.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(i < 0, -(i & 0x7FFF), i)


def check_close(key, got, ref, pinv):
    assert got.dtype == ref.dtype, key
    assert got.shape == ref.shape, (key, got.shape, ref.shape)
    if not kernels.VECTOR:
        # torch computed `ref` with its scalar kernels here (tests/python/kernels.py): the bound
        # measured between those and the vector kernels timmconv follows, plus the rounding of a
        # float16/bfloat16 result
        scale = max(1.0, ref.float().abs().max().item())
        ulp = (ref.float().abs() * torch.finfo(ref.dtype).eps).max().item()
        diff = (got.float() - ref.float()).abs().max().item()
        tol = (10 if pinv else 1) * kernels.SCALAR_RTOL * scale + ulp
        assert diff <= tol, f"{key}: max |diff| {diff} > {tol} (scalar kernels)"
        return
    if ref.dtype == torch.float32:
        tol = (1e-5 if pinv else 1e-6) * max(1.0, ref.abs().max().item())
        diff = (got - ref).abs().max().item()
        assert diff <= tol, f"{key}: max |diff| {diff} > {tol}"
    else:
        # one unit in the last place; a pseudo-inverse result also carries the 1e-5 of torch's
        # float32 pinv, which near zero spans many f16/bf16 units
        steps = (ordered(got) - ordered(ref)).abs()
        if pinv:
            slack = 1e-5 * max(1.0, ref.float().abs().max().item())
            steps = torch.where((got.float() - ref.float()).abs() <= slack, 0, steps)
        assert steps.max().item() <= 1, f"{key}: {steps.max().item()} ulps apart"


def run(args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_resampled_like_timm(tmp_path, case):
    _, model, dtype, knobs, in_chans, num_classes = case
    src, _ = make_source(tmp_path, model, dtype)
    out = tmp_path / "out.safetensors"
    args = ["convert", str(src), "-o", str(out), "--model", model, "--json", "-q"]
    kwargs = dict(knobs)
    for k, v in knobs.items():
        args += [f"--{k.replace('_', '-')}", flag(v)]
    if in_chans is not None:
        args += ["--in-chans", str(in_chans)]
        kwargs["in_chans"] = in_chans
    if num_classes is not None:
        args += ["--num-classes", str(num_classes)]
        kwargs["num_classes"] = num_classes
    r = run(args)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    resampled = {e["key"]: e for e in report["resampled"]}
    assert resampled, "nothing was resampled"
    ref_model = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), **kwargs)
    ref = ref_model.state_dict()
    got = safetensors.torch.load_file(str(out))
    # exactly the keys timm's model holds
    assert set(got) == set(ref), sorted(set(got) ^ set(ref))
    for k, v in got.items():
        # the model holds float32 copies of what timm's filter gave in the source dtype: exact
        want = ref[k].to(v.dtype) if v.dtype == DTYPES[dtype] else ref[k]
        assert v.dtype == DTYPES[dtype] or not v.is_floating_point(), k
        if k in resampled:
            e = resampled[k]
            # with --in-chans the resampled kernel is then adapted (timm's order)
            assert list(v.shape)[2:] == e["to_shape"][2:], k
            check_close(k, v, want, e["operation"] == "patch_embed")
        else:
            assert torch.equal(v, want), f"{k} differs"


REFUSALS = [
    ("crossvit_tiny_240", ["--img-size", "224"], "crossvit"),
    ("levit_128", ["--img-size", "256"], "levit"),
    ("convnext_tiny", ["--img-size", "288"], "does not build `convnext_tiny` with img_size"),
    ("resnet50", ["--patch-size", "8"], "does not build `resnet50` with patch_size"),
    ("vit_small_patch16_224", ["--window-size", "8"], "does not build `vit_small_patch16_224` with window_size"),
    # SAM ViTs resample at forward time only: their filter leaves pos_embed and rel_pos_h/w alone
    ("samvit_base_patch16_224", ["--img-size", "256"], "timm cannot load"),
]


@pytest.mark.parametrize("model,extra,why", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_exit_2_and_write_nothing(tmp_path, model, extra, why):
    src = tmp_path / "in.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(src))
    out = tmp_path / "out.safetensors"
    r = run(["convert", str(src), "-o", str(out), "--model", model, *extra])
    assert r.returncode == 2, r.stderr
    assert model in r.stderr and why in r.stderr, r.stderr
    assert not out.exists()
    assert os.listdir(tmp_path) == ["in.safetensors"]


def test_mvitv2_from_bf16_is_refused(tmp_path):
    """MViTv2's filter interpolates rel_pos_h/w in the source dtype (no .float()), which the
    float32 port does not reproduce: a bf16 source exits 2 and writes nothing."""
    src, _ = make_source(tmp_path, "mvitv2_tiny", "bf16")
    out = tmp_path / "out.safetensors"
    r = run(["convert", str(src), "-o", str(out), "--model", "mvitv2_tiny", "--img-size", "288"])
    assert r.returncode == 2 and "float32" in r.stderr and "rel_pos" in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("model,size", [("crossvit_tiny_240", 224), ("samvit_base_patch16_224", 256)])
def test_timm_refuses_what_timmconv_refuses(tmp_path, model, size):
    """crossvit and SAM ViTs at another img_size: timm's own loading fails too (a size mismatch)."""
    torch.manual_seed(0)
    m = timm.create_model(model)
    src = tmp_path / "c.safetensors"
    safetensors.torch.save_file(m.state_dict(), str(src))
    with pytest.raises(RuntimeError, match="size mismatch"):
        timm.create_model(model, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), img_size=size)


HUB = [
    ("swin_tiny_patch4_window7_224", dict(img_size=384, window_size=12)),
    ("vit_small_patch16_224", dict(img_size=(224, 320), patch_size=14)),
]


@pytest.mark.parametrize("model,knobs", HUB, ids=[h[0] for h in HUB])
def test_hub_folder_builds_at_the_new_size_and_loads_strictly(tmp_path, model, knobs):
    src, _ = make_source(tmp_path, model, "f32")
    out = tmp_path / "hub"
    args = ["convert", str(src), "-o", str(out), "--model", model, "--layout", "hub", "-q"]
    for k, v in knobs.items():
        args += [f"--{k.replace('_', '-')}", flag(v)]
    r = run(args)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    for k, v in knobs.items():
        assert cfg["model_args"][k] == (list(v) if isinstance(v, tuple) else v), k
    if "img_size" in knobs:
        size = knobs["img_size"]
        size = list(size) if isinstance(size, tuple) else [size, size]
        assert cfg["pretrained_cfg"]["input_size"] == [3, *size]
    # strict load (timm's default for pretrained=True) at the new size
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True)
    want = safetensors.torch.load_file(str(out / "model.safetensors"))
    sd = loaded.state_dict()
    assert set(sd) == set(want)
    for k, v in want.items():
        assert torch.equal(sd[k], v), k
    x = torch.randn(1, 3, *cfg["pretrained_cfg"]["input_size"][1:])
    assert loaded.eval()(x).shape == (1, 1000)


def test_global_pool_catavgmax_drops_the_classifier_timm_reinitialises(tmp_path):
    src, sd = make_source(tmp_path, "resnet18", "f32")
    out = tmp_path / "out.safetensors"
    r = run(["convert", str(src), "-o", str(out), "--model", "resnet18", "--global-pool", "catavgmax", "--json", "-q"])
    assert r.returncode == 0, r.stderr
    dropped = {d["key"]: d["reason"] for d in json.loads(r.stdout)["dropped"]}
    assert set(dropped) == {"fc.weight", "fc.bias"} and "catavgmax" in dropped["fc.weight"]
    got = safetensors.torch.load_file(str(out))
    model = timm.create_model("resnet18", global_pool="catavgmax")
    # everything else loads into timm's catavgmax model; its classifier takes twice the features
    missing, unexpected = model.load_state_dict(got, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    assert model.fc.weight.shape[1] == 2 * sd["fc.weight"].shape[1]
    for k, v in got.items():
        assert torch.equal(v, sd[k]), k
    # the hub folder records the pool and loads strictly (headless: the head was dropped)
    hub = tmp_path / "hub"
    r = run(["convert", str(src), "-o", str(hub), "--model", "resnet18", "--global-pool", "catavgmax", "--layout", "hub", "-q"])
    assert r.returncode == 0, r.stderr
    cfg = json.loads((hub / "config.json").read_text())
    assert cfg["model_args"]["global_pool"] == "catavgmax"
    loaded = timm.create_model(f"local-dir:{hub}", pretrained=True)
    assert loaded.global_pool.pool_type == "catavgmax"


@pytest.mark.parametrize("pool", ["avg", "max", ""])
def test_global_pool_that_keeps_shapes_keeps_every_tensor(tmp_path, pool):
    src, sd = make_source(tmp_path, "resnet18", "f32")
    out = tmp_path / "out.safetensors"
    r = run(["convert", str(src), "-o", str(out), "--model", "resnet18", "--global-pool", pool, "-q"])
    assert r.returncode == 0, r.stderr
    got = safetensors.torch.load_file(str(out))
    ref = timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), global_pool=pool).state_dict()
    assert set(got) == set(ref)
    for k, v in got.items():
        assert torch.equal(v, ref[k]), k


@pytest.mark.parametrize("model,pool,why", [
    ("vit_tiny_patch16_224", "catavgmax", "cannot be built"),
    ("vit_tiny_patch16_224", "avg", "fc_norm"),
])
def test_global_pool_refusals(tmp_path, model, pool, why):
    src = tmp_path / "in.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(src))
    out = tmp_path / "out.safetensors"
    r = run(["convert", str(src), "-o", str(out), "--model", model, "--global-pool", pool])
    assert r.returncode == 2 and model in r.stderr and why in r.stderr, r.stderr
    assert not out.exists()


TORCH_BIN = os.environ.get("TIMMCONV_TORCH_BIN")
# Pseudo-inverse patch embeddings are left out: torch's float32 pinv is itself about 1e-6 from
# the exact one, which a randomly initialised ViT amplifies past verify's 1e-5.
VERIFY = [
    # model, knobs, in_chans, num_classes
    ("vit_small_patch16_224", dict(img_size=(224, 320)), 1, 10),
    ("eva02_tiny_patch14_224", dict(img_size=336), None, None),
    ("swin_tiny_patch4_window7_224", dict(img_size=384, window_size=12), None, 0),
    ("vit_little_patch16_reg4_gap_256", dict(img_size=320), None, 5),
]


@pytest.mark.skipif(not TORCH_BIN, reason="TIMMCONV_TORCH_BIN (a binary built with --features torch) not set")
# random weights amplify the scalar kernels' last-bit differences in the position embedding into
# logits 1e-2 apart: no tolerance would still mean anything
@kernels.needs_vector_kernels("verify at the default tolerance after resampling")
@pytest.mark.parametrize("model,knobs,in_chans,num_classes", VERIFY, ids=[v[0] for v in VERIFY])
def test_verify_logits_at_the_new_size(tmp_path, model, knobs, in_chans, num_classes):
    """`timmconv verify` on CPU at its default tolerance: the converted weights, loaded into a
    TorchScript export of timm's model at the new size (every tensor they provide perturbed first),
    reproduce the logits of timm's own model loaded with timm's own resampling."""
    import copy

    src, _ = make_source(tmp_path, model, "f32")
    out = tmp_path / "out.safetensors"
    args = ["convert", str(src), "-o", str(out), "--model", model, "-q"]
    kwargs = dict(knobs)
    for k, v in knobs.items():
        args += [f"--{k.replace('_', '-')}", flag(v)]
    if in_chans is not None:
        args += ["--in-chans", str(in_chans)]
        kwargs["in_chans"] = in_chans
    if num_classes is not None:
        args += ["--num-classes", str(num_classes)]
        kwargs["num_classes"] = num_classes
    r = run(args)
    assert r.returncode == 0, r.stderr
    torch.manual_seed(0)
    ref = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), **kwargs).eval()
    got = safetensors.torch.load_file(str(out))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # a re-initialised head may be all zeros and hide every other weight
        for k, v in ref.state_dict().items():
            if k not in got and v.is_floating_point():
                v.copy_(torch.randn(v.shape, generator=g) * 0.1)
    size = pair = knobs.get("img_size", ref.pretrained_cfg["input_size"][1:])
    size = list(pair) if isinstance(pair, (tuple, list)) else [pair, pair]
    x = torch.randn(1, in_chans or 3, *size, generator=g)
    with torch.no_grad():
        logits = ref(x)
        perturbed = copy.deepcopy(ref)
        for k, v in perturbed.state_dict().items():
            if k in got and v.is_floating_point():
                v.add_(torch.randn(v.shape, generator=g) * 0.05)
        traced = torch.jit.trace(perturbed, x)
        assert not torch.allclose(traced(x), logits)
    traced.save(str(tmp_path / "m.pt"))
    safetensors.torch.save_file({"input": x.contiguous(), "logits": logits.contiguous()}, str(tmp_path / "io.safetensors"))
    v = subprocess.run(
        [TORCH_BIN, "verify", str(out), "--module", str(tmp_path / "m.pt"), "--fixture", str(tmp_path / "io.safetensors"), "--device", "cpu", "--json"],
        capture_output=True, text=True,
    )
    assert v.returncode == 0, v.stdout + v.stderr


UNCHANGED = [
    # XCiT computes its positional encoding (Fourier features): nothing learned depends on the size
    ("xcit_nano_12_p16_224", dict(img_size=256)),
    ("xcit_tiny_12_p8_224", dict(img_size=(192, 288))),
    # DaViT's windows have no relative tables; ConvNeXt's overlapping stem keeps its kernel at
    # another patch (stride)
    ("davit_tiny", dict(window_size=12)),
    ("convnext_atto_ols", dict(patch_size=8)),
]


@pytest.mark.parametrize("model,knobs", UNCHANGED, ids=[u[0] for u in UNCHANGED])
def test_knobs_that_change_no_weight_convert_unchanged(tmp_path, model, knobs):
    """Knobs timm takes without changing any weight's shape (found by gen_resize asking timm, once
    missed): timm's model holds the source's tensors, all of them, and the output records the
    knob."""
    src, _ = make_source(tmp_path, model, "f32")
    out = tmp_path / "out.safetensors"
    args = ["convert", str(src), "-o", str(out), "--model", model, "--json", "-q"]
    for k, v in knobs.items():
        args += [f"--{k.replace('_', '-')}", flag(v)]
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resampled"] == []
    ref = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), **knobs).state_dict()
    got = safetensors.torch.load_file(str(out))
    assert set(got) == set(ref), sorted(set(got) ^ set(ref))
    for k, v in got.items():
        assert torch.equal(v, ref[k]), k
    with open(out, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    meta = json.loads(header["__metadata__"]["timmconv"])
    for k, v in knobs.items():
        assert meta[k] == (list(v) if isinstance(v, tuple) else [v, v]), (k, meta)
    info = run(["info", model])
    assert info.returncode == 0, info.stderr
    for k in knobs:
        assert f"--{k.replace('_', '-')}" in info.stdout, info.stdout

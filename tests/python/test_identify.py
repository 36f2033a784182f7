"""`timmconv identify` names the architecture of random-init checkpoints that timm 1.0.31 saves
(torch 2.11.0), and `convert --model WRONG` refuses them listing the differences, as
`load_state_dict(strict=True)` would. The checkpoints are made here, in a temp dir; the expected
answer is the architecture each was built from. Run by tools/test.sh."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import timm
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))

# one small architecture of each of 34 families
ARCHS = [
    "resnet18", "resnet26d", "resnet10t", "seresnet18", "mobilenetv3_small_050", "mobilenetv2_050",
    "efficientnet_b0", "efficientnet_lite0", "mnasnet_050", "ghostnet_050", "lcnet_050",
    "regnetx_002", "regnety_002", "densenet121", "convnext_atto", "convnextv2_atto",
    "test_vit", "levit_128s", "mobilevit_xxs", "fastvit_t8", "dla34", "rexnet_100", "mixnet_s",
    "edgenext_xx_small", "poolformer_s12", "pit_ti_224", "xcit_nano_12_p16_224", "crossvit_tiny_240",
    "gernet_s", "hardcorenas_a", "mobileone_s0", "efficientvit_b0", "tiny_vit_5m_224",
    "inception_next_atto",
]


def run(*args, check=False):
    return subprocess.run([BIN, *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    out = {}
    for i, arch in enumerate(ARCHS):
        torch.manual_seed(i)
        model = timm.create_model(arch, pretrained=False)
        path = folder / f"{arch}.pth"
        torch.save(model.state_dict(), path)
        out[arch] = path
    return out


def identify(path):
    o = run("identify", str(path), "--json", check=True)
    return json.loads(o.stdout)


@pytest.mark.parametrize("arch", ARCHS)
def test_identify_ranks_the_right_architecture_first(ckpts, arch):
    found = identify(ckpts[arch])
    assert found[0]["architecture"] == arch, found[:3]
    assert found[0]["exact"] is True
    assert found[0]["differences"] == []
    assert all(set(c) == {"architecture", "exact", "adaptable", "recorded", "differences"} for c in found)


@pytest.mark.parametrize("arch", ARCHS)
def test_convert_with_the_wrong_model_is_refused_listing_differences(ckpts, arch, tmp_path):
    wrong = ARCHS[(ARCHS.index(arch) + 1) % len(ARCHS)]
    out = tmp_path / "out.safetensors"
    o = run("convert", str(ckpts[arch]), "-o", str(out), "--model", wrong)
    assert o.returncode == 2, o.stderr
    assert f"not a `{wrong}" in o.stderr, o.stderr
    assert any(w in o.stderr for w in ("missing", "unexpected", "another shape")), o.stderr
    assert not out.exists()
    # the right model converts, and --allow-mismatch lets the wrong one through with warnings
    run("convert", str(ckpts[arch]), "-o", str(out), "--model", arch, "-q", check=True)
    o = run("convert", str(ckpts[arch]), "-o", str(tmp_path / "w.safetensors"), "--model", wrong, "--allow-mismatch")
    assert o.returncode == 0, o.stderr
    assert "--allow-mismatch" in o.stderr


@pytest.mark.parametrize(
    "arch,kwargs,words",
    [
        ("resnet18", {"in_chans": 1}, ["in_chans 1 (the model has 3)"]),
        ("convnext_atto", {"num_classes": 10}, ["num_classes 10 (the model has 1000)"]),
        ("efficientnet_b0", {"num_classes": 0}, ["num_classes 0"]),
        ("test_vit", {"img_size": 96}, ["img_size"]),
    ],
)
def test_close_matches_say_what_differs(tmp_path, arch, kwargs, words):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    path = tmp_path / "c.pth"
    torch.save(model.state_dict(), path)
    found = identify(path)
    assert found[0]["architecture"] == arch, found[:3]
    assert found[0]["exact"] is False
    text = " ".join(found[0]["differences"])
    for w in words:
        assert w in text, found[0]
    # converting to what it is works: a head of another size is dropped, in_chans adapted back
    out = tmp_path / "o.safetensors"
    extra = []
    if "num_classes" in kwargs:
        extra = ["--num-classes", str(kwargs["num_classes"])]
    if "in_chans" in kwargs:
        extra = ["--base-chans", str(kwargs["in_chans"]), "--in-chans", "3"]
    if "img_size" in kwargs:
        return
    o = run("convert", str(path), "-o", str(out), "--model", arch, "-q", *extra)
    assert o.returncode == 0, o.stderr


def test_fixed_stem_converts_for_any_in_chans_as_timm_loads_it(tmp_path):
    """csatv2's cfg has first_conv: [] (a fixed DCT stem): timm builds the same weights for any
    in_chans, so --in-chans converts unchanged, and the model with that in_chans loads them."""
    torch.manual_seed(0)
    model = timm.create_model("csatv2_21m", pretrained=False)
    path = tmp_path / "c.pth"
    torch.save(model.state_dict(), path)
    out = tmp_path / "o.safetensors"
    o = run("convert", str(path), "-o", str(out), "--model", "csatv2_21m", "--in-chans", "1")
    assert o.returncode == 0, o.stderr
    assert "declares no first conv" in o.stderr
    import safetensors.torch

    ours = safetensors.torch.load_file(str(out))
    target = timm.create_model("csatv2_21m", pretrained=False, in_chans=1)
    target.load_state_dict(ours, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(ours[k], v), k


def test_identify_on_timmconvs_own_output_names_its_model_first(tmp_path):
    """Issue 22, item 3: vit_small_patch16_224 converted to 4 channels, 10 classes, 384 px was
    identified as vit_small_patch8_224 first (an 8x8 kernel cannot hold a 16x16 one)."""
    torch.manual_seed(0)
    src = tmp_path / "vits.pth"
    torch.save(timm.create_model("vit_small_patch16_224", pretrained=False).state_dict(), src)
    out = tmp_path / "vits4.safetensors"
    run("convert", str(src), "-o", str(out), "--model", "vit_small_patch16_224", "--in-chans", "4",
        "--num-classes", "10", "--img-size", "384", "-q", check=True)
    found = json.loads(run("identify", str(out), "--json", "--limit", "0", check=True).stdout)
    assert found[0]["architecture"].split(".")[0] == "vit_small_patch16_224", found[:3]
    assert found[0]["recorded"] and found[0]["adaptable"]
    assert "in_chans 4, num_classes 10, img_size 384" in found[0]["differences"][0]
    p8 = [c for c in found if c["architecture"].startswith("vit_small_patch8_224")]
    assert p8 and not any(c["adaptable"] for c in p8), p8
    near = [c["architecture"] for c in found if c["adaptable"]]
    assert any(a.startswith("vit_small_patch16_384") for a in near), near
    # and what that candidate says the file is loads into timm as the README's recipe does
    model = timm.create_model("vit_small_patch16_224", in_chans=4, num_classes=10, img_size=384)
    import safetensors.torch

    missing, unexpected = model.load_state_dict(safetensors.torch.load_file(str(out)), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and unexpected == []

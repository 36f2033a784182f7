"""Recomputes the `verify` fixtures' reference logits on *this* machine, with timm's own pipeline.

PyTorch promises no bitwise equality across CPUs: oneDNN and MKL pick kernels by instruction set,
so the logits stored in fixtures/verify/*.io.safetensors (made by tools/make_fixtures.py on one
machine) can differ from another machine's in the last bits. tests/verify.rs therefore compares
timmconv through libtorch with two references:

- exactly, with the logits this script computes here, at test time, in the test venv (same torch
  build, same kernels, same environment such as ONEDNN_MAX_CPU_ISA);
- within a stated tolerance, with the stored logits, so a stale or foreign fixture is still caught.

For each case of fixtures/verify/cases.json the model is built as make_fixtures.py built it:
`timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=SRC), in_chans,
num_classes)`. The tensors timm re-initialised (a new head) take the stored TorchScript module's
values, as `timmconv verify` does; the input is the stored fixture's. Nothing here comes from
timmconv.

    python tools/reference_logits.py OUT_DIR     # writes OUT_DIR/NAME.io.safetensors per case
"""

import sys
from pathlib import Path

import safetensors.torch
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import CKPT, FIX, TIMM_VERSION, TORCH_VERSION, create_recording_missing  # noqa: E402

import json  # noqa: E402

import timm  # noqa: E402


def reference(case):
    name, arch = case["name"], case["model"]
    base_cfg = timm.create_model(arch).pretrained_cfg
    nc = base_cfg["num_classes"] if case["num_classes"] is None else case["num_classes"]
    model, missing = create_recording_missing(
        arch,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(CKPT / case["source"])),
        in_chans=case["in_chans"],
        num_classes=nc,
    )
    model.eval()
    if sorted(missing) != case["reinit"]:
        raise SystemExit(f"{name}: timm re-initialised {sorted(missing)}, the fixture says {case['reinit']}")
    module = dict(torch.jit.load(str(FIX / "verify" / f"{name}.pt")).state_dict())
    x = safetensors.torch.load_file(str(FIX / "verify" / f"{name}.io.safetensors"))["input"]
    with torch.no_grad():
        sd = model.state_dict()
        for k in missing:
            sd[k].copy_(module[k])
        logits = model(x)
    return {"input": x.contiguous(), "logits": logits.contiguous()}


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        raise SystemExit(f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} and {timm.__version__}")
    torch.use_deterministic_algorithms(True)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for case in json.loads((FIX / "verify" / "cases.json").read_text()):
        safetensors.torch.save_file(reference(case), str(out / f"{case['name']}.io.safetensors"))


if __name__ == "__main__":
    main()

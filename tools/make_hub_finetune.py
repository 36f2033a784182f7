#!/usr/bin/env python3
"""Generate fixtures/hub/: folders made by timm's own `save_for_hf`, as a user's fine-tune is
published on the Hugging Face hub.

Pinned: torch 2.11.0, timm 1.0.31 (checked at start). Run from the repository root:

    /root/.cache/timmconv/venv-torch2.11.0-timm1.0.31/bin/python tools/make_hub_finetune.py

Writes, deterministically (fixed seed):

  fixtures/hub/test_resnet-ft37/   test_resnet.r160_in1k fine-tuned to a 37-class head:
                                   `config.json` says num_classes 37 (at its top and in its
                                   pretrained_cfg, which keeps the upstream tag r160_in1k) and
                                   `model.safetensors` holds a 37-row classifier. The registry's
                                   r160_in1k cfg says 1000: a converter that prefers it drops
                                   the fine-tuned head (issue 22, item 1).

The tests compare timmconv's conversion of these folders with the state dict
`timm.create_model('local-dir:FOLDER', pretrained=True, ...)` holds (tests/python/test_hub.py).
"""

import json
import shutil
from pathlib import Path

import timm
import torch
from timm.models._hub import save_for_hf

TORCH_VERSION = "2.11.0"
TIMM_VERSION = "1.0.31"

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "hub"

FINETUNES = {
    # folder: (model NAME.TAG, create_model kwargs)
    "test_resnet-ft37": ("test_resnet.r160_in1k", {"num_classes": 37}),
}


def main():
    if torch.__version__.split("+")[0] != TORCH_VERSION or timm.__version__ != TIMM_VERSION:
        raise SystemExit(
            f"need torch {TORCH_VERSION} and timm {TIMM_VERSION}, have {torch.__version__} and {timm.__version__}"
        )
    for folder, (name, kwargs) in FINETUNES.items():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, **kwargs)
        # weights that are not an initialisation: every tensor gets distinct values
        with torch.no_grad():
            for p in model.state_dict().values():
                if p.is_floating_point():
                    p.copy_(torch.randn_like(p))
        path = OUT / folder
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        save_for_hf(model, str(path), safe_serialization=True)
        config = json.loads((path / "config.json").read_text())
        print(folder, sorted(p.name for p in path.iterdir()), "num_classes", config["num_classes"],
              "pretrained_cfg", config["pretrained_cfg"].get("tag"), config["pretrained_cfg"].get("num_classes"))


if __name__ == "__main__":
    main()

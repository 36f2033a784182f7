"""PyTorch's own logits on this machine for each verify case: the case's TorchScript module with
the converted weights loaded by name (what timmconv verify does through libtorch), on DEVICE."""
import json, sys
from pathlib import Path
import torch, safetensors.torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev, weights_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
for case in json.load(open("fixtures/verify/cases.json")):
    name = case["name"]
    m = torch.jit.load(f"fixtures/verify/{name}.pt", map_location=dev).eval()
    w = safetensors.torch.load_file(str(weights_dir / f"{name}.safetensors"))
    x = safetensors.torch.load_file(f"fixtures/verify/{name}.io.safetensors")["input"]
    with torch.no_grad():
        for k, t in list(m.named_parameters()) + list(m.named_buffers()):
            if k in w:
                t.copy_(w[k].to(t.dtype))
        logits = m(x.to(dev)).cpu()
    safetensors.torch.save_file({"input": x.contiguous(), "logits": logits.contiguous()}, str(out / f"{name}.io.safetensors"))

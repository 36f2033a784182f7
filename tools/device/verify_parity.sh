#!/usr/bin/env bash
# One device check: timmconv verify (libtorch through tch) against PyTorch run on the same machine,
# exactly, on its CPU and on CUDA; and the stored fixture logits (made on another CPU) there.
#
# For a GPU machine with torch 2.11.0 but no Rust toolchain and no network: build the `torch`
# feature here, then carry the stripped, xz-compressed binary and a safetensors wheel in the ignored
# folder .device/ (the working tree and what is carried must stay under 64 MiB):
#   cp target/debug/timmconv-torch /tmp/t && strip /tmp/t && xz -c /tmp/t > .device/timmconv-torch.xz
#   pip download --no-deps --only-binary=:all: -d .device/wheels safetensors==0.8.0
#   OUT=DIR bash tools/device/verify_parity.sh      # on the GPU machine, from the repository root
# The results of its one run are in docs/verification.md (GPU).
set -u
PY=${DEVICE_PY:-/opt/torch/.venv/bin/python3}
exec > >(tee "$OUT/log.txt") 2>&1
echo "== machine"; nvidia-smi -L; lscpu | grep -E "Model name" ; $PY --version
$PY -c "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability(), torch.cuda.is_available())"
deps=/tmp/pydeps; mkdir -p $deps
$PY -c "import safetensors" 2>/dev/null || $PY -m pip install -q --no-index --find-links .device/wheels --no-deps --target $deps safetensors || echo "pip failed"
export PYTHONPATH=$deps
SP=$($PY -c "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))")
export LD_LIBRARY_PATH="$SP/torch/lib:$(ls -d $SP/nvidia/*/lib $SP/nvidia/cu13/lib 2>/dev/null | tr '\n' ':')"
T=/tmp/w; mkdir -p $T
BIN=$T/timmconv-torch; xz -dc .device/timmconv-torch.xz > $BIN; chmod +x $BIN
$BIN --version
cases=$($PY -c "import json; [print(c['name'], c['source'], c['model'], c['in_chans'], c['num_classes']) for c in json.load(open('fixtures/verify/cases.json'))]")
echo "$cases" | while read -r name src model inch nc; do
  args=(convert fixtures/ckpt/$src -o $T/$name.safetensors --model $model --in-chans $inch -q --force)
  [ "$nc" != "None" ] && args+=(--num-classes $nc)
  $BIN "${args[@]}" || echo "$name: convert failed"
done
echo "== PyTorch here: CPU"; $PY tools/device/ts_ref.py cpu $T $T/cpu && echo ok
echo "== PyTorch here: CUDA"; $PY tools/device/ts_ref.py cuda $T $T/cuda && echo ok
echo "== OMP 1 thread: CPU"; OMP_NUM_THREADS=1 $PY tools/device/ts_ref.py cpu $T $T/cpu1 && echo ok
echo "$cases" | while read -r name src model inch nc; do
  for pair in "cpu $T/cpu/$name.io.safetensors exact-here" "cpu fixtures/verify/$name.io.safetensors stored" "cuda $T/cuda/$name.io.safetensors exact-here" "cuda fixtures/verify/$name.io.safetensors stored"; do
    set -- $pair
    tol=(); [ "$3" = exact-here ] && tol=(--atol 0 --rtol 0)
    r=$($BIN verify $T/$name.safetensors --module fixtures/verify/$name.pt --fixture $2 --device $1 "${tol[@]}" --json 2>&1)
    rc=$?
    echo "$name $1 $3 rc=$rc $(echo "$r" | $PY -c 'import json,sys
try:
  d=json.load(sys.stdin); print("passed", d["passed"], "max_abs_diff", d["max_abs_diff"], "max_rel_diff", d["max_rel_diff"], "device", d["device"])
except Exception as e: print("unparsed", sys.stdin.read()[:300])')"
    echo "$r" > "$OUT/$name.$1.$3.json"
  done
done
echo "== stored fixture vs PyTorch here (CPU, CPU 1 thread, CUDA): max |diff| / max(1, max|stored|)"
$PY - <<'PYEOF'
import json, torch, safetensors.torch as s
for c in json.load(open("fixtures/verify/cases.json")):
    n = c["name"]; st = s.load_file(f"fixtures/verify/{n}.io.safetensors")["logits"]
    scale = max(1.0, st.abs().max().item())
    print(n, *[f"{d}: {(s.load_file(f'/tmp/w/{d}/{n}.io.safetensors')['logits'] - st).abs().max().item() / scale:.3g}" for d in ("cpu", "cpu1", "cuda")])
PYEOF
echo "== done"

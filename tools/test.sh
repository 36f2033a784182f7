#!/usr/bin/env bash
# Sets up everything the tests need and runs them all: formatting, clippy, docs, the Rust tests,
# the fuzz targets' build, the `torch` feature (libtorch parity, on CPU) and the Python tests
# against timm 1.0.31 / torch 2.11.0. Used as is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# where cargo puts its builds: honour a moved target folder (a user's, or a CI cache's)
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# a full disk shows up late and far from its cause (pytest cannot make its temp folders), so say
# how much room there is up front; the suite needs about 12 GB (targets, venv, temp files)
echo "== disk: $(df -Ph . | awk 'NR==2 {print $4 " free on " $6}'), temp: $(df -Ph "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4 " free"}')"
echo "== cargo fmt --check"; cargo fmt --all -- --check; cargo fmt --manifest-path examples/candle/Cargo.toml -- --check
# the workspace: the library (top) and the CLI package (cli/), which holds the integration tests
echo "== cargo clippy"; cargo clippy --all-targets --features internals -- -D warnings
# what a crate that depends on `timmconv` builds: the library with no feature on
echo "== cargo clippy, the library alone (no features)"; cargo clippy -p timmconv --all-targets -- -D warnings
echo "== cargo doc"; RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
echo "== cargo test"; cargo test --all-targets --features internals
echo "== doc tests"; cargo test --doc
if [ -f fuzz/Cargo.toml ]; then
  echo "== fuzz targets build"; cargo build --manifest-path fuzz/Cargo.toml --quiet
fi
echo "== python environment"; PY=$(bash tools/setup_venv.sh)
echo "== torch feature (libtorch from $("$PY" -c 'import torch; print(torch.__version__)'))"
(
  export PATH="$(dirname "$PY"):$PATH" LIBTORCH_USE_PYTORCH=1
  cargo clippy --features torch --all-targets -- -D warnings
  # exact parity is claimed against PyTorch run here (tools/reference_logits.py in this venv), the
  # stored logits within a tolerance: run it as the machine is, then with other kernels forced, so
  # that an expectation true on one CPU only fails here and not first on a user's machine
  export TIMMCONV_PYTHON="$PY"
  cargo test --features torch --test verify
  echo "== torch feature again, other CPU kernels (oneDNN SSE4.1, ATen default, one thread)"
  ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 \
    cargo test --features torch --test verify
  # the torch-feature binary the test just built, kept for the Python verify tests
  cp "$target_dir/debug/timmconv" "$target_dir/debug/timmconv-torch"
)
# the wheel `pip install .` builds (maturin, pinned, in its own small venv), installed into a
# fresh venv: its `timmconv` must be on PATH and work, and the Python tests run against it
MATURIN=1.16.0
tools_venv="${XDG_CACHE_HOME:-$HOME/.cache}/timmconv/venv-maturin$MATURIN"
if ! "$tools_venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN"; then
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN"
fi
wheel_dir=$(mktemp -d)
trap 'rm -rf "$wheel_dir"' EXIT
echo "== wheel (maturin $MATURIN, release build)"
"$tools_venv/bin/maturin" build --release --quiet -o "$wheel_dir/dist"
python3 -m venv "$wheel_dir/venv"
"$wheel_dir/venv/bin/pip" install -q --disable-pip-version-check --no-index "$wheel_dir"/dist/timmconv-*.whl
(
  PATH="$wheel_dir/venv/bin:$PATH"
  [ "$(command -v timmconv)" = "$wheel_dir/venv/bin/timmconv" ]
  timmconv --version
  timmconv convert fixtures/ckpt/test_resnet.f32.zip.pth -o "$wheel_dir/smoke.safetensors" --model test_resnet --in-chans 1 -q
  timmconv inspect "$wheel_dir/smoke.safetensors" --json >/dev/null
)
# a Rust ML framework runs the output: examples/candle (its own package, candle pinned) converts
# seeded timm checkpoints through the library and compares candle-transformers' logits with
# timm's; its build (about 4 min on 2 cores, once) is cached under the target folder with the rest
echo "== candle-transformers runs converted files (examples/candle)"
"$PY" tools/make_candle_fixtures.py "$wheel_dir/candle"
CARGO_TARGET_DIR="$target_dir/candle" cargo run --quiet --locked --manifest-path examples/candle/Cargo.toml -- "$wheel_dir/candle"
# docs/rust.md's three candle divergences, applied to timm, account for all of candle's difference
"$PY" tools/check_candle_divergences.py "$wheel_dir/candle"
rm -rf "$wheel_dir/candle"
echo "== python tests (timm $("$PY" -c 'import timm; print(timm.__version__)'), the installed wheel's timmconv)"
TIMMCONV_BIN="$wheel_dir/venv/bin/timmconv" TIMMCONV_TORCH_BIN="$target_dir/debug/timmconv-torch" \
  "$PY" -m pytest -q -p no:cacheprovider --basetemp="$wheel_dir/pytest" tests/python
# the tests that compare with torch computed here, again on torch's scalar kernels (another CPU's
# numbers): they must hold there too, to the bounds tests/python/kernels.py states, or skip a
# bitwise claim saying why; a new exact expectation that holds on one CPU only fails here
echo "== python tests that compute with torch, again on its scalar kernels"
ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 \
  TIMMCONV_BIN="$wheel_dir/venv/bin/timmconv" TIMMCONV_TORCH_BIN="$target_dir/debug/timmconv-torch" \
  "$PY" -m pytest -q -p no:cacheprovider --basetemp="$wheel_dir/pytest-scalar" tests/python/test_resolution.py \
  tests/python/test_hostile.py -k "resampled_like_timm or verify_logits or bf16_casts"

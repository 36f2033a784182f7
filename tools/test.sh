#!/usr/bin/env bash
# Sets up everything the tests need and runs them all: formatting, clippy, docs, the Rust tests,
# the fuzz targets' build, the `torch` feature (libtorch parity, on CPU) and the Python tests
# against timm 1.0.31 / torch 2.11.0. Used as is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --all-targets -- -D warnings
echo "== cargo doc"; RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
echo "== cargo test"; cargo test --all-targets
echo "== doc tests"; cargo test --doc
if [ -f fuzz/Cargo.toml ]; then
  echo "== fuzz targets build"; cargo build --manifest-path fuzz/Cargo.toml --quiet
fi
echo "== python environment"; PY=$(bash tools/setup_venv.sh)
echo "== torch feature (libtorch from $("$PY" -c 'import torch; print(torch.__version__)'))"
(
  export PATH="$(dirname "$PY"):$PATH" LIBTORCH_USE_PYTORCH=1
  cargo clippy --features torch --all-targets -- -D warnings
  cargo test --features torch --test verify
)
echo "== wheel (pip install of pyproject.toml's maturin build, in a fresh venv)"
cargo build --quiet
BIN=$(bash tools/wheel.sh)
echo "== python tests (timm $("$PY" -c 'import timm; print(timm.__version__)'), against the installed $BIN)"
TIMMCONV_BIN="$BIN" "$PY" -m pytest -q tests/python

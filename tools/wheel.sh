#!/usr/bin/env bash
# Builds the pip wheel (pyproject.toml: maturin, binary bindings), installs it into a fresh venv
# and smoke-tests the `timmconv` it puts on PATH; prints that binary's path on stdout.
# PROFILE=release gives the wheel `pip install .` builds (several minutes on 2 cores); the test
# command uses the dev profile, which reuses the debug build: the packaging is what is tested.
set -euo pipefail
cd "$(dirname "$0")/.."
MATURIN=1.16.0
PROFILE="${PROFILE:-dev}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/timmconv/venv-maturin$MATURIN"
if ! "$venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN"; then
  echo "setting up $venv (maturin $MATURIN)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN" >&2
fi
dist="target/wheels/$PROFILE"
rm -rf "$dist"
"$venv/bin/maturin" build --quiet --profile "$PROFILE" --out "$dist" >&2
wheel=$(ls "$dist"/timmconv-*.whl)
fresh="target/wheel-venv"
rm -rf "$fresh"
python3 -m venv "$fresh" >&2
"$fresh/bin/pip" install -q --disable-pip-version-check --no-index "$wheel" >&2
# on PATH in the venv, and working: version, and a conversion of a shipped fixture
PATH="$PWD/$fresh/bin:$PATH" command -v timmconv | grep -qx "$PWD/$fresh/bin/timmconv"
"$fresh/bin/timmconv" --version | grep -qx "timmconv $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
"$fresh/bin/timmconv" convert fixtures/ckpt/test_resnet.f32.zip.pth -o "$smoke/r.safetensors" \
  --model test_resnet.r160_in1k --in-chans 1 -q
test -s "$smoke/r.safetensors"
echo "wheel $(basename "$wheel") installs and runs" >&2
echo "$PWD/$fresh/bin/timmconv"

#!/usr/bin/env bash
# Creates (or reuses) the Python environment the tests and generators use, with the pinned
# versions, and prints its python's path. TIMMCONV_VENV overrides where it lives.
set -euo pipefail
TORCH=2.11.0
TIMM=1.0.31
venv="${TIMMCONV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/timmconv/venv-torch$TORCH-timm$TIMM}"
py="$venv/bin/python"
if ! "$py" -c "import torch, timm, safetensors, numpy, pytest, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH' and timm.__version__ == '$TIMM' else 1)" >/dev/null 2>&1; then
  echo "setting up $venv (torch $TORCH, timm $TIMM)" >&2
  python3 -m venv "$venv" >&2
  "$py" -m pip install -q --disable-pip-version-check "torch==$TORCH" "timm==$TIMM" "safetensors==0.8.0" "numpy<3" "pytest==8.4.2" "huggingface_hub==2.4.0" >&2
fi
echo "$py"

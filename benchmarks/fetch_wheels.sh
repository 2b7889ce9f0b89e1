#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh installs on a GPU machine without a
# package index (it has torch, timm, pluggy, onnx and onnxruntime, but not kornia or
# pydantic). Run this beforehand on a machine that reaches PyPI. The folder is git-ignored:
# never commit wheels.
set -euo pipefail
cd "$(dirname "$0")"
dest=wheels
py=${GPU_PYTHON_VERSION:-3.12}
mkdir -p "$dest"
# name==version pairs that work together with pydantic>=2.5 and kornia>=0.7
python3 -m pip download --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_34_x86_64 \
  -d "$dest" \
  "kornia==$(python3 -c 'import kornia; print(kornia.__version__)' 2>/dev/null || echo 0.9.0)" \
  kornia-rs pydantic pydantic-core annotated-types typing-inspection
ls -1 "$dest"

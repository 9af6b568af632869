#!/usr/bin/env bash
# Prepared GPU check for the TensorRT tiers (NOT RUN YET: no GPU was lent to the session that wrote it).
#
# On the device machine (python3 there has torch with CUDA, onnx and onnxruntime; it lacks tensorrt,
# pydantic, tritonclient and onnxconverter-common and cannot reach a package registry):
#   1. here, put wheels for python 3.12 / manylinux x86_64 into .whl/ (see the device notes): pydantic,
#      pydantic-core, annotated-types, typing-inspection, tritonclient, onnxconverter-common, and
#      tensorrt (+ tensorrt-cu13-libs / -bindings, which are far above the 64 MiB a call may carry: on this
#      workplace's H200 that means TensorRT cannot be brought in, and this script stops at step "check");
#   2. run: bash benchmarks/gpu_tensorrt.sh   (carry .whl when wheels are needed)
# It prints, and writes to $OUT/gpu_tensorrt.json, each TensorRT tier's samples/s at batch 1 and maxBatchSize
# against fp32 on the same GPU, and its MaxAbsError against the fp32 reference.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH="$PWD/operator:$PWD:${PYTHONPATH:-}"
echo "== check"
nvidia-smi -L
python3 - <<'PY'
import importlib.util, sys
missing = [m for m in ("tensorrt", "torch", "onnx", "onnxruntime", "onnxconverter_common", "pydantic", "tritonclient", "yaml", "click", "rich")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {missing} (carry wheels in .whl/)")
import torch
assert torch.cuda.is_available(), "torch sees no GPU"
PY
echo "== build + benchmark"
python3 benchmarks/gpu_tensorrt.py "$@"

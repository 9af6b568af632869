#!/usr/bin/env bash
# The TensorRT tiers of the ctr-ranker example on a GPU, measured the way a pool's build Job measures them:
# built with the project's Python and TensorRT, then gated, config-searched and profiled through NVIDIA's Triton
# image on the same GPU; prints each tier's capacity within the SLO as a ratio to onnxruntime fp32 there.
#
# Needs: an NVIDIA GPU with its driver (nvidia-smi), docker or podman able to run GPU containers
# (--gpus all / CDI), Python 3.11, and the network for pip and the image (or both already cached).
#
#   bash benchmarks/gpu_tensorrt.sh [--profile-seconds 2] [--search-seconds 1.5]
#
# Settings (environment):
#   TRITON_IMAGE     the serving image (default nvcr.io/nvidia/tritonserver:24.10-py3, TensorRT 10.5)
#   TENSORRT_PIP     the tensorrt wheel matching that image's TensorRT (default tensorrt-cu12==10.5.0): a plan
#                    only loads in the TensorRT version that built it, and the build gates every plan by loading
#                    it into the image, so a mismatch shows as ServingFailed with Triton's message
#   WORK             scratch folder (default /tmp/fulcrum-gpu-ctr-ranker)
#   OUT              when set, gpu_tensorrt.json is written there
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
TRITON_IMAGE=${TRITON_IMAGE:-nvcr.io/nvidia/tritonserver:24.10-py3}
TENSORRT_PIP=${TENSORRT_PIP:-tensorrt-cu12==10.5.0}
WORK=${WORK:-/tmp/fulcrum-gpu-ctr-ranker}
PORT=${TRITON_PORT:-18000}

echo "== check"
nvidia-smi -L
runtime=$(command -v docker || command -v podman || true)
[ -n "$runtime" ] || { echo "docker or podman is needed to run $TRITON_IMAGE" >&2; exit 2; }

echo "== the project's Python (scripts/setup) and TensorRT"
export FULCRUM_VENV=${FULCRUM_VENV:-$HOME/.cache/fulcrum/venv/gpu}
export FULCRUM_SKIP_CLUSTER_BUILD=1
venv=$(scripts/setup | tail -1)
"$venv/bin/pip" install -q "$TENSORRT_PIP"
"$venv/bin/python" -c 'import tensorrt, torch; print("tensorrt", tensorrt.__version__, "| torch", torch.__version__)'

echo "== Triton ($TRITON_IMAGE) on the GPU, explicit model control on a shared folder"
mkdir -p "$WORK/triton-models"
chmod 0777 "$WORK/triton-models"
name=fulcrum-gpu-bench-$$
"$runtime" run -d --rm --name "$name" --gpus all --network host -v "$WORK/triton-models:$WORK/triton-models" \
  "$TRITON_IMAGE" tritonserver --model-repository="$WORK/triton-models" --model-control-mode=explicit \
  --strict-readiness=false --http-address=127.0.0.1 --http-port="$PORT" --grpc-port=$((PORT + 1)) \
  --allow-metrics=false >/dev/null
trap '"$runtime" logs "$name" 2>&1 | tail -20 >"$WORK/triton.log"; "$runtime" stop "$name" >/dev/null 2>&1 || true' EXIT

echo "== build, gate, search and profile"
"$venv/bin/python" benchmarks/gpu_tensorrt.py --triton-url "127.0.0.1:$PORT" \
  --triton-repository "$WORK/triton-models" --work "$WORK" "$@"

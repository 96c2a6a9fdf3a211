#!/usr/bin/env bash
# GPU check: train DistilBERT's architecture for a few hundred steps and evaluate
# 25,000 token sequences with the real length distribution, the reference's way and the
# project's way, on one GPU; prints both throughputs (bench/gpu_check.py says how).
#
# Run it from the repository root on a CUDA machine that has torch and transformers:
#   bash bench/gpu_check.sh [--train-steps 300] [--reviews 25000]
# A machine that cannot install packages gets the few that
# it lacks as wheels: run `make gpu-wheels` on a machine with pip access first, and carry
# the .whl/ folder along; this script installs them into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" -m bench.gpu_check "$@"

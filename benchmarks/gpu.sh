#!/usr/bin/env bash
# transformer-base on Multi30k de->en, bf16 autocast on a GPU, for a few minutes:
# prints target tokens/s, MFU against the card's bf16 peak, and test2016 BLEU (beam 5);
# writes benchmarks/results/gpu_<card>.json. Runs (slowly, in float32) without a GPU too.
#   bash benchmarks/gpu.sh [MINUTES] [--set key=value ...]
# Multi30k comes from $ATTNMT_DATA_DIR (default ../shared/data/multi30k).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-4}
shift || true
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_train.py --minutes "$MINUTES" --out "${GPU_RUN:-runs/gpu-tbase}" "$@"

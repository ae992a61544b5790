#!/usr/bin/env bash
# Issue 18, part 2: everything the GPU machine should measure, in one prepared script.
#   bash benchmarks/gpu.sh [MINUTES]
#   1. train      transformer-base on Multi30k de->en, bf16 autocast, MINUTES (default 3):
#                 target tokens/s, MFU, test2016 BLEU (beam 5) -> results/gpu_<card>.json
#   2. curves     benchmarks/parallelism.py on the device: training and greedy-decoding time
#                 per token against length, RNNs vs Transformer -> results/parallelism_gpu.json
#   3. bottleneck studies/bottleneck_numbers_converged.yaml with train.device=cuda, each run
#                 until early stopping or 1 minute -> docs/results/gpu-bottleneck-.../
#   4. multi30k   studies/multi30k_deen.yaml the same way, each run until early stopping or
#                 2 minutes -> docs/results/gpu-multi30k-deen/
# Parts 1-3 take about 10 minutes (one device call); part 4 about 9 more (a second call:
# PARTS=multi30k). PARTS=... picks parts; QUICK=1 shrinks every part to a smoke test that
# also runs, slowly, on a CPU (how the script is checked before a GPU run).
# Results under the repository; on the device machine also copied to $OUT, the folder the
# device tool brings back. Multi30k comes from $ATTNMT_DATA_DIR (default ../shared/data/multi30k, or shared/... on
# the device machine, where the checkout carries shared/).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-3}
PARTS=${PARTS:-train,curves,bottleneck}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-src}
if [ -z "${ATTNMT_DATA_DIR:-}" ] && [ -d shared/data/multi30k ]; then
  export ATTNMT_DATA_DIR=shared/data/multi30k
fi
DEVICE=$("$PYTHON" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
STUDY_OUT=${GPU_OUT:-studies/out}
echo "device: $DEVICE; parts: $PARTS; quick: ${QUICK:-0}"

if [ "${QUICK:-0}" = 1 ]; then
  TRAIN_ARGS=(--warmup 1 --set train.log_every=1 --set train.max_steps=3)
  CURVE_ARGS=(--lengths 8,16 --steps 1 --rounds 1 --models rnn-dot,transformer-small --quick)
  STUDY_ARGS=(--budget-minutes 0.05 --set train.valid_every=10)
  M30K_ARGS=(--budget-minutes 0.05 --set train.valid_every=5 --set train.valid_max_sentences=20)
  MINUTES=2
  STUDY_OUT=${GPU_OUT:-/tmp/attnmt-gpu-smoke}
else
  TRAIN_ARGS=()
  CURVE_ARGS=(--lengths 8,16,32,64,128,256,512 --steps 5 --rounds 3 --sentences 128
              --budget 16384)
  STUDY_ARGS=(--budget-minutes 1)
  # each Multi30k run until val BLEU stops improving for 3 validations, at most 2 minutes
  M30K_ARGS=(--budget-minutes 2 --set train.patience=3 --set train.valid_every=100)
fi

if [[ $PARTS == *train* ]]; then
  "$PYTHON" benchmarks/gpu_train.py --minutes "$MINUTES" --out "${GPU_RUN:-runs/gpu-tbase}" \
    "${TRAIN_ARGS[@]}"
fi
if [[ $PARTS == *curves* ]]; then
  "$PYTHON" benchmarks/parallelism.py --device "$DEVICE" --tag "${DEVICE/cuda/gpu}" \
    "${CURVE_ARGS[@]}"
fi
copy_report() {
  [ "${QUICK:-0}" = 1 ] && return
  mkdir -p "docs/results/$1"
  cp "$STUDY_OUT/$1"/*.md "$STUDY_OUT/$1"/*.json "$STUDY_OUT/$1"/*.png "docs/results/$1/"
}
if [[ $PARTS == *bottleneck* ]]; then
  "$PYTHON" -m attnmt.cli compare studies/bottleneck_numbers_converged.yaml \
    --out "$STUDY_OUT/gpu-bottleneck-numbers-converged" --set "train.device=$DEVICE" \
    "${STUDY_ARGS[@]}"
  copy_report gpu-bottleneck-numbers-converged
fi
if [[ $PARTS == *multi30k* ]]; then
  "$PYTHON" -m attnmt.cli compare studies/multi30k_deen.yaml --out "$STUDY_OUT/gpu-multi30k-deen" \
    --set "train.device=$DEVICE" "${M30K_ARGS[@]}"
  copy_report gpu-multi30k-deen
fi
# the device tool brings back only what is under $OUT: copy the results there
if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ "${QUICK:-0}" != 1 ]; then
  mkdir -p "$OUT/benchmarks/results" "$OUT/docs"
  cp benchmarks/results/gpu_*.json benchmarks/results/parallelism_gpu.json \
    "$OUT/benchmarks/results/" 2>/dev/null || true
  cp -r docs/figures docs/results "$OUT/docs/" 2>/dev/null || true
fi

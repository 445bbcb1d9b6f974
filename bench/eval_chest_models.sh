#!/usr/bin/env bash
# Scores the chest X-ray models on the three-source test split (runs/xray3-manifest.csv, made by
# bench/train_bundled.sh) under clean bicubic LR and the fixed realistic setting (box-noise: 4x4 detector
# average + 2 grey levels of Gaussian noise): one JSON (means per source and method) and one CSV per model and
# degradation, in runs/. Usage: bash bench/eval_chest_models.sh NAME=MODEL [NAME=MODEL ...]
#   e.g. bash bench/eval_chest_models.sh xray-x4=xray-x4 peer=../shared/peers/published-swift-srgan-xray-4x.pth.tar
set -euo pipefail
cd "$(dirname "$0")/.."
for pair in "$@"; do
  name="${pair%%=*}"; model="${pair#*=}"
  for deg in bicubic box-noise; do
    .venv/bin/medsr evaluate --model "$model" --manifest runs/xray3-manifest.csv --split test \
        --degradation "$deg" --json "runs/eval-$name-$deg.json" --out "runs/eval-$name-$deg.csv"
  done
done

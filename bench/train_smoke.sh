#!/usr/bin/env bash
# Issue 4's smoke run: a 2-epoch Swift-SRGAN run (pretrain 1 + gan 1, small patches) on ../shared/data chest
# X-rays with medsr's own commands, once with global_skip and once with the paper-exact network.
# Prints wall time and the val PSNR after pretraining beside bicubic. Usage: bash bench/train_smoke.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/chest-xray
OUT=${OUT:-runs/smoke}
THREADS=${1:-2}
mkdir -p "$OUT"
.venv/bin/medsr prepare "$DATA" --patients "$DATA/hannover-640.metadata.csv" \
    --patients "$DATA/hannover-2000.metadata.csv" --out "$OUT/manifest.csv" >/dev/null
.venv/bin/python bench/make_random_content_weights.py mobilenet_v2 "$OUT/mobilenet_v2_random.pt"
for skip in global-skip no-global-skip; do
  start=$(date +%s)
  rm -rf "$OUT/$skip"
  .venv/bin/medsr train --model swift-srgan --scale 4 --stage both --epochs 1 --gan-epochs 1 \
      --"$skip" --patch-size 48 --patches-per-image 4 --batch-size 16 --lr 3e-4 --pixel-loss l1 \
      --content-weights "$OUT/mobilenet_v2_random.pt" --threads "$THREADS" --num-workers 1 \
      --manifest "$OUT/manifest.csv" --out "$OUT/$skip" > "$OUT/$skip.log" 2>&1
  end=$(date +%s)
  echo "== swift-srgan --$skip: $((end - start)) s wall for pretrain 1 + gan 1 epochs"
  .venv/bin/python - "$OUT/$skip/metrics.csv" <<'PY'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    print(f"  epoch {row['epoch']} {row['stage']:8s} val PSNR {float(row['val_psnr']):.3f} dB "
          f"SSIM {float(row['val_ssim']):.4f} | bicubic {float(row['bicubic_psnr']):.3f} dB "
          f"{float(row['bicubic_ssim']):.4f} | {row['seconds']} s")
PY
done

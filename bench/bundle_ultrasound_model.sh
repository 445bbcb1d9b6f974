#!/usr/bin/env bash
# Bundles the ultrasound lateral model (weights with test scores in the header, and its card):
# bash bench/bundle_ultrasound_model.sh
# Needs runs/us-mse (bash bench/train_bundled.sh ultrasound-lateral-x4-mse --amp), the curve up to the version it
# continued (docs/results/curves/ultrasound-lateral-x4.csv, which this rewrites) and the test JSON of
# medsr evaluate (command below). Every number in the card comes from those files.
set -euo pipefail
cd "$(dirname "$0")/.."
LABEL="ultrasound (bicubic along x, 4x fewer scan lines)"
.venv/bin/python bench/make_model_card.py ultrasound-lateral-x4 runs/us-mse \
  --manifest runs/us-manifest.csv \
  --eval "$LABEL=docs/results/eval-ultrasound-lateral-x4.json" \
  --earlier-curve docs/results/curves/ultrasound-lateral-x4.csv \
  --description "Lateral (x) x4 super-resolution of lung ultrasound B-mode frames: the frame keeps its height \
(depth sampling does not change) and becomes 4x wider, as if 4x more scan lines had been fired. plainrep \
(CPU-native dense 3x3 network, ECBSR/RepVGG-style re-parameterisation, bicubic-along-x skip), trained with L1 and \
then MSE loss. \`medsr upscale\` picks it for DICOMs whose Modality is US." \
  --io "Input: one grayscale channel in [0, 1] (the frame's own range; colour frames run on their luminance, chroma \
bicubic); output 4x wider, same height (scale (1, 4))." \
  --data "\`../shared/data/ultrasound-lung\`: first, middle and last frames of 39 point-of-care lung ultrasound \
videos and 8 stills (POCUS data set, Born et al., Appl. Sci. 11:672, 2021; every item CC BY 4.0, source and URL per \
file in its metadata.csv), split by source video (\`medsr prepare --patient-column source_file\`): frames of one \
video never straddle splits. Frames are stored as RGB; training averages them to one grey channel (B-mode; the few \
tinted frames lose their tint)." \
  --scoring "Scored per image with medsr's protocol (\`medsr.protocol\`: LR by the \`ultrasound\` degradation, \
Pillow bicubic along x only; 8-bit scale, border 4, outputs rounded to 8 bits; RGB frames scored in RGB), averaged \
over the 21 test frames (7 videos; the test split holds no still). Command: \`medsr evaluate --model \
ultrasound-lateral-x4 --manifest runs/us-manifest.csv --split test --degradation ultrasound\`." \
  --not-for "Diagnosis: it is not a medical device, and it has seen only lung ultrasound from 36 training videos." \
  --not-for "Doppler or colour-flow measurements: colour is carried by bicubic chroma, not restored." \
  --not-for "Axial (depth) super-resolution, or other probes and organs without checking on your own frames first." \
  --command "bash bench/train_bundled.sh ultrasound-lateral-x4   # v1: prepare by source video, then train with L1 (re-targeted to 5 epochs on resume: medsr train --resume runs/ultrasound-lateral-x4 --epochs 5)" \
  --command "bash bench/train_bundled.sh ultrasound-lateral-x4-mse --amp   # v2: 10 epochs from v1 (commit 876648e) with MSE loss, lr 2e-4, bf16 autocast" \
  --command "LOSS=l1 OUT=us-l1 bash bench/train_bundled.sh ultrasound-lateral-x4-mse --amp   # the same schedule with L1: the control" \
  --command "medsr evaluate --model runs/us-mse/checkpoints/best.safetensors --manifest runs/us-manifest.csv --split test --degradation ultrasound --json docs/results/eval-ultrasound-lateral-x4.json" \
  --command "bash bench/bundle_ultrasound_model.sh" \
  --note "Target of issue 14 met: on the test videos it is 1.80 dB above bicubic-along-x (41.17 vs 39.37 dB) and \
1.69 dB above Lanczos-along-x (39.48), SSIM 0.9749 against 0.9679 and 0.9691; the target was +1.0 dB. v1 (L1 \
only, 940 steps) was 0.11 dB above bicubic-along-x on the same frames." \
  --note "What made the difference, on the val frames (9 frames of 3 videos; docs/results/eval-ultrasound-lateral-x4-\
v1-val.json, -l1-control-val.json, -v2-val.json): v1 39.71 dB (bicubic-along-x 39.54); the same 10-epoch schedule \
from v1 at lr 2e-4 with L1 40.88 (run us-l1); with MSE 41.24 (run us-mse, bundled). So most of the gain (+1.18 dB) \
came from training longer at a lower learning rate from v1's weights, and +0.36 dB from MSE instead of L1. v1's \
card read its flat validation (+0.02 dB over 4 epochs at lr 5e-4) as a sign that more training would not help: \
that was wrong. Why MSE helps here and not on chest X-rays (where an MSE fine-tune cost 0.03 dB) is not \
measured: PSNR rewards the conditional mean, L1 the conditional median, and speckle's skewed amplitude is where \
the two differ most." \
  --note "The +1.20 dB that v1's card gave as the reach of exact in-band restoration (the HR low-passed at the LR \
Nyquist along x; bench/ultrasound_bound.py) bounds only methods that add nothing above that Nyquist; this model \
scores 0.61 dB above it, so it restores some lateral detail above it. Which structures carry that gain (the \
pleural line, the sector's border, burned-in text) is not measured." \
  --note "The curve's first five rows (run ultrasound-lateral-x4) are the mean over the 10 val images, as \
training logged then; the later rows are the mean of sources (the 9 frames and the one still, alike), which \
training logs now: v1 scores 45.09 dB on that measure. Frames of compressed web videos, not a scanner's own line \
density: check on your own frames before relying on it."

#!/usr/bin/env bash
# Bundles a trained chest X-ray run as a medsr model (weights with test scores in the header, and its card):
# bash bench/bundle_chest_models.sh xray-x4-bicubic | xray-x4
# Needs the runs of bench/train_bundled.sh (first run, -more, -edges) and the test JSONs of
# bench/eval_chest_models.sh NAME-edges=runs/NAME-edges/checkpoints/best.safetensors; the published checkpoint's
# JSONs are the ones kept in docs/results. Every number in the card comes from those files.
set -euo pipefail
cd "$(dirname "$0")/.."
CLEAN="clean bicubic"
REAL="box-noise (4x4 detector average + 2 grey levels of noise)"
DATA="Chest radiographs of three hospitals, from \`../shared/data/chest-xray\`: Hannover Medical School COVID-19 \
cohort (46 patients; 159 PNGs 640 px wide and 92 JPEGs 2000x2000 of the same patients; CC BY 3.0, DOI \
10.6084/m9.figshare.12275009; Winther et al.; Cohen et al., arXiv 2006.11988), NIH ChestX-ray14 (170 adult \
patients, 8-bit PNG 1024x1024; NIH: unrestricted use; Wang et al., CVPR 2017) and Kermany et al. pediatric chest \
X-rays (65 children, Guangzhou Women and Children's Medical Center, JPEG quality ~96 at native size; CC BY 4.0, \
Mendeley Data doi:10.17632/rscbjbr9sj.2; Kermany et al., Cell 2018). One manifest, split by patient with \`medsr \
prepare\` (seed 0), a source per image; every split holds patients of every source:"
NOT_DEVICE="Not a medical device and not for diagnosis: it was trained on 386 radiographs of 228 patients from \
three hospitals, on a CPU, and is scored only against synthetic low-resolution copies of held-out images."
NOT_OTHER="Not for other modalities (CT, ultrasound, MR) or for colour images: it learned grayscale chest \
radiographs only."
PEER="The published Swift-SRGAN checkpoint (\`../shared/peers\`, no licence, not shipped) was trained on a GPU on \
about 90k NIH ChestX-ray14 images. Its lead lies at hard edges, not in the anatomy: away from steps of over 40 \
grey levels (the uniform padding bars of many NIH images, burned-in markers; 1% of the NIH pixels, 0.1% of \
Kermany's, 3.8% of Hannover's) this version scores above it on every source (NIH 44.98 vs 44.93 dB, Kermany \
38.87 vs 38.79, Hannover 36.54 vs 36.53), while bicubic has a quarter (Hannover, Kermany) to 61% (NIH) of its \
error at those edges, this version 15-47% and the published model 8-20% (docs/results/hard_edges.md, \
bench/hard_edges.py). Closing the gate means reproducing those steps as sharply as it does."
EDGES_NOTE="Validation during training scores centre crops of 512 px, which leave out most padding bars and \
markers: this schedule (patches drawn at hard edges) moved that figure by only +0.03 dB, but whole val images by \
+0.30 dB on the mean of sources (37.69 -> 37.99: Hannover +0.08, Kermany +0.27, NIH +0.56; \`medsr evaluate \
--split val\` of both checkpoints: docs/results/eval-xray-x4-bicubic-v2-val-whole.json and -v3-val-whole.json), which is what this version was chosen on."
case "$1" in
  xray-x4-bicubic)
    .venv/bin/python bench/make_model_card.py xray-x4-bicubic runs/xray-x4-bicubic-edges \
      --manifest runs/xray3-manifest.csv \
      --eval "$CLEAN=runs/eval-xray-x4-bicubic-edges-bicubic.json" \
      --eval "$REAL=runs/eval-xray-x4-bicubic-edges-box-noise.json" \
      --peer "$CLEAN=docs/results/eval-peer-bicubic.json" --peer "$REAL=docs/results/eval-peer-box-noise.json" \
      --earlier-run runs/xray-x4-bicubic --earlier-run runs/xray-x4-bicubic-more \
      --description "Chest X-ray super-resolution x4 for the published protocol: LR inputs made by Pillow's \
bicubic. medsr's CPU-native plainrep network (re-parameterised dense 3x3 convolutions, bicubic skip), trained on \
three hospitals. Use it to compare with papers that downscale with bicubic; for real low-resolution images use \
\`xray-x4\`, which was trained on realistic degradations." \
      --data "$DATA" --not-for "$NOT_DEVICE" --not-for "$NOT_OTHER" \
      --not-for "Not for noisy or differently blurred inputs: under the realistic setting it scores below bicubic \
(table above); use xray-x4." \
      --command "bash bench/train_bundled.sh xray-x4-bicubic        # first run: medsr prepare (three sources) + medsr train --config src/medsr/configs/xray-x4-bicubic.yaml" \
      --command "EPOCHS=8 bash bench/train_bundled.sh xray-x4-bicubic-more   # second cosine schedule from the bundled weights (lr 2e-4, seed 1)" \
      --command "EPOCHS=12 bash bench/train_bundled.sh xray-x4-bicubic-edges # third, from the second: each patch the most detailed of 8 positions" \
      --command "bash bench/eval_chest_models.sh xray-x4-bicubic-edges=runs/xray-x4-bicubic-edges/checkpoints/best.safetensors" \
      --command "bash bench/bundle_chest_models.sh xray-x4-bicubic" \
      --note "Quality gate of issue 10 NOT met: it does not beat the published checkpoint on any source under \
clean bicubic LR, but is closer than before (see the table: the gap is 0.18 dB on Hannover, 0.28 on Kermany \
and 2.35 on NIH, from 0.30, 0.58 and 3.15). It is above bicubic and Lanczos on every source." \
      --note "$PEER" --note "$EDGES_NOTE" \
      --note "Capacity is not what it lacks: the same data on a 48-channel, 20-layer plainrep grown from the \
second version (2.8x the compute) gained +0.020 dB on validation in 5 epochs (38 minutes), this 32x16 schedule \
+0.022 dB on the same crops in 6 epochs (19 minutes) (runs xray-x4-bicubic-wide and xray-x4-bicubic-edges)." ;;
  xray-x4)
    CROPS="Enhance mode on the three bundled samples (centre 96x96 input pixels, 4x): input (pixels repeated), \
bicubic, xray-x4, and the earlier swift-srresnet-xray-x4, whose diagonal crosshatch and fine grain are invented \
texture. xray-x4 adds no crosshatch and smooths the noise; on the noisiest sample (middle row) it draws the \
input's mottle, which bicubic shows faintly, as clearer curved strands, and fainter ones in the flat areas of \
the other two: read fine lines in noisy or flat regions with care. Made by: .venv/bin/python bench/make_enhance_crops.py docs/img/xray-x4-enhance-crops.png --model xray-x4 \
--model swift-srresnet-xray-x4"
    .venv/bin/python bench/make_model_card.py xray-x4 runs/xray-x4-edges \
      --manifest runs/xray3-manifest.csv \
      --eval "$REAL=runs/eval-xray-x4-edges-box-noise.json" --eval "$CLEAN=runs/eval-xray-x4-edges-bicubic.json" \
      --peer "$REAL=docs/results/eval-peer-box-noise.json" --peer "$CLEAN=docs/results/eval-peer-bicubic.json" \
      --earlier-run runs/xray-x4 --earlier-run runs/xray-x4-more \
      --image ../../../docs/img/xray-x4-enhance-crops.png "$CROPS" \
      --description "The default model of \`medsr upscale\`, \`medsr.upscale\` and the web app: chest X-ray \
super-resolution x4 for real low-resolution radiographs. medsr's CPU-native plainrep network (re-parameterised \
dense 3x3 convolutions, bicubic skip), trained on three hospitals with a randomly drawn kernel, noise and JPEG per \
patch, so that it removes noise instead of sharpening it into texture. Of the models measured here it is the only \
one above bicubic in both PSNR and SSIM on every source under the realistic setting; under clean bicubic LR it is \
above bicubic and Lanczos in PSNR on every source too." \
      --data "$DATA" --not-for "$NOT_DEVICE" --not-for "$NOT_OTHER" \
      --command "bash bench/train_bundled.sh xray-x4        # first run: medsr prepare (three sources) + medsr train --config src/medsr/configs/xray-x4.yaml" \
      --command "EPOCHS=8 bash bench/train_bundled.sh xray-x4-more   # second cosine schedule from the bundled weights (lr 2e-4, seed 1)" \
      --command "EPOCHS=8 bash bench/train_bundled.sh xray-x4-edges  # third, from the second: each patch the most detailed of 8 positions" \
      --command "bash bench/eval_chest_models.sh xray-x4-edges=runs/xray-x4-edges/checkpoints/best.safetensors" \
      --command "bash bench/bundle_chest_models.sh xray-x4" \
      --note "Quality gate of issue 10 still NOT met on two sources: under the realistic setting it gains +1.25 dB \
over bicubic on the mean of sources (+0.65 Hannover, +0.72 Kermany, +2.39 NIH; the second version: +0.60, +0.55, \
+2.07), SSIM higher on every source; the target was +1.0 dB on each source. Under clean bicubic LR it stays above \
bicubic and Lanczos in PSNR on every source (+1.24 dB over bicubic on the mean), as required." \
      --note "The published Swift-SRGAN checkpoint (\`../shared/peers\`, no licence, not shipped; trained on a GPU \
on about 90k NIH images) falls below bicubic in SSIM on every source under the realistic setting. Under clean \
bicubic LR its lead lies at hard edges (padding bars, markers), not in the anatomy: see xray-x4-bicubic's card \
and docs/results/hard_edges.md." \
      --note "This version was chosen on whole val images: +0.09 dB under box-noise (Hannover +0.03, Kermany +0.12, \
NIH +0.13) and +0.31 dB under clean bicubic over the second version (docs/results/eval-xray-x4-v2-val-whole-*.json \
and -v3-); the 512 px centre crops that training validates on moved by +0.06 dB." \
      --note "Capacity buys little: a 48-channel, 20-layer plainrep grown from the second version (2.8x the \
compute, bench/train_bundled.sh xray-x4-wide) gained +0.106 dB on the validation crops in 11 epochs (83 minutes); \
this 32x16 schedule gained +0.061 dB in 8 epochs (24 minutes), at a third of the inference time." ;;
  *) echo "usage: $0 xray-x4-bicubic | xray-x4" >&2; exit 2 ;;
esac

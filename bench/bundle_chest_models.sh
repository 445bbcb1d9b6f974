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
about 90k NIH ChestX-ray14 images. Its lead lies in burned-in graphics, not in the anatomy: 81% (NIH) and 99% \
(Hannover) of the squared error by which the third version trailed it lay in 1% of the 64 px blocks, and those \
blocks hold NIH's 'PORTABLE', 'SITTING' and 'AP' stamps, circled L/R side markers and the borders of black padding \
bars (docs/results/hard_edges.md, crops there; bench/hard_edges.py). From the 4x bicubic LR those letters are a \
smear; the published model writes them back in the stamp's font, a prior learned from NIH's own stamps. Away \
from steps of over 40 grey levels the third version already scored above it on every source."
GRAPHICS_NOTE="Versions four and five train for those graphics: 30% of patches placed over a step of more than 40 \
grey levels (\`--hard-edge-fraction\`), 30% given a synthetic burned-in annotation (\`--overlay-prob\`: text, \
a side marker or a line, drawn with Pillow's FreeType renderer), and Kermany's 54 training images drawn four \
times per epoch (\`--balance-sources\`). They were chosen on whole val images, the mean of sources, which \
training now logs (the first three runs logged 512 px centre crops, blind to most graphics): 37.99 dB for the \
third version, 38.29 after the fourth run, 38.32 after the fifth (published checkpoint: 38.53; Hannover 32.69 vs \
32.77, Kermany 38.56 vs 38.41, NIH 43.70 vs 44.41; docs/results/eval-*-val-whole.json). Test: +0.45 dB on the \
mean of sources over the third version (Hannover +0.11, Kermany +0.38, NIH +0.83)."
case "$1" in
  xray-x4-bicubic)
    .venv/bin/python bench/make_model_card.py xray-x4-bicubic runs/xray-x4-bicubic-overlays2 \
      --manifest runs/xray3-manifest.csv \
      --eval "$CLEAN=runs/eval-xray-x4-bicubic-v4-bicubic.json" \
      --eval "$REAL=runs/eval-xray-x4-bicubic-v4-box-noise.json" \
      --peer "$CLEAN=docs/results/eval-peer-bicubic.json" --peer "$REAL=docs/results/eval-peer-box-noise.json" \
      --earlier-run runs/xray-x4-bicubic --earlier-run runs/xray-x4-bicubic-more \
      --earlier-run runs/xray-x4-bicubic-edges --earlier-run runs/xray-x4-bicubic-overlays \
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
      --command "OUT=xray-x4-bicubic-overlays bash bench/train_bundled.sh xray-x4-bicubic-hard  # fourth, from the third: 30% of patches over hard steps, 30% with synthetic burned-in graphics, sources balanced, whole-image validation" \
      --command "FROM=runs/xray-x4-bicubic-overlays/checkpoints/best.safetensors SEED=8 EPOCHS=8 OUT=xray-x4-bicubic-overlays2 bash bench/train_bundled.sh xray-x4-bicubic-hard  # fifth: the same, from the fourth" \
      --command "bash bench/eval_chest_models.sh xray-x4-bicubic-v4=runs/xray-x4-bicubic-overlays2/checkpoints/best.safetensors" \
      --command "bash bench/bundle_chest_models.sh xray-x4-bicubic" \
      --note "Quality gate of issue 10 met on Kermany only: under clean bicubic LR it is above the published \
checkpoint on Kermany (38.54 vs 38.44 dB) and under it on Hannover by 0.07 dB and on NIH by 1.52 dB (the third \
version: 0.18, 0.28 and 2.35 under). It is above bicubic and Lanczos on every source (+2.09 dB over bicubic on \
the mean of sources; the third version +1.64)." \
      --note "$PEER" --note "$GRAPHICS_NOTE" \
      --note "Tried and dropped: the fifth schedule with MSE instead of L1 loss (\`--pixel-loss mse --lr 1e-4\`, \
from the fourth; stopped after 3 of 4 epochs): validation fell from 38.287 to 38.271, 38.261, 38.261 dB. Capacity: a 48-channel, 20-layer plainrep grown from the second \
version (2.8x the compute) gained +0.020 dB on validation crops in 5 epochs (38 minutes) against +0.022 for the \
32x16 third schedule in 6 (run xray-x4-bicubic-wide)." ;;
  xray-x4)
    CROPS="Enhance mode on the three bundled samples (centre 96x96 input pixels, 4x): input (pixels repeated), \
bicubic, xray-x4, and the earlier swift-srresnet-xray-x4, whose diagonal crosshatch and fine grain are invented \
texture. xray-x4 adds no crosshatch and smooths the noise; on the noisiest sample (middle row) it draws the \
input's mottle, which bicubic shows faintly, as clearer curved strands, and fainter ones in the flat areas of \
the other two: read fine lines in noisy or flat regions with care. Made by: .venv/bin/python bench/make_enhance_crops.py docs/img/xray-x4-enhance-crops.png --model xray-x4 \
--model swift-srresnet-xray-x4"
    .venv/bin/python bench/make_model_card.py xray-x4 runs/xray-x4-hard2 \
      --manifest runs/xray3-manifest.csv \
      --eval "$REAL=runs/eval-xray-x4-v4-box-noise.json" --eval "$CLEAN=runs/eval-xray-x4-v4-bicubic.json" \
      --peer "$REAL=docs/results/eval-peer-box-noise.json" --peer "$CLEAN=docs/results/eval-peer-bicubic.json" \
      --earlier-run runs/xray-x4 --earlier-run runs/xray-x4-more --earlier-run runs/xray-x4-edges \
      --earlier-run runs/xray-x4-hard \
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
      --command "HARD=0.25 OVERLAY=0 SEED=5 EPOCHS=8 bash bench/train_bundled.sh xray-x4-hard  # fourth, from the third: 25% of patches over hard steps, sources balanced, whole-image validation (resumed once after a stop)" \
      --command "FROM=runs/xray-x4-hard/checkpoints/best.safetensors HARD=0.25 OVERLAY=0 SEED=9 EPOCHS=8 OUT=xray-x4-hard2 bash bench/train_bundled.sh xray-x4-hard  # fifth: the same, from the fourth" \
      --command "bash bench/eval_chest_models.sh xray-x4-v4=runs/xray-x4-hard2/checkpoints/best.safetensors" \
      --command "bash bench/bundle_chest_models.sh xray-x4" \
      --note "Quality gate of issue 10 met on Kermany and NIH, NOT on Hannover: under the realistic setting it \
gains +1.48 dB over bicubic on the mean of sources (Hannover +0.70, Kermany +1.05, NIH +2.69; over Lanczos +0.76, \
+1.02, +2.76; the third version: +0.65, +0.72, +2.39 over bicubic), SSIM higher than both on every source; the \
target was +1.0 dB on each source, so Hannover is 0.30 dB short. Under clean bicubic LR it stays above bicubic and \
Lanczos in PSNR on every source (+1.59 dB over bicubic on the mean), as required." \
      --note "Hannover is the one source that did not move: its val score under box-noise stayed at 31.96 dB \
through versions three to five while Kermany rose by 0.38 and NIH by 0.25 (docs/results/eval-xray-x4-v3- and \
-v4-val-whole-box-noise.json). Its images hold the most fine detail and grain of the three sources (bicubic \
scores lowest there: 31.57 dB on val under box-noise, against 36.23 Kermany and 38.63 NIH), which the LR does not \
carry; more data of that kind is the likeliest way to close the last 0.30 dB (not measured)." \
      --note "The published Swift-SRGAN checkpoint (\`../shared/peers\`, no licence, not shipped; trained on a GPU \
on about 90k NIH images) falls below bicubic in SSIM on every source under the realistic setting. Under clean \
bicubic LR its lead lies in burned-in graphics (stamps, side markers), not in the anatomy: see xray-x4-bicubic's \
card and docs/results/hard_edges.md." \
      --note "Versions four and five: 25% of patches placed over steps of more than 40 grey levels \
(\`--hard-edge-fraction\`), Kermany's images drawn four times per epoch (\`--balance-sources\`), chosen on whole \
val images, mean of sources, which training now logs. Val under box-noise, mean of sources: 36.50 (third \
version), 36.68 (fourth), 36.72 dB (fifth); under clean bicubic 37.59 -> 37.87. Synthetic burned-in graphics \
(\`--overlay-prob 0.3\`, which helped xray-x4-bicubic) made this model worse on every source under box-noise \
(after 2 epochs 36.61 vs 36.65 without; run xray-x4-overlays, not bundled)." \
      --note "Capacity buys little: a 48-channel, 20-layer plainrep grown from the second version (2.8x the \
compute, bench/train_bundled.sh xray-x4-wide) gained +0.106 dB on the validation crops in 11 epochs (83 minutes); \
the 32x16 third schedule gained +0.061 dB in 8 epochs (24 minutes), at a third of the inference time." ;;
  *) echo "usage: $0 xray-x4-bicubic | xray-x4" >&2; exit 2 ;;
esac

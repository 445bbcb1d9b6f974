#!/usr/bin/env bash
# Trains the bundled chest X-ray models with medsr's own commands, on ../shared/data/chest-xray.
# Default model: bash bench/train_bundled.sh pretrain, then finetune (a second pixel-loss run from the first
# one's weights: larger patches, a new cosine schedule; the bundled one was stopped after epoch 3), then detail
# (a third run from the second's weights: MSE, patches steered to detailed regions; see the model card).
# GAN model: bash bench/train_bundled.sh gan (from the default model's weights).
# Three-source models (issue 10): bash bench/train_bundled.sh xray-x4 | xray-x4-bicubic, on the manifest of all
# three hospitals (runs/xray3-manifest.csv); continue an interrupted one with `medsr train --resume runs/NAME`.
# xray-x4-swift: the paper's network (Swift-SRGAN + global skip) on the same manifest, started from the
# Hannover-only swift-srresnet-xray-x4 weights. More training of a bundled plainrep model: xray-x4-more |
# xray-x4-bicubic-more (a new cosine schedule from the bundled weights, seed 1). xray-x4-wide |
# xray-x4-bicubic-wide: a 48-channel, 20-layer plainrep grown from the bundled weights (configs/*-wide.yaml).
# xray-x4-edges | xray-x4-bicubic-edges: a further schedule from the bundled weights with each patch the most
# detailed of 8 positions, so that hard edges (padding bars, markers) are trained on (EPOCHS: 8 and 12 bundled).
# xray-x4-hard | xray-x4-bicubic-hard: a further schedule from the bundled weights with a share of patches over
# hard steps (HARD), synthetic burned-in annotations (OVERLAY), balanced sources and whole-image validation;
# further arguments go to medsr train (e.g. --patch-size 192 --batch-size 8 --patches-per-image 8).
# ultrasound-lateral-x4-mse: a second schedule of the ultrasound model from FROM with LOSS (default mse),
# further arguments to medsr train (v2: --amp).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/chest-xray
US=../shared/data/ultrasound-lung
CT=../shared/data/ct-slices
mkdir -p runs
case "${1:-pretrain}" in
  ct-sparse-view) ;;  # it prepares its own manifest below
  ultrasound-lateral-x4*)  # split by source video (the metadata's source_file column): a video never straddles splits
    .venv/bin/medsr prepare "$US/frames" "$US/images" --patients "$US/metadata.csv" --patient-column source_file \
        --out runs/us-manifest.csv ;;
  *)  # the chest manifests: three sources (issue 10 models) and Hannover only (the earlier Swift models)
    .venv/bin/medsr prepare "$DATA" --patients "$DATA/hannover-640.metadata.csv" \
        --patients "$DATA/hannover-2000.metadata.csv" --patients "$DATA/nih-chestxray14/metadata.csv" \
        --patients "$DATA/kermany-pediatric-cxr/metadata.csv" \
        --source 'hannover-*=hannover' --source 'nih-*=nih' --source 'kermany-*=kermany' --out runs/xray3-manifest.csv
    .venv/bin/medsr prepare "$DATA/hannover-640" "$DATA/hannover-2000" --patients "$DATA/hannover-640.metadata.csv" \
        --patients "$DATA/hannover-2000.metadata.csv" --out runs/xray-manifest.csv ;;
esac
case "${1:-pretrain}" in
  ct-sparse-view)
    .venv/bin/medsr prepare "$CT" --patients "$CT/tcia-covid19-ny-sbu/metadata.csv" \
        --patients "$CT/totalsegmentator-example/metadata.csv" --patient-column patient_or_video_id \
        --source 'tcia-*=tcia' --source 'totalseg*=totalsegmentator' --out runs/ct-manifest.csv
    .venv/bin/medsr train --config src/medsr/configs/ct-sparse-view.yaml --manifest runs/ct-manifest.csv \
        --out runs/ct-sparse-view ;;
  ultrasound-lateral-x4)
    .venv/bin/medsr train --config src/medsr/configs/ultrasound-lateral-x4.yaml --manifest runs/us-manifest.csv \
        --out runs/ultrasound-lateral-x4 ;;
  ultrasound-lateral-x4-mse)  # a second schedule from FROM (default: the bundled weights; v2 came from v1's,
    # commit 876648e) with MSE loss: PSNR rewards the conditional mean, L1 learns the median
    .venv/bin/medsr train --config src/medsr/configs/ultrasound-lateral-x4.yaml --manifest runs/us-manifest.csv \
        --init-from "${FROM:-ultrasound-lateral-x4}" --pixel-loss "${LOSS:-mse}" --lr 2e-4 --epochs "${EPOCHS:-10}" \
        --seed 3 --out "runs/${OUT:-us-mse}" "${@:2}" ;;
  xray-x4|xray-x4-bicubic)
    .venv/bin/medsr train --config "src/medsr/configs/$1.yaml" --manifest runs/xray3-manifest.csv \
        --out "runs/$1" ;;
  xray-x4-swift)
    .venv/bin/medsr train --config src/medsr/configs/xray-x4-swift.yaml --manifest runs/xray3-manifest.csv \
        --init-from swift-srresnet-xray-x4 --out runs/xray-x4-swift ;;
  xray-x4-wide|xray-x4-bicubic-wide)  # a larger plainrep grown from the bundled weights (issue 10)
    .venv/bin/medsr train --config "src/medsr/configs/$1.yaml" --manifest runs/xray3-manifest.csv \
        --init-from "${1%-wide}" --out "runs/$1" ;;
  xray-x4-edges|xray-x4-bicubic-edges)  # a third schedule from the bundled weights, patches drawn at hard edges
    name="${1%-edges}"
    .venv/bin/medsr train --config "src/medsr/configs/$name.yaml" --manifest runs/xray3-manifest.csv \
        --init-from "$name" --patch-candidates 8 --lr 2e-4 --epochs "${EPOCHS:-12}" --seed 4 --out "runs/$1" ;;
  xray-x4-hard|xray-x4-bicubic-hard)  # a fourth schedule: patches over hard steps (HARD), synthetic burned-in
    # annotations (OVERLAY), sources balanced, validation on whole images (mean of sources); from FROM (default:
    # the bundled weights). Bundled v4: HARD=0.25 OVERLAY=0 SEED=5 EPOCHS=8 (xray-x4), defaults (xray-x4-bicubic)
    # CONFIG: another config of the same data (e.g. xray-x4-bicubic-deep, a larger plainrep grown from FROM)
    name="${1%-hard}"
    .venv/bin/medsr train --config "src/medsr/configs/${CONFIG:-$name}.yaml" --manifest runs/xray3-manifest.csv \
        --init-from "${FROM:-$name}" --patch-candidates 8 --hard-edge-fraction "${HARD:-0.3}" \
        --overlay-prob "${OVERLAY:-0.3}" --balance-sources --val-max-size 4096 --lr 2e-4 --epochs "${EPOCHS:-10}" \
        --seed "${SEED:-6}" --out "runs/${OUT:-$1}" "${@:2}" ;;
  xray-x4-more|xray-x4-bicubic-more)
    name="${1%-more}"
    .venv/bin/medsr train --config "src/medsr/configs/$name.yaml" --manifest runs/xray3-manifest.csv \
        --init-from "$name" --lr "${LR:-2e-4}" --epochs "${EPOCHS:-26}" --seed 1 --out "runs/$name-more" ;;
  pretrain)
    .venv/bin/medsr train --config src/medsr/configs/swift-srresnet-xray-x4.yaml \
        --manifest runs/xray-manifest.csv --out runs/swift-srresnet-xray-x4 ;;
  finetune)
    .venv/bin/medsr train --config src/medsr/configs/swift-srresnet-xray-x4.yaml \
        --manifest runs/xray-manifest.csv --init-from runs/swift-srresnet-xray-x4/checkpoints/best.safetensors \
        --patch-size 128 --lr 2e-4 --epochs "${EPOCHS:-22}" --seed 1 --out runs/swift-srresnet-xray-x4-ft ;;
  detail)
    .venv/bin/medsr train --config src/medsr/configs/swift-srresnet-xray-x4.yaml \
        --manifest runs/xray-manifest.csv --init-from runs/swift-srresnet-xray-x4-ft/checkpoints/best.safetensors \
        --patch-size 128 --patch-candidates 4 --pixel-loss mse --lr 2e-4 --epochs "${EPOCHS:-15}" --seed 2 \
        --out runs/swift-srresnet-xray-x4-detail ;;
  gan)
    # The content network: ImageNet MobileNetV2 weights cannot be downloaded on the training machine, so
    # CONTENT_WEIGHTS must name a local state dict (see the model card for what was used).
    .venv/bin/medsr train --config src/medsr/configs/swift-srgan-xray-x4.yaml \
        --manifest runs/xray-manifest.csv --init-from "${INIT_FROM:-runs/swift-srresnet-xray-x4/checkpoints/best.safetensors}" \
        --content-weights "${CONTENT_WEIGHTS:?set CONTENT_WEIGHTS to a MobileNetV2 state dict}" \
        --out runs/swift-srgan-xray-x4 ;;
esac

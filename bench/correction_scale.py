"""How well a model's correction to bicubic points at the truth: per image and per source.

For each HR image with saved outputs of a model and of bicubic (``medsr evaluate --save-images DIR`` with
``--baselines bicubic``), the correction is ``d = model - bicubic`` and what bicubic misses is
``t = HR - bicubic`` (both on the scored region, border cropped). Printed per image and per source:

- gain: the model's PSNR minus bicubic's;
- corr: the correlation of ``d`` and ``t`` (1: it adds only true detail; 0: only what the truth lacks);
- alpha: the scale ``<d, t> / <d, d>`` that would minimise the error of ``bicubic + alpha * d``. A model
  trained to the conditional mean (MSE loss) has alpha near 1 on its training distribution; alpha under 1 says
  the correction overshoots, i.e. it adds more than the input supports;
- gain at the source's alpha: the PSNR gain of ``bicubic + alpha_s * d`` with one alpha per source (fitted on the
  images scored, so an upper bound for a fixed shrinkage, not a held-out figure).

Usage: .venv/bin/python bench/correction_scale.py --manifest runs/xray3-manifest.csv --split val \
    --outputs runs/val-v5-box --method xray-x4 [--border 4]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from medsr.evaluate import output_names
from medsr.io import read_image
from medsr.metrics import psnr
from medsr.protocol import Protocol, items_from_manifest


def _grey(path: Path) -> np.ndarray:
    """A saved 8-bit output as float grey levels (the chest sets are 8-bit; the protocol scores on that scale)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--outputs", type=Path, required=True, help="the --save-images folder of medsr evaluate")
    parser.add_argument("--method", required=True, help="the model's folder name under --outputs")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--border", type=int, default=4)
    args = parser.parse_args()

    items = items_from_manifest(args.manifest, args.split)
    protocol = Protocol(scale=args.scale)  # only its HR: the first frame, centre-cropped to the scale
    names = output_names([item.path for item in items])  # where medsr evaluate saved each output
    per_source: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = defaultdict(list)
    b = args.border
    for item in items:
        saved = [args.outputs / method / names[item.path] for method in (args.method, "bicubic")]
        missing = [str(p) for p in saved if not p.is_file()]
        if missing:
            raise SystemExit(f"{item.path}: no saved output {', '.join(missing)}")
        hr = protocol.pair(read_image(item.path), item.key).hr[..., 0].astype(np.float64) * 255.0  # as scored
        model, bicubic = (_grey(p) for p in saved)
        crop = np.s_[b:-b, b:-b] if b else np.s_[:, :]
        t, d = (hr - bicubic)[crop], (model - bicubic)[crop]
        per_source[item.source or "all"].append((str(names[item.path]), d, t))

    print(f"{'image':<42} {'gain dB':>8} {'corr':>6} {'alpha':>6}")
    for source, items in sorted(per_source.items()):
        gains, gains_fit = [], []
        alpha_s = sum(float((d * t).sum()) for _, d, t in items) / sum(float((d * d).sum()) for _, d, _ in items)
        for name, d, t in items:
            # PSNR depends only on the difference, so bicubic + c scored against HR = bicubic + t is psnr(c, t)
            base = psnr(np.zeros_like(t), t, data_range=255.0)  # bicubic itself: no correction
            gain = psnr(d, t, data_range=255.0) - base
            gains.append(gain)
            gains_fit.append(psnr(alpha_s * d, t, data_range=255.0) - base)
            corr = float(np.corrcoef(d.ravel(), t.ravel())[0, 1])
            alpha = float((d * t).sum() / (d * d).sum())
            print(f"{name:<42} {gain:>+8.2f} {corr:>6.3f} {alpha:>6.2f}")
        print(f"== {source}: {len(items)} images, mean gain {np.mean(gains):+.3f} dB; alpha over the source "
              f"{alpha_s:.3f}; mean gain at that alpha {np.mean(gains_fit):+.3f} dB")


if __name__ == "__main__":
    main()

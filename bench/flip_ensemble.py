"""Would a flip ensemble (self-ensemble, EDSR+: Lim et al., CVPRW 2017) pay for its extra passes?

Scores a model on a manifest split with medsr's protocol three ways: one pass; the mean of the pass and the
left-right flipped pass (2x the time); and of those two and the top-bottom flipped pass (3x). Prints the mean
PSNR per source. Why: a 2-pass ensemble would still meet xray-x4's speed targets (56 ms fp32, 35 ms bf16 per
256 px image against 150 and 80), so it is worth knowing what it buys.

Usage: .venv/bin/python bench/flip_ensemble.py --model xray-x4 --manifest runs/xray3-manifest.csv --split val \
    --degradation box-noise
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from medsr.infer.api import upscale_array
from medsr.models import load_model
from medsr.protocol import Protocol, items_from_manifest, read_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()

    model = load_model(args.model)
    protocol = Protocol(scale=args.scale, degradation=args.degradation)
    scores: dict[str, list[list[float]]] = defaultdict(list)
    failures: list[tuple[str, str]] = []
    for item in items_from_manifest(args.manifest, args.split):
        for image in read_images([item.path], failures):
            pair = protocol.pair(image, item.key)
            plain = upscale_array(model, pair.lr)
            lr_flip = upscale_array(model, np.ascontiguousarray(pair.lr[:, ::-1]))[:, ::-1]
            ud_flip = upscale_array(model, np.ascontiguousarray(pair.lr[::-1]))[::-1]
            outputs = (plain, (plain + lr_flip) / 2, (plain + lr_flip + ud_flip) / 3)
            scores[item.source or "all"].append([protocol.score(out, pair)[1] for out in outputs])
    for path, reason in failures:
        print(f"skipped {path}: {reason}")
    print(f"{args.model}, {args.split} split, {args.degradation}: mean PSNR dB")
    print(f"{'source':<10} {'images':>6} {'1 pass':>8} {'2 (lr flip)':>12} {'3 (+ud flip)':>13}")
    for source, rows in sorted(scores.items()):
        one, two, three = np.mean(rows, axis=0)
        print(f"{source:<10} {len(rows):>6} {one:>8.3f} {two:>12.3f} {three:>13.3f}")


if __name__ == "__main__":
    main()

"""Does a model's score hold when the image moves by part of a low-resolution pixel?

A network that learned how radiographs look scores the same whether the HR image starts at pixel 0 or at
pixel 2: the LR then samples the anatomy half an LR pixel further on, which changes nothing a convolutional
network has learned. A network that memorised its training images (their exact LR -> HR pairs) loses that
memory once the sampling phase moves. The published Swift-SRGAN checkpoint (``../shared/peers``) was trained
on whole NIH images, one fixed bicubic LR each, no crops or flips, on a random 90,000 of ChestX-ray14's
112,120 images (its split_data.py and prepare_data.py), so about 80% of any NIH image we hold, held-out or
not, was probably in its training set; it never saw Hannover or Kermany. If its NIH lead is memory, it falls
with the shift on NIH and not on the other sources, and ours (which never trained on a held-out image) does
not fall either.

Scores each model with medsr's protocol on the images of a manifest split, as they are and with ``--shift``
rows and columns cut from the top and left (the protocol then crops to a multiple of the scale), and prints
the mean PSNR per source and the change.

Usage: .venv/bin/python bench/shift_probe.py --model ../shared/peers/published-swift-srgan-xray-4x.pth.tar \
    --model xray-x4-bicubic --manifest runs/xray3-manifest.csv --split val --shift 2
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict

import numpy as np

from medsr.infer.api import upscale_array
from medsr.models import load_model
from medsr.protocol import Protocol, items_from_manifest, read_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="A bundled name or weights file; repeatable.")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--split", action="append", help="Split(s) to score (default: val); repeatable.")
    parser.add_argument("--source", action="append", help="Only these sources (default: all); repeatable.")
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--shift", type=int, default=2, help="HR rows and columns cut from the top and left.")
    args = parser.parse_args()

    models = {name: load_model(name) for name in args.model}
    protocol = Protocol(scale=args.scale, degradation=args.degradation)
    scores: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    failures: list[tuple[str, str]] = []
    items = [item for split in args.split or ["val"] for item in items_from_manifest(args.manifest, split)]
    for item in items:
        if args.source and item.source not in args.source:
            continue
        for image in read_images([item.path], failures):
            shifted = dataclasses.replace(image, pixels=image.pixels[args.shift:, args.shift:])
            pairs = [protocol.pair(image, item.key), protocol.pair(shifted, item.key)]
            for name, model in models.items():
                psnrs = [protocol.score(upscale_array(model, pair.lr), pair)[1] for pair in pairs]
                scores[(item.source or "all", name)].append((psnrs[0], psnrs[1]))
    for path, reason in failures:
        print(f"skipped {path}: {reason}")
    print(f"{', '.join(args.split or ['val'])} split, {args.degradation}, shift {args.shift} HR px: mean PSNR dB")
    print(f"{'source':<10} {'model':<45} {'images':>6} {'as is':>8} {'shifted':>8} {'change':>8} {'worst':>8}")
    for (source, name), rows in sorted(scores.items()):
        values = np.asarray(rows)
        change = values[:, 1] - values[:, 0]
        print(f"{source:<10} {name[-45:]:<45} {len(rows):>6} {values[:, 0].mean():>8.3f} {values[:, 1].mean():>8.3f} "
              f"{change.mean():>+8.3f} {change.min():>+8.3f}")


if __name__ == "__main__":
    main()

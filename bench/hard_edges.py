"""Where each method's x4 error lies: at hard edges (steps of many grey levels between neighbouring pixels) or
away from them.

Why: on NIH ChestX-ray14 the published Swift-SRGAN checkpoint gains +5.4 dB over bicubic, four times what it
gains elsewhere. Many 1024 px NIH images were padded with uniform bars (8 of our 20 NIH test images have one
along a side), whose border with the radiograph is a step of up to 200 grey levels along a straight line;
burned-in markers add more such steps. Bicubic rings at a step like that. This script scores each method on
the whole image and on the pixels away from hard edges, and gives the share of its error at them.

Hard edges: HR pixels whose step to the next pixel (down or right) exceeds ``--step`` grey levels of an 8-bit
image, dilated by ``--radius`` pixels. Inputs are the outputs that ``medsr evaluate --save-images DIR`` kept
(``DIR/<method>/<path below the inputs' common folder>.png``) and the HR files. Usage:

    medsr evaluate HR... --model M --baselines bicubic --save-images runs/edges/M
    python bench/hard_edges.py HR... --outputs runs/edges/M [--outputs runs/edges/OTHER]...

With ``--lead A --behind B --crops out.png`` it also shows where A beats B: the ``--count`` 64 px blocks
(over all images) where B's squared error most exceeds A's, as rows of HR | each method, and prints the
share of B's excess error that lies in the top 1% of blocks.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from medsr.data.datasets import hard_step_mask
from medsr.degrade.bicubic import crop_to_multiple
from medsr.io import read_image


def hard_edge_zone(hr: np.ndarray, step: float, radius: int) -> np.ndarray:
    """Boolean (H, W): within ``radius`` pixels of a step of more than ``step`` (in [0, 1] units) in ``hr``."""
    return binary_dilation(hard_step_mask(hr, step), iterations=radius)


def save_crops(out: Path, blocks: list[tuple[float, Path, int, int]], methods: dict[str, Path], root: Path,
               scale: int, block: int) -> None:
    """A PNG with one row per block: HR, then each method's output, 3x enlarged (nearest)."""
    from PIL import Image

    rows = []
    for _, path, top, left in blocks:
        hr = crop_to_multiple(read_image(path).pixels, scale)[..., 0]
        tiles = [hr] + [read_image(folder / path.resolve().relative_to(root).with_suffix(".png")).pixels[..., 0]
                        for folder in methods.values()]
        rows.append(np.concatenate([tile[top:top + block, left:left + block] for tile in tiles], axis=1))
    grid = np.rint(np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(out)
    print(f"wrote {out}: rows of HR | {' | '.join(methods)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hr", nargs="+", type=Path, help="HR images (the files medsr evaluate scored)")
    parser.add_argument("--outputs", action="append", type=Path, required=True,
                        help="a --save-images folder of medsr evaluate (one subfolder per method)")
    parser.add_argument("--step", type=float, default=40.0, help="grey levels of an 8-bit image")
    parser.add_argument("--radius", type=int, default=4)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--border", type=int, default=4, help="edge pixels left out, as the protocol does")
    parser.add_argument("--lead", help="a method (subfolder name) ahead of --behind")
    parser.add_argument("--behind", help="a method behind --lead")
    parser.add_argument("--crops", type=Path, help="PNG of the blocks where --behind trails --lead most")
    parser.add_argument("--count", type=int, default=6)
    args = parser.parse_args()
    block = 64
    excess_blocks: list[tuple[float, Path, int, int]] = []  # (B's excess error, image, top, left)
    excess_total = 0.0

    methods: dict[str, Path] = {}
    for folder in args.outputs:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            methods.setdefault(sub.name, sub)
    whole: dict[str, list[float]] = {name: [] for name in methods}
    away: dict[str, list[float]] = {name: [] for name in methods}
    share: dict[str, list[float]] = {name: [] for name in methods}
    cover = []
    # medsr evaluate keeps each output's path below the inputs' common folder
    root = Path(os.path.commonpath([str(path.resolve().parent) for path in args.hr]))
    for path in args.hr:
        hr = crop_to_multiple(read_image(path).pixels, args.scale)[..., 0].astype(np.float64)  # as the protocol
        inner = np.zeros(hr.shape, dtype=bool)
        b = args.border
        inner[b:hr.shape[0] - b, b:hr.shape[1] - b] = True
        zone = hard_edge_zone(hr, args.step / 255.0, args.radius) & inner
        cover.append(zone.sum() / inner.sum())
        errors = {}
        for name, folder in methods.items():
            output = folder / path.resolve().relative_to(root).with_suffix(".png")
            error = (read_image(output).pixels[..., 0].astype(np.float64) - hr) ** 2
            errors[name] = error
            whole[name].append(10 * np.log10(1.0 / error[inner].mean()))
            away[name].append(10 * np.log10(1.0 / error[inner & ~zone].mean()))
            share[name].append(error[zone].sum() / error[inner].sum())
        if args.lead and args.behind:
            # per image normalised, as PSNR is averaged per image
            excess = np.where(inner, errors[args.behind] - errors[args.lead], 0.0) / inner.sum()
            excess_total += excess.sum()
            rows, cols = excess.shape[0] // block, excess.shape[1] // block
            sums = excess[:rows * block, :cols * block].reshape(rows, block, cols, block).sum(axis=(1, 3))
            excess_blocks += [(float(sums[r, c]), path, r * block, c * block) for r in range(rows) for c in range(cols)]
    print(f"{len(args.hr)} images; hard edges: steps over {args.step:g} grey levels, dilated {args.radius} px: "
          f"{np.mean(cover):.2%} of the scored pixels")
    print("| method | PSNR dB, whole image | PSNR dB, away from hard edges | share of its error at hard edges |")
    print("|---|---|---|---|")
    for name in methods:
        print(f"| {name} | {np.mean(whole[name]):.2f} | {np.mean(away[name]):.2f} | {np.mean(share[name]):.0%} |")
    if excess_blocks and excess_total <= 0:
        print(f"\n{args.behind} does not trail {args.lead} in squared error (mean of images): {excess_total:.3g}")
    elif excess_blocks:
        excess_blocks.sort(key=lambda item: -item[0])
        top = sum(item[0] for item in excess_blocks[:max(1, len(excess_blocks) // 100)])
        print(f"\n{args.behind} trails {args.lead} by {excess_total:.3g} in squared error (mean of images); "
              f"{top / excess_total:.0%} of that lies in the top 1% of {block} px blocks")
        if args.crops:
            save_crops(args.crops, excess_blocks[:args.count], methods, root, args.scale, block)


if __name__ == "__main__":
    main()

"""Mean PSNR/SSIM per image folder and method, from the per-image CSV of `medsr evaluate --out`.

Why: a source can mix image sets that behave differently (Hannover's 640 px PNGs and its 2000 px JPEGs); the
evaluate tables average them per source, this splits them by the folder each image lies in.

    .venv/bin/python bench/folder_means.py runs/eval.csv [more.csv ...]
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path


def folder_means(path: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(folder, method) -> (images, mean PSNR, mean SSIM) of one evaluate CSV."""
    scores: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            scores[(Path(row["image"]).parent.name, row["method"])].append((float(row["psnr"]), float(row["ssim"])))
    return {key: (len(values), sum(p for p, _ in values) / len(values), sum(s for _, s in values) / len(values))
            for key, values in sorted(scores.items())}


def main(paths: list[str]) -> None:
    """Print one table per CSV: folder, method, images, PSNR dB, SSIM."""
    for name in paths:
        print(f"{name}\nfolder                          method              images  PSNR dB    SSIM")
        for (folder, method), (count, psnr, ssim) in folder_means(Path(name)).items():
            print(f"{folder:<31} {method:<19} {count:>6}  {psnr:7.3f}  {ssim:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])

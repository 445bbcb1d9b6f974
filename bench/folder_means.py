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

from medsr.evaluate import summarize


def folder_means(path: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(folder, method) -> (images, mean PSNR, mean SSIM) of one evaluate CSV, by medsr's own :func:`summarize`."""
    by_folder: dict[str, list[dict[str, object]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_folder[Path(row["image"]).parent.name].append(
                {"method": row["method"], "psnr": float(row["psnr"]), "ssim": float(row["ssim"])})
    means = {(folder, s["method"]): (s["images"], s["psnr"], s["ssim"])
             for folder, rows in by_folder.items() for s in summarize(rows)}
    return dict(sorted(means.items()))


def main(paths: list[str]) -> None:
    """Print one table per CSV: folder, method, images, PSNR dB, SSIM."""
    for name in paths:
        print(f"{name}\nfolder                          method              images  PSNR dB    SSIM")
        for (folder, method), (count, psnr, ssim) in folder_means(Path(name)).items():
            print(f"{folder:<31} {method:<19} {count:>6}  {psnr:7.3f}  {ssim:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Markdown tables of test-split scores per source, from ``medsr evaluate --json`` files (the README's tables).

    .venv/bin/python bench/results_table.py --degradation bicubic LABEL=runs/eval-NAME-bicubic.json ...

The baselines (bicubic, Lanczos) come from the first file; each LABEL adds its model's column. Cells are
``PSNR / SSIM``; the last row is the unweighted mean over sources.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _model(methods: dict) -> str:
    return next(key for key in methods if key not in ("bicubic", "lanczos", "nearest"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degradation", required=True, help="shown in the title line")
    parser.add_argument("runs", nargs="+", help="LABEL=JSON")
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        label, _, path = item.partition("=")
        runs[label] = json.loads(Path(path).read_text())
    first = next(iter(runs.values()))
    sources = list(first["sources"]) or ["all images"]
    columns = ["bicubic", "Lanczos", *runs]
    print(f"LR by `{args.degradation}`, PSNR (dB) / SSIM:\n")
    print("| source | images | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for source in sources:
        base = first["sources"][source] if first["sources"] else first["methods"]
        cells = [base["bicubic"], base["lanczos"]]
        for data in runs.values():
            methods = data["sources"][source] if data["sources"] else data["methods"]
            cells.append(methods[_model(methods)])
        row = " | ".join(f"{c['psnr']:.2f} / {c['ssim']:.4f}" for c in cells)
        print(f"| {source} | {base['bicubic']['images']} | {row} |")


if __name__ == "__main__":
    main()

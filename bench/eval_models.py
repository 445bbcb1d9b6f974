"""Score models on a manifest's test split under several degradations: one JSON and one CSV per model and one.

Each pair NAME=MODEL (a bundled name or a checkpoint) runs ``medsr evaluate`` (model beside bicubic and Lanczos,
per source and the mean of sources) once per ``--degradation``, writing runs/eval-NAME-DEGRADATION.json and .csv:
the files ``bench/bundle_model.py --eval`` and ``medsr results-table`` read. Usage:

    python bench/eval_models.py xray-x4=xray-x4 peer=../shared/peers/published-swift-srgan-xray-4x.pth.tar
"""

from __future__ import annotations

import subprocess
import sys

import _bench


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL")
    parser.add_argument("--manifest", default="runs/xray3-manifest.csv")
    parser.add_argument("--split", default="test")
    parser.add_argument("--degradation", action="append", help="default: bicubic and box-noise")
    parser.add_argument("--out", default="runs", help="folder of the JSON and CSV files")
    args = _bench.parse(parser)
    for pair in args.models:
        name, _, model = pair.partition("=")
        for degradation in args.degradation or ["bicubic", "box-noise"]:
            stem = f"{args.out}/eval-{name}-{degradation}"
            command = [sys.executable, "-m", "medsr", "evaluate", "--model", model or name, "--manifest",
                       args.manifest, "--split", args.split, "--degradation", degradation,
                       "--json", f"{stem}.json", "--out", f"{stem}.csv"]
            print(" ".join(command[1:]), flush=True)
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()

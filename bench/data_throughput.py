"""Training patches per second from ``medsr.data.PatchDataset`` through a DataLoader, and the decode time.

Usage: ``python bench/data_throughput.py [--manifest m.csv] [--batches 20] [--workers 0,2] [--threads 1]``

Without ``--manifest`` a manifest of ``../shared/data/chest-xray`` is made first with ``medsr prepare``
(headers only, patients from the metadata tables) in a temporary folder. The dataset is the training one:
96x96 HR patches, x4 bicubic LR made on the fly, flips and rotations, images decoded once and cached in memory
before the workers start (as ``medsr train`` does). For each worker count the script prints the time to the
first batch (worker start-up) and the patches per second over the following ``--batches`` batches.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bench
import torch
from torch.utils.data import DataLoader

from medsr.data.datasets import PatchDataset, manifest_paths

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest-xray"


def make_manifest(data: Path, folder: Path, min_size: int) -> Path:
    """Run ``medsr prepare`` on ``data`` (with its ``*.metadata.csv`` tables) into ``folder/manifest.csv``."""
    manifest = folder / "manifest.csv"
    command = [sys.executable, "-m", "medsr", "prepare", str(data), "--out", str(manifest), "--headers-only",
               "--min-size", str(min_size)]
    for table in sorted(data.glob("*.metadata.csv")):
        command += ["--patients", str(table)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return manifest


def time_loader(dataset: PatchDataset, workers: int, batch_size: int, batches: int) -> tuple[float, float]:
    """(seconds to the first batch, patches per second over the next ``batches`` batches)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    del iterator
    return first, batches * batch_size / seconds


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--manifest", type=Path, help="Manifest from `medsr prepare` (default: make one).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder for the default manifest.")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batches", type=int, default=20, help="Timed batches per worker count.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=96)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--workers", default="0,2", help="Comma-separated DataLoader worker counts.")
    parser.add_argument("--max-images", type=int, help="Use only the first N images of the split.")
    args = _bench.parse(parser)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            if not args.data.is_dir():
                sys.exit(f"no manifest given and {args.data} does not exist; pass --manifest")
            start = time.perf_counter()
            manifest = make_manifest(args.data, Path(tmp), args.patch_size)
            print(f"medsr prepare {args.data}: {time.perf_counter() - start:.1f} s")
        paths = manifest_paths(manifest, args.split, min_size=args.patch_size)[: args.max_images]
        if not paths:
            sys.exit(f"no {args.split!r} images of at least {args.patch_size} pixels in {manifest}")
        needed = (args.batches + 1) * args.batch_size
        dataset = PatchDataset(paths, scale=args.scale, patch_size=args.patch_size,
                               degradation=args.degradation, patches_per_image=math.ceil(needed / len(paths)))

        start = time.perf_counter()
        dataset.store.preload()
        decode = time.perf_counter() - start
        cached = sum(dataset.store.get_stored(i)[0].nbytes for i in range(len(paths))) / 2**20
        print(f"{len(paths)} {args.split} images from {manifest}")
        print(f"decode/preload: {decode:.1f} s ({len(paths) / decode:.1f} images/s, {cached:.0f} MiB cached)")
        print(f"patches {args.patch_size}x{args.patch_size} x{args.scale} {args.degradation}, "
              f"batch {args.batch_size}, {args.batches} timed batches, "
              f"torch threads {torch.get_num_threads()}")
        for workers in (int(w) for w in args.workers.split(",")):
            first, rate = time_loader(dataset, workers, args.batch_size, args.batches)
            print(f"workers {workers}: {rate:7.1f} patches/s  (first batch after {first:.2f} s)")


if __name__ == "__main__":
    main()

"""Peak memory and speed of tiled upscaling with a memory budget, against the old fixed 512-pixel tiles.

For each case (512x512 grey, 800x350 RGB, 3072x3072 grey; made from the 512x512 chest X-ray fixture) and each
mode, a fresh process loads the default model (random Swift-SRGAN weights if it is not bundled), runs one
16x16 warm-up forward (oneDNN and thread-pool set-up: about 200 MB of RSS that any first forward costs), then
upscales the image with ``medsr.infer.upscale`` under the allocator setting ``medsr upscale`` uses. It reports
the tile used, the peak resident set size (``resource.getrusage``), its growth over the warm process, the
estimate behind the tile (``predictor.memory``) and seconds per output megapixel. Modes: ``budget``
(``--max-memory``, default 1.5G, tile 512) and ``old`` (no budget, tile 512: the behaviour before budgets).

    .venv/bin/python bench/upscale_memory.py [--cases 512-grey,800x350-rgb,3072-grey] [--modes budget,old]
        [--max-memory 1.5G] [--threads N]

The 3072x3072 case takes minutes per mode on two cores, and mode ``old`` of 800x350-rgb peaks at 10-12 GB of
RSS (3072x3072 ``old``: one 494-pixel tile at a time, about 3 GB plus the 600 MB output); pick with ``--cases``
and ``--modes``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CASES = {"512-grey": (512, 512, 1), "800x350-rgb": (350, 800, 3), "3072-grey": (3072, 3072, 1)}
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "xray_bd10d5e2_512.jpg"


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _image(height: int, width: int, channels: int):  # noqa: ANN202 (numpy is imported late on purpose)
    import numpy as np
    from PIL import Image

    with Image.open(SAMPLE) as im:
        grey = np.asarray(im.convert("L").resize((width, height), Image.Resampling.LANCZOS), np.float32) / 255
    if channels == 1:
        return grey[..., None]
    return np.stack([grey, grey**0.8, grey**1.25], axis=2).astype(np.float32)  # three different channels


def worker(case: str, mode: str, max_memory: str, threads: int | None) -> dict:
    """One measurement in this (fresh) process."""
    import resource
    import time

    from medsr.allocator import tune_allocator

    tuned = tune_allocator()
    import numpy as np
    import torch

    from medsr.infer import InferenceSettings, get_predictor, parse_memory, tile_for, upscale
    from medsr.models import DEFAULT_MODEL, build_generator, list_bundled_models, load_model

    if threads:
        torch.set_num_threads(threads)
    if any(m["name"] == DEFAULT_MODEL for m in list_bundled_models()):
        model, name = load_model(DEFAULT_MODEL, "cpu"), DEFAULT_MODEL
    else:
        torch.manual_seed(0)
        model, name = build_generator("swift-srgan", in_channels=1, scale=4).eval(), "swift-srgan (random)"
    height, width, channels = CASES[case]
    image = _image(height, width, channels)
    budget = parse_memory(max_memory) if mode == "budget" else None
    settings = InferenceSettings(device="cpu", tile=512, max_memory=budget)
    predictor = get_predictor(model, settings)
    predictor(np.zeros((1, channels, 16, 16), np.float32))  # warm-up
    warm = _rss()
    tile = tile_for(model, image.shape, settings)  # measures the model's memory when there is a budget
    start = time.perf_counter()
    out = upscale(image, model, settings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    from medsr.infer.tiling import tile_layout

    (th, ys), (tw, xs) = tile_layout(height, tile, 32), tile_layout(width, tile, 32)
    return {
        "case": case, "mode": mode, "model": name, "max_memory": budget, "tile": tile, "tiles": len(ys) * len(xs),
        "tile_shape": [th, tw], "estimate": predictor.memory(1, channels, th, tw), "warm_rss": warm,
        "peak_rss": peak, "growth": peak - warm, "seconds": seconds,
        "output_mp": out.shape[0] * out.shape[1] / 1e6, "threads": torch.get_num_threads(), "tuned": tuned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated, of: {', '.join(CASES)}.")
    parser.add_argument("--modes", default="budget,old", help="Comma-separated: budget, old.")
    parser.add_argument("--max-memory", default="1.5G", help="The budget of mode 'budget' (default 1.5G).")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.max_memory, args.threads)))
        return
    cases, modes = args.cases.split(","), args.modes.split(",")
    for item in cases + modes:
        if item not in CASES and item not in ("budget", "old"):
            parser.error(f"unknown case or mode {item!r}")
    print(f"{'case':<12} {'mode':<14} {'tile':>5} {'tiles':>5} {'estimate MB':>11} {'peak RSS MB':>11} "
          f"{'growth MB':>9} {'s':>6} {'s/out MP':>8}")
    model = "?"
    for case in cases:
        for mode in modes:
            command = [sys.executable, __file__, "--worker", case, mode, "--max-memory", args.max_memory]
            command += ["--threads", str(args.threads)] if args.threads else []
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if done.returncode:
                print(f"{case:<12} {mode:<14} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            model = r["model"]
            label = f"{mode} {args.max_memory}" if mode == "budget" else "old (tile 512)"
            print(f"{case:<12} {label:<14} {r['tile']:>5} {r['tiles']:>5} {r['estimate'] / 1e6:>11.0f} "
                  f"{r['peak_rss'] / 1e6:>11.0f} {r['growth'] / 1e6:>9.0f} {r['seconds']:>6.1f} "
                  f"{r['seconds'] / r['output_mp']:>8.2f}", flush=True)
    print(f"model {model}; growth: peak RSS over the warm process; estimate: "
          "predictor.memory for one tile (its budget check)")


if __name__ == "__main__":
    main()

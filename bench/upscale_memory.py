"""Peak memory of tiled upscaling: a 3072x3072 grayscale input (12288x12288 output) in bounded memory.

Runs ``medsr.infer.upscale_array`` with the default model (random Swift-SRGAN weights if it is not bundled)
at the default tile (512) and overlap (32), with the allocator setting ``medsr upscale`` uses, and prints the
peak resident set size (``resource.getrusage``) beside what the output array and one whole-image activation
would need.

    .venv/bin/python bench/upscale_memory.py [--size 3072] [--tile 512] [--overlap 32] [--threads N]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3072, help="Input side in pixels.")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--glibc", action="store_true", help="Keep glibc's default allocator settings.")
    args = parser.parse_args()

    from medsr.allocator import tune_allocator

    tuned = False if args.glibc else tune_allocator()
    import numpy as np
    import torch
    from PIL import Image

    from medsr.infer import InferenceSettings, upscale_array
    from medsr.infer.tiling import tile_layout
    from medsr.models import DEFAULT_MODEL, build_generator, list_bundled_models, load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if any(m["name"] == DEFAULT_MODEL for m in list_bundled_models()):
        model, name = load_model(DEFAULT_MODEL), DEFAULT_MODEL
    else:
        torch.manual_seed(0)
        model, name = build_generator("swift-srgan", in_channels=1, scale=4).eval(), "swift-srgan (random)"
    sample = Path(__file__).resolve().parents[1] / "tests" / "data" / "xray_bd10d5e2_512.jpg"
    with Image.open(sample) as im:
        big = im.convert("L").resize((args.size, args.size), Image.Resampling.LANCZOS)
    image = (np.asarray(big, dtype=np.float32) / 255.0)[..., None]
    del big

    before = _rss_mb()
    start = time.perf_counter()
    out = upscale_array(model, image, InferenceSettings(tile=args.tile, overlap=args.overlap, device="cpu"))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    sy, sx = model.scale
    size, starts = tile_layout(args.size, args.tile, args.overlap)
    whole_activation = 64 * (args.size * sy) * (args.size * sx) * 4 / 2**20  # one 64-channel fp32 map
    tile_activation = 64 * (size * sy) * (size * sx) * 4 / 2**20
    print(f"model {name}, x{sy}, input {args.size}x{args.size} -> output {out.shape[1]}x{out.shape[0]} "
          f"({out.nbytes / 2**20:.0f} MiB float32)")
    print(f"tiles: {len(starts)}x{len(starts)} of {size}x{size} (tile {args.tile}, overlap {args.overlap}); "
          f"allocator {'tuned as medsr upscale' if tuned else 'glibc defaults'}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"time {seconds:.1f} s ({seconds / len(starts) ** 2:.2f} s per tile, "
          f"{out.shape[0] * out.shape[1] / 1e6 / seconds:.2f} output MP/s)")
    print(f"RSS before {before:.0f} MiB; peak RSS {peak:.0f} MiB")
    print(f"for scale: one 64-channel fp32 activation at the output size would be {whole_activation:,.0f} MiB; "
          f"at one tile's output size {tile_activation:,.0f} MiB")


if __name__ == "__main__":
    main()

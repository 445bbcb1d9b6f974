"""Upscaling speed on this machine: 256x256 -> 1024x1024 grayscale, x4, per image.

For plainrep (the bundled ``xray-x4`` when present, else random weights), Swift-SRGAN (the bundled
``swift-srresnet-xray-x4`` when present, else random weights) and SRResNet (random weights), it times, each in
a fresh process per allocator setting:
  plain     the plain eager PyTorch forward: NCHW, BatchNorm unfolded, plainrep in its training form (3x3 +
            1x1 + identity per layer), fp32, torch.no_grad (no tricks)
  medsr     medsr's default path, ``upscale_array(model, image, InferenceSettings(device="cpu"))``: BatchNorm folded,
            channels-last, inference_mode (plus numpy in/out and the [0, 1] clip)
  onnxrt    the same call with ``backend="onnxruntime"`` (CPUExecutionProvider)
  bf16      the default path with ``precision="bf16"`` (convolutions in bfloat16 under autocast; optional,
            its error is reported; not the default)
  bicubic   Pillow bicubic upscaling of the 8-bit image (the baseline)
under two allocator settings: glibc's defaults, and the setting ``medsr upscale`` applies at start-up
(:func:`medsr.allocator.tune_allocator`: large blocks kept for reuse instead of unmapped after every layer).
Both run with ``OMP_WAIT_POLICY=PASSIVE`` as ``medsr upscale`` sets it (unless already set in the environment).
It checks that medsr's default and ONNX Runtime outputs equal the plain forward's to within 1e-4.

    .venv/bin/python bench/upscale_speed.py [--repeats 3] [--size 256] [--threads N] [--archs plainrep,swift-srgan]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import _bench

ARCHS = ("plainrep", "swift-srgan", "srresnet")
BUNDLED = {"plainrep": "xray-x4", "swift-srgan": "swift-srresnet-xray-x4"}
TOLERANCE = 1e-4


def _image(size: int):
    """A real chest X-ray (tests/data), resized to size x size: (H, W, 1) float32 in [0, 1]."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "tests" / "data" / "xray_bd10d5e2_512.jpg"
    with Image.open(path) as im:
        gray = im.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    return (np.asarray(gray, dtype=np.float32) / 255.0)[..., None]


def _model(arch: str):
    import torch

    from medsr.models import build_generator, list_bundled_models, load_model

    name = BUNDLED.get(arch)
    if name in {m["name"] for m in list_bundled_models()}:
        return load_model(name), name
    torch.manual_seed(0)
    model = build_generator(arch, in_channels=1, scale=4).eval()
    with torch.no_grad():
        for p in model.parameters():  # plainrep's last layer starts at zero; speed must not depend on that
            p.add_(torch.randn_like(p) * 1e-3)
    return model, f"{arch} (random weights)"


def _time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up: first-call set-up (folding, export, allocator growth) is not per-image cost
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def worker(arch: str, tuned: bool, repeats: int, size: int, threads: int | None) -> None:
    """One process, one allocator setting: print one JSON line per method."""
    from medsr.allocator import tune_allocator

    applied = tune_allocator() if tuned else False
    import numpy as np
    import torch

    from medsr.degrade.bicubic import pil_resize
    from medsr.infer import InferenceSettings, upscale_array

    if threads:
        torch.set_num_threads(threads)
    image = _image(size)
    model, name = _model(arch)
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())

    def plain():
        with torch.no_grad():
            return model(x)[0].numpy().transpose(1, 2, 0).clip(0, 1)

    methods = {
        "plain": plain,
        "medsr": lambda: upscale_array(model, image, InferenceSettings(device="cpu")),
        "onnxrt": lambda: upscale_array(model, image, InferenceSettings(device="cpu", backend="onnxruntime")),
        "bf16": lambda: upscale_array(model, image, InferenceSettings(device="cpu", precision="bf16")),
        "bicubic": lambda: pil_resize(image, (size * 4, size * 4), "bicubic", bit_depth=8),
    }
    reference = None
    for method, fn in methods.items():
        if method != "plain" and method not in os.environ.get("MEDSR_SPEED_METHODS", ",".join(methods)).split(","):
            continue
        seconds, out = _time(fn, repeats)
        if method == "plain":
            reference = out
        error = float(np.abs(out - reference).max())
        mse = float(np.mean((out.astype(np.float64) - reference) ** 2))
        agreement = 10 * np.log10(1 / mse) if mse > 0 else float("inf")  # PSNR against the plain output
        print(json.dumps({"arch": arch, "model": name, "tuned": applied, "method": method, "seconds": seconds,
                          "max_error": error, "psnr_vs_plain": agreement, "threads": torch.get_num_threads()}),
              flush=True)


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per method (median reported).")
    parser.add_argument("--size", type=int, default=256, help="Input side in pixels (output is 4x).")
    parser.add_argument("--archs", default=",".join(ARCHS), help="Comma-separated architectures to time.")
    parser.add_argument("--methods", default="plain,medsr,onnxrt,bf16,bicubic",
                        help="Comma-separated methods (plain always runs: it is the reference).")
    parser.add_argument("--worker", nargs=2, metavar=("ARCH", "TUNED"), help=argparse.SUPPRESS)
    args = _bench.parse(parser)
    if args.worker:
        worker(args.worker[0], args.worker[1] == "1", args.repeats, args.size, args.threads)
        return

    archs = args.archs.split(",")
    rows = []
    for arch in archs:
        for tuned in ("0", "1"):
            cmd = [sys.executable, __file__, "--worker", arch, tuned, "--repeats", str(args.repeats),
                   "--size", str(args.size)] + (["--threads", str(args.threads)] if args.threads else [])
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),  # as the CLI
                   "MEDSR_SPEED_METHODS": args.methods}
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            rows += [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    out_mp = (args.size * 4) ** 2 / 1e6
    print(f"\n{args.size}x{args.size} -> {args.size * 4}x{args.size * 4} grayscale, median of {args.repeats}, "
          f"{os.cpu_count()} CPUs, torch threads {rows[0]['threads']}")
    print(f"{'model':34s} {'allocator':10s} {'method':8s} {'ms/image':>9s} {'out MP/s':>9s} "
          f"{'vs plain':>9s} {'max |diff| vs plain':>20s} {'PSNR vs plain':>14s}")
    failed = False
    for arch in archs:
        plain_default = next(r for r in rows if r["arch"] == arch and not r["tuned"] and r["method"] == "plain")
        for r in (r for r in rows if r["arch"] == arch):
            speedup = plain_default["seconds"] / r["seconds"]
            alloc = "tuned" if r["tuned"] else "glibc"
            err = "-" if r["method"] in ("plain", "bicubic") else f"{r['max_error']:.2e}"
            agree = "-" if r["method"] in ("plain", "bicubic") else f"{r['psnr_vs_plain']:.1f} dB"
            print(f"{r['model'][:34]:34s} {alloc:10s} {r['method']:8s} {r['seconds'] * 1e3:9.0f} "
                  f"{out_mp / r['seconds']:9.2f} {speedup:8.2f}x {err:>20s} {agree:>14s}")
            if r["method"] in ("medsr", "onnxrt") and r["max_error"] > TOLERANCE:
                failed = True
        tuned_plain = next(r for r in rows if r["arch"] == arch and r["tuned"] and r["method"] == "plain")
        tuned_medsr = next(r for r in rows if r["arch"] == arch and r["tuned"] and r["method"] == "medsr")
        print(f"  {arch}: `medsr upscale` path (tuned) vs plain eager (glibc): "
              f"{plain_default['seconds'] / tuned_medsr['seconds']:.2f}x; vs plain eager with the same tuned "
              f"allocator: {tuned_plain['seconds'] / tuned_medsr['seconds']:.2f}x")
    print("'vs plain' = plain eager forward with glibc's default allocator / this row (higher is faster).")
    if failed:
        print(f"FAIL: an optimised path differs from the plain forward by more than {TOLERANCE}")
        sys.exit(1)


if __name__ == "__main__":
    main()

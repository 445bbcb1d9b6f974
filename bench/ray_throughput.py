"""Images per second of ``medsr upscale`` jobs: the local engine, and Ray with 1 and 2 workers, in one run.

Each configuration upscales the same N grayscale 256x256 PNGs (crops of the bundled sample chest X-rays) to
1024x1024 with the default model (``xray-x4``), through :func:`medsr.infer.jobs.upscale_job` (what ``medsr
upscale --results`` / ``--engine ray`` run), into a fresh folder with a fresh results table:

  local, 1 thread / 2 threads   the local engine in this process
  ray, 1 worker / 2 workers     a Ray cluster started here (``ray.init(num_cpus=2)``), 1 thread per worker

For each it prints the wall time of the whole job (model loading, Ray's start of its workers included), the
steady rate (images between the first and the last result / the time between them: workers warm), and from
those Ray's per-image overhead (Ray 1 worker against local 1 thread, both steady) and its fixed start-up cost.
Then the estimate for 100,000 images on N machines of 16 cores: one 1-thread worker per core, each at the
measured Ray 1-worker steady rate, times the measured 2-worker scaling efficiency, plus the start-up once.
Inputs other than 256x256 scale with their pixel count (tiled inference is linear in pixels): ``--cr-pixels``
gives a full-size CR estimate too (default 2,000 x 2,500).

    .venv/bin/python bench/ray_throughput.py [--images 48] [--out runs/bench-ray]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import _bench
import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medsr" / "samples"


def make_inputs(folder: Path, count: int, size: int) -> None:
    """``count`` size x size grey crops, cycling over the bundled samples and positions in them."""
    folder.mkdir(parents=True, exist_ok=True)
    images = [np.asarray(Image.open(p).convert("L")) for p in sorted(SAMPLES.glob("*.png"))]
    for i in range(count):
        image = images[i % len(images)]
        y = (i * 37) % (image.shape[0] - size)
        x = (i * 53) % (image.shape[1] - size)
        Image.fromarray(image[y : y + size, x : x + size], "L").save(folder / f"img{i:04d}.png")


def run(inputs: Path, out: Path, settings) -> dict[str, float]:
    """One job; the wall time, and the times at which results came back."""
    from medsr.infer.files import collect_sources
    from medsr.infer.jobs import upscale_job

    shutil.rmtree(out, ignore_errors=True)
    sources, _ = collect_sources([inputs])
    arrivals: list[float] = []
    started = time.perf_counter()
    report = upscale_job([(None, sources)], out, out / "results.csv", settings=settings,
                         on_rows=lambda rows: arrivals.extend([time.perf_counter()] * len(rows)))
    wall = time.perf_counter() - started
    done = sum(row.status == "done" for row in report.rows)
    assert done == len(sources), f"{len(sources) - done} image(s) failed"
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if arrivals[-1] > arrivals[0] else float("nan")
    return {"wall": wall, "images": len(sources), "rate": len(sources) / wall, "steady": steady,
            "first": arrivals[0] - started}


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ray"))
    parser.add_argument("--total", type=int, default=100_000, help="images in the estimated archive")
    parser.add_argument("--cr-pixels", type=float, default=2000 * 2500, help="input pixels of a full-size CR")
    args = _bench.parse(parser)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch

    from medsr.allocator import tune_allocator
    from medsr.infer.settings import InferenceSettings

    tune_allocator()
    inputs = args.out / "in"
    shutil.rmtree(inputs, ignore_errors=True)
    make_inputs(inputs, args.images, args.size)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"{args.images} images {args.size}x{args.size} -> x4, model xray-x4, fp32; CPU: {model}, "
          f"{os.cpu_count()} cores (shared with other tenants)")
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[f"local, {threads} thread(s)"] = run(inputs, args.out / f"local{threads}",
                                                     InferenceSettings(device="cpu"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            settings = InferenceSettings(device="cpu", engine="ray", workers=workers, worker_threads=1)
            results[f"ray, {workers} worker(s)"] = run(inputs, args.out / f"ray{workers}", settings)
    finally:
        ray.shutdown()
    print(f"{'engine':24} {'wall s':>8} {'images/s':>9} {'steady images/s':>16} {'first result s':>15}")
    for name, r in results.items():
        print(f"{name:24} {r['wall']:8.1f} {r['rate']:9.2f} {r['steady']:16.2f} {r['first']:15.1f}")
    local1, ray1, ray2 = (results[k] for k in ("local, 1 thread(s)", "ray, 1 worker(s)", "ray, 2 worker(s)"))
    overhead = 1 / ray1["steady"] - 1 / local1["steady"]
    startup = ray1["wall"] - args.images / ray1["steady"]
    efficiency = ray2["steady"] / (2 * ray1["steady"])
    print(f"Ray per-image overhead (1 worker vs local 1 thread, steady): {overhead * 1000:+.0f} ms "
          f"on {1000 / local1['steady']:.0f} ms; Ray job start-up (1 worker, till work flows): {startup:.1f} s; "
          f"2-worker scaling efficiency: {efficiency:.2f}")
    per_core = ray1["steady"] * min(efficiency, 1.0)
    scale = args.cr_pixels / args.size**2
    print(f"estimate for {args.total:,} images, one 1-thread worker per core at {per_core:.2f} images/s/core:")
    print(f"{'machines x 16 cores':>20} {'256x256 inputs':>16} {'full-size CR':>14}")
    for machines in (1, 2, 4, 8, 16, 32):
        small = args.total / (per_core * 16 * machines) + startup
        large = args.total * scale / (per_core * 16 * machines) + startup
        print(f"{machines:>20} {small / 3600:14.2f} h {large / 3600 / 24:11.1f} d")
    print(f"(full-size CR: {args.cr_pixels / 1e6:.1f} MP inputs, {scale:.0f}x the pixels of {args.size}x{args.size}; "
          "linear in pixels)")


if __name__ == "__main__":
    main()

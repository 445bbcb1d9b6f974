"""Images per second of ``medsr upscale`` jobs: the local engine, and Ray with 1 and 2 workers, in one run.

Each configuration upscales the same N grayscale 256x256 PNGs (crops of the bundled sample chest X-rays) to
1024x1024 with the default model (``xray-x4``), through :func:`medsr.infer.jobs.upscale_job` (what ``medsr
upscale --results`` / ``--engine ray`` run), into a fresh folder with a fresh results table:

  local, 1 thread / 2 threads   the local engine in this process
  ray, 1 worker / 2 workers     a Ray cluster started here (``ray.init(num_cpus=2)``), 1 thread per worker

The configurations run in turn, ``--rounds`` times (the median of each is printed: the machine may be shared).
For each it prints the wall time of the whole job (model loading, Ray's start of its workers included), the
steady rate (images between the first and the last result / the time between them: workers warm), and the mean
inference time per image measured inside the worker (the table's ``seconds``). The per-image overhead of a
1-worker configuration is its steady time per image minus that inference time (reading, writing, hashing, and
for Ray the scheduling and the trip of each result to the driver); Ray's own share is its overhead minus the
local engine's. Because that difference is small beside inference on a shared machine, it is also measured
where inference costs almost nothing: ``--images`` tiny 16x16 images, local 1 thread against Ray 1 worker, steady
time per image (the difference is what Ray adds per unit: scheduling, the result's trip, the driver's table row).
Ray's start-up is the wall time of the 1-worker job minus its images at the steady rate.
Then the estimate for 100,000 images on N machines of 16 cores: one 1-thread worker per core, each at the
measured Ray 1-worker steady rate, cores taken as independent (the 2-worker scaling measured here, on two cores
shared with other work, is printed beside it), plus the start-up once.
Inputs other than 256x256 scale with their pixel count (tiled inference is linear in pixels): ``--cr-pixels``
gives a full-size CR estimate too (default 2,000 x 2,500).

    .venv/bin/python bench/ray_throughput.py [--images 32] [--rounds 2] [--out runs/bench-ray] [--save FILE]
"""

from __future__ import annotations

import os
import shutil
import statistics
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
    inference = statistics.mean(row.seconds for row in report.rows)
    return {"wall": wall, "rate": len(sources) / wall, "steady": steady, "first": arrivals[0] - started,
            "inference": inference}


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ray"))
    parser.add_argument("--total", type=int, default=100_000, help="images in the estimated archive")
    parser.add_argument("--cr-pixels", type=float, default=2000 * 2500, help="input pixels of a full-size CR")
    args = _bench.parse(parser)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private cluster; leave no token in ~/.ray behind
    import ray
    import torch

    from medsr.allocator import tune_allocator
    from medsr.infer.settings import InferenceSettings

    tune_allocator()
    inputs = args.out / "in"
    shutil.rmtree(inputs, ignore_errors=True)
    make_inputs(inputs, args.images, args.size)
    print(f"{args.images} images {args.size}x{args.size} -> x4, model xray-x4, fp32; CPU: {_bench.cpu_name()}, "
          f"{os.cpu_count()} cores (shared with other tenants)")
    tiny = args.out / "tiny"
    shutil.rmtree(tiny, ignore_errors=True)
    make_inputs(tiny, args.images, 16)
    runs: dict[str, list[dict[str, float]]] = {}
    local = {f"local, {t} thread(s)": (t, InferenceSettings(device="cpu")) for t in (1, 2)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for _ in range(args.rounds):
            for name, (threads, settings) in local.items():
                torch.set_num_threads(threads)
                runs.setdefault(name, []).append(run(inputs, args.out / "local", settings))
            for workers in (1, 2):
                settings = InferenceSettings(device="cpu", engine="ray", workers=workers, worker_threads=1)
                runs.setdefault(f"ray, {workers} worker(s)", []).append(run(inputs, args.out / "ray", settings))
            torch.set_num_threads(1)
            runs.setdefault("16x16: local, 1 thread", []).append(run(tiny, args.out / "local", InferenceSettings(
                device="cpu")))
            settings = InferenceSettings(device="cpu", engine="ray", workers=1, worker_threads=1)
            runs.setdefault("16x16: ray, 1 worker", []).append(run(tiny, args.out / "ray", settings))
    finally:
        ray.shutdown()
    results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    print(f"{'engine':24} {'wall s':>8} {'images/s':>9} {'steady images/s':>16} {'first result s':>15} "
          f"{'inference ms':>13}")
    for name, r in results.items():
        print(f"{name:24} {r['wall']:8.1f} {r['rate']:9.2f} {r['steady']:16.2f} {r['first']:15.1f} "
              f"{r['inference'] * 1000:13.0f}")
    local1, ray1, ray2 = (results[k] for k in ("local, 1 thread(s)", "ray, 1 worker(s)", "ray, 2 worker(s)"))
    local_overhead = 1 / local1["steady"] - local1["inference"]
    ray_overhead = 1 / ray1["steady"] - ray1["inference"]
    startup = ray1["wall"] - args.images / ray1["steady"]
    efficiency = ray2["steady"] / (2 * ray1["steady"])
    print(f"per-image overhead beyond inference: local {local_overhead * 1000:.0f} ms, Ray 1 worker "
          f"{ray_overhead * 1000:.0f} ms, so Ray adds {(ray_overhead - local_overhead) * 1000:+.0f} ms per image; "
          f"Ray job start-up (1 worker, till work flows): {startup:.1f} s; 2-worker scaling here: {efficiency:.2f}")
    per_core = ray1["steady"]  # one worker per core, cores assumed independent (see the 2-worker figure)
    scale = args.cr_pixels / args.size**2
    tiny_local, tiny_ray = results["16x16: local, 1 thread"], results["16x16: ray, 1 worker"]
    print(f"16x16 images (inference {tiny_local['inference'] * 1000:.1f} ms): {1000 / tiny_local['steady']:.1f} ms "
          f"per image local, {1000 / tiny_ray['steady']:.1f} ms with Ray: Ray adds "
          f"{1000 / tiny_ray['steady'] - 1000 / tiny_local['steady']:+.1f} ms per image")
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

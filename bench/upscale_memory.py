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

File cases run the whole ``medsr upscale FILE -o OUT`` (read, model chosen by Modality, upscale, write) in a fresh
process at default settings (threads: all cores unless ``--threads``; memory budget: ``--max-memory``), on files
the parent process writes first into a temporary folder: ``us-cine`` (a 120-frame 480x640 colour ultrasound
cine, DICOM, ``ultrasound-lateral-x4``), ``mr-series`` (a 200-frame 256x256 16-bit MR, DICOM, ``xray-x4``) and
``3072-png`` (a 3072x3072 8-bit grey PNG, ``xray-x4``). Their mode column is ``file``.

    .venv/bin/python bench/upscale_memory.py --cases us-cine,mr-series,3072-png --modes file

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

import _bench

CASES = {"512-grey": (512, 512, 1), "800x350-rgb": (350, 800, 3), "3072-grey": (3072, 3072, 1)}
FILE_CASES = {"us-cine": (120, 480, 640, 3), "mr-series": (200, 256, 256, 1), "3072-png": (1, 3072, 3072, 1)}
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


def make_file(case: str, folder: Path) -> Path:
    """Write the input of a file case into ``folder``: frames of the chest X-ray fixture, each shifted a little."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames, height, width, channels = FILE_CASES[case]
    grey = _image(height + frames, width, 1)[..., 0]
    if case == "3072-png":
        path = folder / "large.png"
        Image.fromarray(np.rint(grey[:height] * 255).astype(np.uint8)).save(path)
        return path
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    us = case == "us-cine"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1" if us else "1.2.840.10008.5.1.4.1.1.4"  # US multi-frame, MR
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = ("US" if us else "MR"), "BENCH", "Bench^Memory"
    stack = np.stack([grey[i : i + height] for i in range(frames)])
    if us:
        colour = np.stack([stack, stack**0.8, stack**1.25], axis=-1)
        ds.set_pixel_data(np.rint(colour * 255).astype(np.uint8), "RGB", 8)
    else:
        ds.set_pixel_data(np.rint(stack * 4095).astype(np.uint16), "MONOCHROME2", 12)
        ds.PixelSpacing = [0.9, 0.9]
    path = folder / f"{case}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def file_worker(case: str, path: str, max_memory: str, threads: int | None) -> dict:
    """``medsr upscale PATH -o OUT`` at default settings in this (fresh) process: peak RSS and seconds."""
    import resource
    import tempfile
    import time

    from medsr.cli import main

    argv = ["medsr", "upscale", path, "-o", tempfile.mkdtemp(prefix="medsr-bench-"), "--max-memory", max_memory]
    sys.argv = argv + (["--threads", str(threads)] if threads else [])
    start = time.perf_counter()
    try:
        with open(os.devnull, "w") as quiet:
            sys.stdout = quiet
            main()
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        sys.stdout = sys.__stdout__
    seconds = time.perf_counter() - start
    import torch

    frames, height, width, _ = FILE_CASES[case]
    return {"case": case, "mode": "file", "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "seconds": seconds, "input_mp": frames * height * width / 1e6, "threads": torch.get_num_threads()}


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
    parser = _bench.parser(__doc__)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"Comma-separated, of: {', '.join([*CASES, *FILE_CASES])}.")
    parser.add_argument("--modes", default="budget,old", help="Comma-separated: budget, old, file.")
    parser.add_argument("--max-memory", default="1.5G", help="The budget of mode 'budget' (default 1.5G).")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = _bench.parse(parser)
    if args.worker and args.file:
        print(json.dumps(file_worker(args.worker[0], args.file, args.max_memory, args.threads)))
        return
    if args.worker:
        print(json.dumps(worker(*args.worker, args.max_memory, args.threads)))
        return
    cases, modes = args.cases.split(","), args.modes.split(",")
    for item in cases + modes:
        if item not in CASES and item not in FILE_CASES and item not in ("budget", "old", "file"):
            parser.error(f"unknown case or mode {item!r}")
    files = [case for case in cases if case in FILE_CASES]
    if files:
        run_file_cases(files, args)
        cases = [case for case in cases if case in CASES]
        if not cases:
            return
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


def run_file_cases(cases: list[str], args: argparse.Namespace) -> None:
    """Each file case: write its input, then ``medsr upscale`` it in a fresh process; one line each."""
    import tempfile

    print(f"{'case':<12} {'mode':<14} {'frames':>6} {'input MP':>8} {'peak RSS MB':>11} {'s':>6} {'threads':>7}")
    with tempfile.TemporaryDirectory(prefix="medsr-bench-") as folder:
        for case in cases:
            path = make_file(case, Path(folder))
            command = [sys.executable, __file__, "--worker", case, "file", "--file", str(path),
                       "--max-memory", args.max_memory] + (["--threads", str(args.threads)] if args.threads else [])
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            path.unlink()
            if done.returncode:
                print(f"{case:<12} {'file':<14} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{case:<12} {'file ' + args.max_memory:<14} {FILE_CASES[case][0]:>6} {r['input_mp']:>8.1f} "
                  f"{r['peak_rss'] / 1e6:>11.0f} {r['seconds']:>6.1f} {r['threads']:>7}", flush=True)


if __name__ == "__main__":
    main()

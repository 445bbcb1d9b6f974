"""Colour images with a grayscale model: time and quality of ``colour="luminance"`` against ``"per-channel"``.

For each colour image (first frame of a DICOM):
  speed    the whole image upscaled as the web app and ``medsr upscale`` do (``upscale_array``; it is the LR
           input), each mode timed ``--repeats`` times, modes interleaved, best time kept (other work on the
           machine only ever adds time)
  quality  the scoring protocol of ``medsr evaluate`` (:class:`medsr.protocol.Protocol`: Pillow bicubic
           downscale by the model's scale, output quantised to 8 bits, ``scale`` pixels of border cropped),
           PSNR/SSIM on RGB (what ``medsr evaluate`` reports) and on Y (BT.601 full range, as
           :mod:`medsr.infer.colour` converts; the studio-range Y of MATLAB/BasicSR gives PSNR 1.3 dB higher),
           with Pillow bicubic as the baseline
``chroma`` is the mean distance of (Cb, Cr) from grey in 8-bit levels: how colourful the image is.

    .venv/bin/python bench/colour_speed.py [IMAGE ...] [--model xray-x4] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import _bench
import numpy as np
import torch

from medsr.evaluate import model_method
from medsr.infer import InferenceSettings, upscale_array
from medsr.infer.colour import rgb_to_ycbcr
from medsr.io import read_image
from medsr.metrics import psnr, ssim
from medsr.models import DEFAULT_MODEL, load_model
from medsr.protocol import Protocol

ROOT = Path(__file__).resolve().parents[1]
ULTRASOUND = ROOT.parent / "shared" / "data" / "ultrasound-lung"
DEFAULT_IMAGES = (  # the tinted convex-probe frames, a figure with colour marks, a colour Doppler DICOM
    ULTRASOUND / "frames" / "Cov_convex_volpecelli_sonographic_v2_f0201.png",
    ULTRASOUND / "frames" / "Cov_recommendations_lightbeam_mov6_f0000.png",
    ULTRASOUND / "images" / "Cov_unsmooth_pleuralline_prelim_study_SSRN_paper2.png",
    ROOT / "tests" / "data" / "us_ybr_color.dcm",
)
MODES = ("luminance", "per-channel")


def chroma_levels(rgb: np.ndarray) -> float:
    """Mean distance of (Cb, Cr) from neutral grey, in 8-bit levels."""
    cbcr = rgb_to_ycbcr(rgb)[..., 1:] - 0.5
    return float(np.sqrt((cbcr**2).sum(axis=-1)).mean() * 255)


def best_seconds(net: torch.nn.Module, lr: np.ndarray, settings: InferenceSettings, repeats: int) -> dict[str, float]:
    """Best wall time of ``upscale_array`` on ``lr`` per colour mode, modes interleaved, after one warm-up."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode in MODES:
        upscale_array(net, lr[:32, :32], settings.with_(colour=mode))
    for _ in range(repeats):
        for mode in MODES:
            start = time.perf_counter()
            upscale_array(net, lr, settings.with_(colour=mode))
            times[mode].append(time.perf_counter() - start)
    return {mode: min(values) for mode, values in times.items()}


def scores(net: torch.nn.Module, path: Path, settings: InferenceSettings) -> dict[str, tuple[float, ...]]:
    """(PSNR RGB, SSIM RGB, PSNR Y, SSIM Y) of bicubic and each mode under ``medsr evaluate``'s protocol."""
    protocol = Protocol(scale=int(net.scale[0]))
    pair = protocol.pair(read_image(path))
    methods = {mode: model_method(net, settings.with_(colour=mode)) for mode in MODES}
    methods = {"bicubic": protocol.baselines(["bicubic"], pair)["bicubic"], **methods}
    hr_y = rgb_to_ycbcr(pair.hr)[..., :1]
    found = {}
    for name, method in methods.items():
        sr, value_psnr, value_ssim = protocol.score(method(pair.lr, pair.hr.shape[:2]), pair)
        sr_y = rgb_to_ycbcr(sr)[..., :1]
        found[name] = (value_psnr, value_ssim, float(psnr(sr_y, hr_y, 1.0, protocol.crop)),
                       float(ssim(sr_y, hr_y, 1.0, protocol.crop)))
    return found


def main() -> None:
    parser = _bench.parser(__doc__, threads=2)
    parser.add_argument("images", nargs="*", type=Path, default=list(DEFAULT_IMAGES))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="", help="A line for the header (e.g. what else the machine ran).")
    args = _bench.parse(parser)
    torch.set_num_threads(args.threads)
    settings = InferenceSettings(device="cpu")
    net = load_model(args.model, "cpu")
    print(f"model {args.model} (x{net.scale[0]}, {net.in_channels} channel), CPU, torch threads {args.threads}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; best of {args.repeats}")
    if args.note:
        print(args.note)
    print(f"{'image':48} {'size':>9} {'chroma':>6} {'method':>11} {'seconds':>7} {'speed-up':>8} "
          f"{'PSNR RGB':>8} {'SSIM RGB':>8} {'PSNR Y':>7} {'SSIM Y':>7}")
    for path in args.images:
        image = read_image(path)
        frame = np.ascontiguousarray(image.pixels[0] if image.is_multiframe else image.pixels, dtype=np.float32)
        seconds = best_seconds(net, frame, settings, args.repeats)
        found = scores(net, path, settings)
        size = f"{frame.shape[1]}x{frame.shape[0]}"
        for name, (p_rgb, s_rgb, p_y, s_y) in found.items():
            timing = (f"{seconds[name]:7.2f} {seconds['per-channel'] / seconds[name]:7.2f}x" if name in seconds
                      else f"{'-':>7} {'-':>8}")
            print(f"{path.name[:48]:48} {size:>9} {chroma_levels(frame):6.1f} {name:>11} {timing} "
                  f"{p_rgb:8.2f} {s_rgb:8.4f} {p_y:7.2f} {s_y:7.4f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

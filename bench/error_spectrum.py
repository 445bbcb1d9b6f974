"""Where in the spectrum each method's x4 error lies: the HR image's narrow peaks above the LR Nyquist, the
rest of that band, and the band below the LR Nyquist.

Why: on NIH ChestX-ray14 the published Swift-SRGAN checkpoint gains +5.4 dB over bicubic, four times what it
gains elsewhere. The 1024 px NIH radiographs carry a fine periodic pattern (narrow peaks in their spectrum, a
period of 6-8 pixels; consistent with the lines of an anti-scatter grid) just above what a x4 LR image can
hold: bicubic downscaling folds it to a lower frequency, and a network that has seen many such images can fold
it back. This script measures how much of each method's error sits at those peaks.

Peaks: frequency bins above the LR Nyquist (|f| > 1/(2 scale) cycles per HR pixel along either axis) whose
HR power is more than ``--peak-factor`` times the median power of that band. Inputs are the outputs that
``medsr evaluate --save-images DIR`` kept (``DIR/<method>/<name>.png``, 8-bit) and the HR files. Usage:

    medsr evaluate HR... --model M --baselines bicubic --save-images runs/spectrum/M
    python bench/error_spectrum.py HR... --outputs runs/spectrum/M [--outputs runs/spectrum/OTHER]...

Prints one row per method: mean PSNR over the images (border 4), the share of its error energy in each band,
and its error energy at the peaks as a fraction of bicubic's (how much of bicubic's peak error it removes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medsr.degrade.bicubic import crop_to_multiple
from medsr.io import read_image


def bands(hr: np.ndarray, scale: int, peak_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over the 2-D FFT of ``hr``: (peaks above the LR Nyquist, the whole band above it)."""
    power = np.abs(np.fft.fft2(hr - hr.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(hr.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(hr.shape[1]))[None, :]
    high = np.maximum(fy, fx) > 0.5 / scale
    return high & (power > peak_factor * np.median(power[high])), high


def error_shares(hr: np.ndarray, sr: np.ndarray, peaks: np.ndarray, high: np.ndarray) -> tuple[float, ...]:
    """(total, peaks, rest of the high band, below the LR Nyquist) error energy of ``sr`` against ``hr``."""
    energy = np.abs(np.fft.fft2(sr - hr)) ** 2
    return float(energy.sum()), float(energy[peaks].sum()), float(energy[high & ~peaks].sum()), float(
        energy[~high].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hr", nargs="+", type=Path, help="HR images (the files medsr evaluate scored)")
    parser.add_argument("--outputs", action="append", type=Path, required=True,
                        help="a --save-images folder of medsr evaluate (one subfolder per method)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--border", type=int, default=4)
    parser.add_argument("--peak-factor", type=float, default=50.0)
    args = parser.parse_args()

    methods: dict[str, Path] = {}
    for folder in args.outputs:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            methods.setdefault(sub.name, sub)
    sums: dict[str, list[float]] = {name: [] for name in methods}
    shares: dict[str, np.ndarray] = {name: np.zeros(4) for name in methods}
    peak_ratio: dict[str, list[float]] = {name: [] for name in methods}
    peak_share_of_high = []
    for path in args.hr:
        hr = crop_to_multiple(read_image(path).pixels, args.scale)[..., 0].astype(np.float64)
        peaks, high = bands(hr, args.scale, args.peak_factor)
        power = np.abs(np.fft.fft2(hr - hr.mean())) ** 2
        peak_share_of_high.append(power[peaks].sum() / power[high].sum())
        reference = None
        for name, folder in methods.items():
            sr = read_image(folder / f"{path.stem}.png").pixels[..., 0].astype(np.float64)
            b = args.border
            mse = np.mean((sr - hr)[b:-b, b:-b] ** 2)
            sums[name].append(10 * np.log10(1.0 / mse))
            total, at_peaks, rest, low = error_shares(hr, sr, peaks, high)
            shares[name] += np.array([total, at_peaks, rest, low]) / total
            if name == "bicubic":
                reference = at_peaks
            peak_ratio[name].append(at_peaks)
        if reference is not None:
            for name in methods:
                peak_ratio[name][-1] /= reference
    n = len(args.hr)
    print(f"{n} images, x{args.scale}; peaks = bins above the LR Nyquist with over {args.peak_factor:g}x the "
          f"band's median HR power: {np.mean(peak_share_of_high):.0%} of the HR power above the LR Nyquist")
    print("| method | PSNR dB | error at peaks | rest above LR Nyquist | below LR Nyquist | peak error / bicubic's |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        _, p, r, low = shares[name] / n
        ratio = f"{np.mean(peak_ratio[name]):.2f}" if "bicubic" in methods else "-"
        print(f"| {name} | {np.mean(sums[name]):.2f} | {p:.0%} | {r:.0%} | {low:.0%} | {ratio} |")


if __name__ == "__main__":
    main()

"""What exact in-band restoration gains on the ultrasound test frames: a bound for methods that add nothing above it.

The LR frame (``ultrasound`` degradation: Pillow bicubic along x by the scale, rows kept) holds at most the
HR's lateral frequencies up to the LR Nyquist, 1/(2 scale) cycles per HR pixel. The HR frame low-passed
there along x (an ideal brick-wall filter over each row) is the best a method can do that restores the
in-band content exactly and adds nothing above it; its PSNR bounds such methods (a model that infers detail
above the LR Nyquist, e.g. at sharp edges, can score higher: the bundled v2 does, by 0.61 dB). This prints that
bound beside bicubic-along-x (the protocol's baseline) and the share of each frame's lateral AC power above the LR
Nyquist.
Both are scored by medsr's protocol (`medsr.protocol`, as `medsr evaluate` scores the model card's table). Usage:

    python bench/ultrasound_bound.py runs/us-manifest.csv [--split test] [--scale 4]
"""

from __future__ import annotations

import argparse

import numpy as np

from medsr.data.manifest import read_manifest
from medsr.io import read_image
from medsr.protocol import Protocol


def lateral_lowpass(image: np.ndarray, cutoff: float) -> np.ndarray:
    """``image`` (H, W, C) with every lateral (x) frequency above ``cutoff`` cycles per pixel removed."""
    spectrum = np.fft.rfft(image, axis=1)
    spectrum[:, np.fft.rfftfreq(image.shape[1]) > cutoff] = 0
    return np.fft.irfft(spectrum, n=image.shape[1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    protocol = Protocol(scale=args.scale, degradation="ultrasound")
    cutoff = 0.5 / args.scale
    scores: dict[str, list[float]] = {"bicubic": [], "bound": []}
    above = []
    rows = read_manifest(args.manifest, args.split)
    for row in rows:
        pair = protocol.pair(read_image(row.path))
        hr = pair.hr.astype(np.float64)
        methods = {"bicubic": protocol.baselines(["bicubic"], pair)["bicubic"],
                   "bound": lambda lr, size, hr=hr: np.clip(lateral_lowpass(hr, cutoff), 0.0, 1.0)}
        for result in protocol.run(pair, methods):
            scores[result["method"]].append(result["psnr"])
        power = np.abs(np.fft.rfft(hr - hr.mean(axis=1, keepdims=True), axis=1)) ** 2
        above.append(power[:, np.fft.rfftfreq(hr.shape[1]) > cutoff].sum() / power.sum())
    bicubic, bound = np.mean(scores["bicubic"]), np.mean(scores["bound"])
    print(f"{len(rows)} {args.split} frames, x{args.scale} along x: bicubic-along-x {bicubic:.2f} dB; HR low-passed "
          f"at the LR Nyquist along x (exact in-band, nothing above) {bound:.2f} dB (+{bound - bicubic:.2f}); "
          f"lateral AC power above the LR Nyquist {np.mean(above):.2%}")


if __name__ == "__main__":
    main()

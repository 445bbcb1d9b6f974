"""Score a sparse-view CT model in Hounsfield units: the whole HU range and two reading windows.

Pairs come from medsr's one scoring protocol (``medsr.protocol.Protocol``: the slice on the model's fixed HU
range, its sparse-view FBP, quantised to whole HU). Methods: the sparse-view FBP itself (what the scanner would
show), a classical baseline (total-variation denoising of the FBP, scikit-image's Chambolle solver, its weight
chosen on the validation split), and the model. Each is scored by PSNR/SSIM over the model's HU range
(-1024..3071, a 4095 HU peak), in a lung window (-1350..150 HU) and in a soft-tissue window (-160..240 HU): both
images are clipped to the window and the window's width is the peak. A border of 4 pixels is left out.

    .venv/bin/python bench/eval_ct.py --model ct-sparse-view --manifest runs/ct-manifest.csv \\
        [--split test] [--json docs/results/ct-sparse-view/eval-ct-sparse-view.json] [--markdown runs/ct-windows.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skimage.restoration import denoise_tv_chambolle

from medsr.infer import upscale_array
from medsr.intensity import model_units
from medsr.metrics import psnr, ssim
from medsr.models import load_model, model_name
from medsr.protocol import Pair, Protocol, items_from_manifest, read_images

WINDOWS = {"HU range": None, "lung (-1350..150)": (-1350.0, 150.0), "soft tissue (-160..240)": (-160.0, 240.0)}
TV_WEIGHTS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
BORDER = 4


def _windowed(pixels: np.ndarray, value_range: tuple[float, float], window: tuple[float, float] | None) -> np.ndarray:
    if window is None:
        return pixels
    low, high = value_range
    hu = low + pixels.astype(np.float64) * (high - low)
    return ((np.clip(hu, *window) - window[0]) / (window[1] - window[0])).astype(np.float32)


def scores(sr: np.ndarray, hr: np.ndarray, value_range: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """(PSNR, SSIM) of ``sr`` against ``hr`` (pixels on ``value_range``) over the HU range and each window."""
    out = {}
    for name, window in WINDOWS.items():
        a, b = _windowed(sr, value_range, window), _windowed(hr, value_range, window)
        out[name] = (float(psnr(a, b, 1.0, BORDER)), float(ssim(a, b, 1.0, BORDER)))
    return out


def pairs(protocol: Protocol, manifest: str, split: str) -> list[tuple[str, Pair]]:
    failures: list[tuple[str, str]] = []
    found = []
    for item in items_from_manifest(manifest, split):
        for image in read_images([item.path], failures):
            found.append((Path(item.path).name, protocol.pair(image, item.key)))
    for path, reason in failures:
        print(f"skipped {path}: {reason}")
    return found


def tv(lr: np.ndarray, weight: float) -> np.ndarray:
    return denoise_tv_chambolle(lr[..., 0], weight=weight)[..., None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ct-sparse-view")
    parser.add_argument("--manifest", default="runs/ct-manifest.csv")
    parser.add_argument("--split", default="test")
    parser.add_argument("--step", type=int, default=None, help="angle step (default: the model's training one)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="the table as a model-card section")
    args = parser.parse_args()
    net = load_model(args.model, "cpu")
    training = net.meta.get("training", {}).get("config", {})
    units = model_units(net.meta)
    value_range = units["value_range"]
    if value_range is None:
        raise SystemExit(f"{args.model} has no value_range in its header: not a CT model")
    protocol = Protocol(scale=args.step or int(training.get("scale", 4)), degradation="ct-sparse-view",
                        degradation_params=dict(training.get("degradation_params") or {}), border=BORDER, **units)
    val = pairs(protocol, args.manifest, "val")
    by_weight = {w: np.mean([psnr(tv(p.lr, w), p.hr, 1.0, BORDER) for _, p in val]) for w in TV_WEIGHTS}
    weight = max(by_weight, key=by_weight.get)
    print(f"TV weight chosen on {len(val)} val slices: {weight} "
          f"({', '.join(f'{w}: {v:.2f} dB' for w, v in by_weight.items())})")
    methods = {"sparse-view FBP": lambda lr: lr, f"TV-denoised FBP (w={weight})": lambda lr: tv(lr, weight),
               model_name(net): lambda lr: upscale_array(net, lr)}
    rows = []
    for name, pair in pairs(protocol, args.manifest, args.split):
        for method, run in methods.items():
            sr = np.clip(run(pair.lr), 0.0, 1.0)
            for window, (p, s) in scores(sr, pair.hr, value_range).items():
                rows.append({"image": name, "method": method, "window": window, "psnr": p, "ssim": s})
    n_images = len({r["image"] for r in rows})
    summary = {}
    print(f"\n{args.split} split, {n_images} slices, every {protocol.scale}th of "
          f"{protocol.degradation_params.get('n_angles', 180)} views; PSNR dB / SSIM")
    print(f"{'method':34s}" + "".join(f"{w:>28s}" for w in WINDOWS))
    for method in methods:
        cells = []
        for window in WINDOWS:
            chosen = [r for r in rows if r["method"] == method and r["window"] == window]
            mean_p, mean_s = np.mean([r["psnr"] for r in chosen]), np.mean([r["ssim"] for r in chosen])
            summary.setdefault(method, {})[window] = {"psnr": float(mean_p), "ssim": float(mean_s)}
            cells.append(f"{mean_p:.2f} / {mean_s:.4f}")
        print(f"{method:34s}" + "".join(f"{c:>28s}" for c in cells))
    if args.markdown:
        head = (f"## {args.split.capitalize()} split in Hounsfield units and reading windows "
                f"(PSNR dB / SSIM, {n_images} slices)\n\n"
                "| method | " + " | ".join(WINDOWS) + " |\n|---|" + "---|" * len(WINDOWS) + "\n")
        body = "".join(f"| {m} | " + " | ".join(f"{v['psnr']:.2f} / {v['ssim']:.4f}" for v in w.values()) + " |\n"
                       for m, w in summary.items())
        note = (f"\nFrom `bench/eval_ct.py --model {model_name(net)} --split {args.split}`: every window's width is "
                f"its peak; the TV weight ({weight}) was chosen on the {len(val)} validation slices.\n")
        args.markdown.write_text(head + body + note)
    if args.json:
        args.json.write_text(json.dumps({"model": model_name(net), "split": args.split, "images": n_images,
                                         "angle_step": protocol.scale, "tv_weight": weight,
                                         "tv_val_psnr": by_weight, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Why a model's detectability differs from bicubic's: the faint discs and the background in the CHO's channels.

    .venv/bin/python bench/observer_channels.py --manifest runs/xray3-manifest.csv --split val \
        --model xray-x4 [--model LABEL=runs/candidate.safetensors ...]

Runs the chest X-ray task of `medsr detectability` (the same discs, positions, noise and ROIs) and, per size x
contrast class and model, prints against bicubic:

- ``signal``: the mean signal (mean signal-present ROI minus mean signal-absent ROI) in the widest Laguerre-Gauss
  channel, the disc's mass as the observer sees it, as a ratio to bicubic's;
- ``background``: the signal-absent ROIs' variance in that channel, as a ratio to bicubic's (above 1: more
  background structure at the disc's scale, e.g. anatomy restored, or texture invented);
- ``SNR``: the Hotelling SNR in the 10 channels, ``sqrt(dv' K^-1 dv)`` from all ROIs (no held-out half: a
  diagnostic, not the benchmark's figure), as a ratio to bicubic's; and the cross-validated CHO AUC minus
  bicubic's (the benchmark's figure, without its interval).

A model whose discs keep their mass (signal >= 1) but whose background grows (background > 1) loses SNR by
about the square root of the latter. Use it on the validation split; `medsr detectability` gives the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from medsr import detectability as det  # noqa: E402
from medsr.data import manifest as mf  # noqa: E402
from medsr.infer.settings import InferenceSettings  # noqa: E402
from medsr.observers import auc, laguerre_gauss_channels, observer_scores  # noqa: E402
from medsr.protocol import Protocol  # noqa: E402


def channel_statistics(parts: list, diameter: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean signal in each channel, the channels' pooled covariance, and the cross-validated CHO AUC."""
    present = np.concatenate([p for p, _, _ in parts])
    absent = np.concatenate([a for _, a, _ in parts])
    groups = np.concatenate([np.full(len(p), i) for p, _, i in parts])
    width = max(diameter, 4.0)
    channels = laguerre_gauss_channels(present.shape[1], width, 10)
    vp, va = present.reshape(len(present), -1) @ channels.T, absent.reshape(len(absent), -1) @ channels.T
    cov = 0.5 * (np.cov(vp, rowvar=False) + np.cov(va, rowvar=False))
    scores = observer_scores(present, absent, groups, "cho", channel_width=width)
    return vp.mean(axis=0) - va.mean(axis=0), cov, auc(*scores)


def main() -> None:
    parser = _bench.parser(__doc__, threads=1)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", action="append", required=True,
                        help="[LABEL=]MODEL: a bundled name or a checkpoint; repeatable")
    args = _bench.parse(parser)
    settings = det.DetectabilitySettings()
    protocol = Protocol(scale=4, degradation="box-noise", seed=settings.seed, max_size=settings.crop)
    # LABEL=MODEL: two checkpoints of one bundled name keep apart
    methods, _, _ = det.build_methods(args.model, [], protocol, inference=InferenceSettings())
    items = list(mf.items_from_manifest(args.manifest, args.split))
    found = det.collect(items, protocol, methods, {}, settings)
    print(f"{len(found.images)} images of the {args.split!r} split of {args.manifest}; ratios to bicubic")
    for name in [n for n in methods if n != det.REFERENCE]:
        print(f"\n{name}\n| class | signal | background | SNR | CHO AUC - bicubic's |\n|---|---|---|---|---|")
        for cls, (size, contrast) in enumerate(settings.classes):
            db, kb, ab = channel_statistics(found.rois[det.REFERENCE][cls], size)
            dm, km, am = channel_statistics(found.rois[name][cls], size)
            snr = np.sqrt(dm @ np.linalg.solve(km, dm) / (db @ np.linalg.solve(kb, db)))
            print(f"| {size:g} px / {contrast:.0%} | {dm[0] / db[0]:.3f} | {km[0, 0] / kb[0, 0]:.3f} | {snr:.3f} "
                  f"| {am - ab:+.3f} |")


if __name__ == "__main__":
    main()

"""How much of a faint disc a sparse-view CT model passes: its response to the disc, along the disc.

    .venv/bin/python bench/ct_disc_response.py --manifest runs/ct-manifest.csv --split val \
        --model ct-sparse-view [--model LABEL=runs/candidate.safetensors ...] [--diameter 3.5 --diameter 6]

Cuts 64 px patches from the split's slices as `medsr train --signal-weight` does (one smooth disc of the given
diameter in HR px and contrast in HU per patch, only where every pixel under it lies in -200..300 HU; the LR with
the disc is the slice's sparse-view reconstruction plus the disc's own sparse-view FBP, the LR without it the
slice's), runs each model on both, and prints per diameter, for the FBP input and each model:

- ``along``: ``sum(response x disc) / sum(disc^2)``, the response (output with the disc minus output without)
  projected on the disc itself: 1 passes the disc's mass and profile, 0 erases it (the non-prewhitening observer
  of `medsr detectability` scores each ROI against the mean response, so what it finds scales with this);
- ``loss``: :func:`medsr.losses.signal_preservation_loss` of that response (pixel by pixel, the disc's support
  grown by 4 px), beside the loss of a response of zero (the disc erased).

The 3, 5, 7 and 10 mm discs of the CT task are 3.3-3.6, 5.5-6.0, 7.8-8.4 and 11-12 px on the validation slices
(0.84-0.90 mm pixels: docs/results/detectability/ct-pixel-spacing.csv). A diagnostic of training, not the
benchmark: `medsr detectability` gives the figures.
"""

from __future__ import annotations

import _bench
import torch

from medsr.data import manifest as mf
from medsr.data.datasets import PatchDataset
from medsr.data.signals import FaintSignals
from medsr.detectability import model_spec
from medsr.losses import signal_preservation_loss
from medsr.models import load_model

#: the HU mapping and degradation of ct-sparse-view (src/medsr/configs/ct-sparse-view.yaml)
VALUE_RANGE, RASTER_OFFSET = (-1024.0, 3071.0), 1024.0


def disc_pairs(paths: list[str], diameter: float, contrast: float, patches: int, seed: int) -> list[torch.Tensor]:
    """``(lr, hr, lr_absent, hr_absent)`` batches of the patches that drew a disc, as training makes them."""
    data = PatchDataset(paths, scale=4, patch_size=64, degradation="ct-sparse-view",
                        degradation_params={"n_angles": 180}, patches_per_image=patches, patch_candidates=2,
                        signal_prob=1.0, signal_pairs=True, augment=False, seed=seed,
                        signals=FaintSignals(diameter=(diameter, diameter), contrast=(contrast, contrast),
                                             count=(1, 1), bright=1.0, absolute=True, within=(-200.0, 300.0)),
                        value_range=VALUE_RANGE, raster_offset=RASTER_OFFSET)
    items = [data[i] for i in range(len(data))]
    batch = [torch.stack([item[k] for item in items]) for k in range(4)]
    kept = (batch[1] - batch[3]).abs().sum(dim=(1, 2, 3)) > 0
    return [part[kept] for part in batch]


def along(response: torch.Tensor, disc: torch.Tensor) -> float:
    """The response projected on the disc, as a fraction of the disc."""
    return float((response * disc).sum() / (disc * disc).sum())


def main() -> None:
    parser = _bench.parser(__doc__, threads=1)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", action="append", required=True,
                        help="[LABEL=]MODEL: a bundled name or a checkpoint; repeatable")
    parser.add_argument("--diameter", action="append", type=float, help="HR px (default: 3.5 and 6)")
    parser.add_argument("--contrast", type=float, default=14.0, help="HU (default: %(default)s)")
    parser.add_argument("--patches", type=int, default=16, help="patches per slice (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=5)
    args = _bench.parse(parser)
    paths = [str(item.path) for item in mf.items_from_manifest(args.manifest, args.split)]
    nets = {}
    for spec in args.model:
        label, model = model_spec(spec)
        nets[label or model] = load_model(model, "cpu").eval()
    print(f"{len(paths)} slices of the {args.split!r} split of {args.manifest}; discs of {args.contrast:g} HU")
    print("\n| disc (px) | method | along the disc | signal loss (erased: ...) |\n|---|---|---|---|")
    for diameter in args.diameter or [3.5, 6.0]:
        lr, hr, lr_absent, hr_absent = disc_pairs(paths, diameter, args.contrast, args.patches, args.seed)
        disc = hr - hr_absent
        erased = float(signal_preservation_loss(hr_absent, hr_absent, hr, hr_absent))
        rows = {"sparse-view FBP": (lr, lr_absent)}
        with torch.no_grad():
            rows.update({name: (net(lr), net(lr_absent)) for name, net in nets.items()})
        for name, (present, absent) in rows.items():
            loss = float(signal_preservation_loss(present, absent, hr, hr_absent))
            print(f"| {diameter:g} ({len(lr)} patches) | {name} | {along(present - absent, disc):.3f} "
                  f"| {loss:.2e} ({erased:.2e}) |")


if __name__ == "__main__":
    main()

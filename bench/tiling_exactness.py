"""How far tiled inference of the bundled CT model is from whole-image inference, in HU, by tile size and budget.

For each 16-bit CT slice of ``../shared/data/ct-slices/tcia-covid19-ny-sbu`` (value = HU + 1024; the model's
input is ``png / 4095``) and each tile side (and each memory budget), ``medsr.infer.upscale_array`` runs the model
(``ct-sparse-view`` unless ``--model``) tiled, and once with one tile covering the whole slice; the table gives the
largest and the mean absolute difference in HU (``x 4095``) over all slices. Also crops of odd sizes (``--crops``,
HxW from the top left of each slice), so that the image size is not a multiple of the U-Net's pooling grid.

    .venv/bin/python bench/tiling_exactness.py [--tiles 128,192,256,384] [--budgets 64M,200M] [--slices 4]
        [--crops 300x280,511x509] [--threads N]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

from medsr.infer import InferenceSettings, get_predictor, upscale_array  # noqa: E402
from medsr.infer.api import tile_for  # noqa: E402
from medsr.infer.settings import parse_memory  # noqa: E402
from medsr.infer.tiling import tile_layout, tile_needs  # noqa: E402
from medsr.models import load_model  # noqa: E402

SLICES = _bench.ROOT.parent / "shared" / "data" / "ct-slices" / "tcia-covid19-ny-sbu"


def _slices(count: int) -> list[np.ndarray]:
    from PIL import Image

    paths = sorted(SLICES.glob("*.png"))[:count]
    if not paths:
        raise SystemExit(f"no CT slices under {SLICES}")
    return [np.asarray(Image.open(p), dtype=np.float32)[..., None] / 4095.0 for p in paths]


def _tiles(model: object, shape: tuple[int, ...], settings: InferenceSettings) -> str:
    """``"2x2 of 220x208"``: the tiles ``upscale_array`` runs for ``shape`` under ``settings``."""
    multiple, context = tile_needs(get_predictor(model, settings))
    side = tile_for(model, shape, settings)
    (th, ys), (tw, xs) = (tile_layout(n, side, settings.overlap, multiple=multiple, context=context)
                          for n in shape[:2])
    return f"{len(ys)}x{len(xs)} of {th}x{tw}"


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--model", default="ct-sparse-view")
    parser.add_argument("--tiles", default="128,192,256,384", help="Comma-separated tile sides (no budget).")
    parser.add_argument("--budgets", default="64M,200M", help="Comma-separated memory budgets at tile 1024.")
    parser.add_argument("--slices", type=int, default=4, help="How many slices (sorted by name), default 4.")
    parser.add_argument("--crops", default="300x280,511x509", help="Comma-separated HxW crops of each slice.")
    args = _bench.parse(parser)
    model = load_model(args.model, "cpu")
    images = _slices(args.slices)
    shapes = [(h, w) for h, w in (tuple(map(int, c.split("x"))) for c in args.crops.split(",") if c)]
    runs = [(f"tile {t}", InferenceSettings(device="cpu", tile=int(t), max_memory=None))
            for t in args.tiles.split(",") if t]
    runs += [(f"budget {b}", InferenceSettings(device="cpu", tile=1024, max_memory=parse_memory(b)))
             for b in args.budgets.split(",") if b]
    whole = InferenceSettings(device="cpu", tile=1024, max_memory=None)
    print(f"model {args.model}, {len(images)} slices of {SLICES.name}; |tiled - whole| in HU")
    print("| image | settings | tiles | max HU | mean HU |\n|---|---|---|---|---|")
    for label, crop in [("512x512", None), *((f"{h}x{w}", (h, w)) for h, w in shapes)]:
        inputs = [im if crop is None else im[: crop[0], : crop[1]] for im in images]
        references = [upscale_array(model, im, whole) for im in inputs]
        for name, settings in runs:
            diffs = [np.abs(upscale_array(model, im, settings) - ref) * 4095.0
                     for im, ref in zip(inputs, references, strict=True)]
            print(f"| {label} | {name} | {_tiles(model, inputs[0].shape, settings)} | "
                  f"{max(float(d.max()) for d in diffs):.4f} | {float(np.mean([d.mean() for d in diffs])):.5f} |",
                  flush=True)


if __name__ == "__main__":
    main()

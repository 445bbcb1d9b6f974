"""Crops of the bundled samples in the web app's Enhance mode: input, bicubic and each model, side by side.

Each row is one bundled sample (``src/medsr/samples``), enhanced 4x exactly as the app's Enhance mode does
(:func:`medsr.app.logic.run_enhance`); the crop is the centre of the image (the mediastinum and heart border on
a frontal chest X-ray, where invented texture would show first). Panels, left to right: the input crop enlarged
by pixel repetition, bicubic, then each model. Usage:

    .venv/bin/python bench/make_enhance_crops.py OUT.png --model xray-x4 [--model swift-srresnet-xray-x4]
        [--crop 96] [--strength 0.5] [--fidelity 0.5 --kernel box]

``--strength S`` adds a panel of the first model kept at S of its change to bicubic, ``--fidelity F`` one of it
moved F of the way to its consistency projection onto the input (``--kernel``: the degradation assumed), as
``medsr upscale --strength`` / ``--consistency project --fidelity`` write them (docs/detectability.md).
"""

from __future__ import annotations

from pathlib import Path

import _bench
import numpy as np
from PIL import Image, ImageDraw

from medsr.app import logic
from medsr.infer.api import project_onto_input
from medsr.io import read_image
from medsr.models import load_model

GAP = 6


def _panel(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.rint(np.clip(pixels[..., 0], 0, 1) * 255)), "L")


def toward_bicubic_of(outcome: logic.Outcome, strength: float) -> np.ndarray:
    """The Enhance outcome's model output kept at ``strength`` of its change to its bicubic panel."""
    return outcome.bicubic + strength * (outcome.sr - outcome.bicubic)


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--crop", type=int, default=96, help="side of the input crop in input pixels")
    parser.add_argument("--strength", type=float, action="append", default=[])
    parser.add_argument("--fidelity", type=float, action="append", default=[])
    parser.add_argument("--kernel", default="box", help="bicubic | box: the degradation the projection assumes")
    args = _bench.parse(parser)

    models = [load_model(name, "cpu") for name in args.model]
    rows = []
    for path in logic.sample_paths():
        image = read_image(path)
        height, width = image.height, image.width
        top, left = (height - args.crop) // 2, (width - args.crop) // 2
        window = (slice(top, top + args.crop), slice(left, left + args.crop))
        outcomes = [logic.run_enhance(image, model, device="cpu") for model in models]
        s = 4
        big = (slice(top * s, (top + args.crop) * s), slice(left * s, (left + args.crop) * s))
        lr = np.repeat(np.repeat(image.pixels[window], s, axis=0), s, axis=1)
        first = outcomes[0]
        extra = [toward_bicubic_of(first, s_) for s_ in args.strength]
        extra += [project_onto_input(first.sr, first.lr, first.scale, args.kernel, f) for f in args.fidelity]
        panels = [lr, first.bicubic[big], *[o.sr[big] for o in outcomes], *[e[big] for e in extra]]
        rows.append((path.name, [_panel(p) for p in panels]))
    labels = ["input (pixels x4)", "bicubic", *args.model, *[f"{args.model[0]} strength {v:g}" for v in args.strength],
              *[f"{args.model[0]} +project {args.kernel} @{v:g}" for v in args.fidelity]]
    side = args.crop * 4
    canvas = Image.new("L", (len(labels) * (side + GAP), 18 + len(rows) * (side + GAP)), 255)
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(labels):
        draw.text((i * (side + GAP) + 4, 3), label, fill=0)
    for r, (_, panels) in enumerate(rows):
        for i, panel in enumerate(panels):
            canvas.paste(panel, (i * (side + GAP), 18 + r * (side + GAP)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    names = ", ".join(p.name for p in logic.sample_paths())
    print(f"wrote {args.out}: {len(rows)} samples x {len(labels)} panels ({names})")


if __name__ == "__main__":
    main()

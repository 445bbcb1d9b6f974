"""Synthetic burned-in annotations drawn onto HR training patches.

Radiographs carry graphics that the imaging software burned into the pixels: side markers ("L", "R" in a
circle or box), text ("PORTABLE", technologist initials, dates), lines and arrows. They are the sharpest
structures in the image: a step of 100-250 grey levels within one pixel, lines one or two pixels wide. At 4x
the low-resolution image keeps only a smear of them, and they hold most of bicubic's error on the test
split (docs/results/xray-x4-bicubic/hard_edges.md), yet a training set of a few hundred radiographs holds
only a few hundred of them. Drawing more, with a real font renderer (FreeType through Pillow, anti-aliased as
the scanner software draws them), teaches the network how such graphics look when sharp, without touching anatomy:
the patch outside the drawn strokes is unchanged.

:func:`burn_in_annotation` is a pure function of the patch and the random generator.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("text", "marker", "line")
_TEXT = string.ascii_uppercase + string.digits
_FONTS: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at ``size`` pixels (cached: loading takes longer than drawing)."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def _draw(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coverage in [0, 1] of one annotation's fill and of its outline (zeros where it has none)."""
    height, width = shape
    fill = Image.new("L", (width, height), 0)
    outline = Image.new("L", (width, height), 0)
    draw_fill, draw_outline = ImageDraw.Draw(fill), ImageDraw.Draw(outline)
    side = min(height, width)
    outlined = rng.random() < 0.5

    def corner(extent_x: int, extent_y: int) -> tuple[int, int]:
        """A top-left corner that keeps at least three quarters of an extent inside the patch."""
        return (int(rng.integers(-extent_x // 4, max(1, width - 3 * extent_x // 4))),
                int(rng.integers(-extent_y // 4, max(1, height - 3 * extent_y // 4))))

    if kind == "text":
        size = int(rng.integers(8, max(9, side // 2)))
        text = "".join(rng.choice(list(_TEXT), size=int(rng.integers(2, 9))))
        bold = int(rng.integers(0, 2)) if size >= 14 else 0
        *_, right, bottom = _font(size).getbbox(text, stroke_width=bold)
        x, y = corner(right, bottom)
        if outlined:
            draw_outline.text((x, y), text, font=_font(size), fill=255, stroke_width=bold + max(1, size // 12))
        draw_fill.text((x, y), text, font=_font(size), fill=255, stroke_width=bold, stroke_fill=255)
    elif kind == "marker":
        size = int(rng.integers(10, max(11, side // 2)))
        pad, stroke = size // 3, int(rng.integers(1, 4))
        x, y = corner(size + 2 * pad, size + 2 * pad)
        x, y = x + pad, y + pad
        box = (x - pad, y - pad // 2, x + size + pad // 2, y + size + pad)
        shape = "ellipse" if rng.random() < 0.5 else "rectangle"
        if outlined:  # on a filled disc or box of the opposite brightness (NIH's circled "L")
            getattr(draw_outline, shape)(box, fill=255)
        getattr(draw_fill, shape)(box, outline=255, width=stroke)
        bold = int(rng.integers(0, 2)) if size >= 14 else 0
        draw_fill.text((x, y), str(rng.choice(["L", "R"])), font=_font(size), fill=255, stroke_width=bold,
                       stroke_fill=255)
    else:
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        x2, y2 = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw_fill.line((x, y, x2, y2), fill=255, width=int(rng.integers(1, 4)))
        if outlined:
            draw_outline.line((x, y, x2, y2), fill=255, width=int(rng.integers(3, 7)))
    return np.asarray(fill, np.float32) / 255.0, np.asarray(outline, np.float32) / 255.0


def burn_in_annotation(hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``hr`` ``(H, W, C)`` float in [0, 1] with one synthetic annotation drawn in: text, a side marker or a line.

    The fill is bright (0.8-1.0) or, less often, dark (0-0.1); half of the text and lines get an outline of the
    opposite brightness, as many systems draw them so they read on any background, and half of the side markers
    sit on a disc or box filled with it (a white ring and "L" on a black disc, as on NIH ChestX-ray14). Pixels
    the strokes do not cover keep their values exactly. Returns a new array of ``hr``'s dtype.
    """
    kind = KINDS[int(rng.choice(len(KINDS), p=[0.5, 0.25, 0.25]))]
    fill, outline = _draw(kind, hr.shape[:2], rng)
    bright = rng.random() < 0.75
    level = float(rng.uniform(0.8, 1.0)) if bright else float(rng.uniform(0.0, 0.1))
    edge = float(rng.uniform(0.0, 0.1)) if bright else float(rng.uniform(0.8, 1.0))
    out = hr.astype(np.float32)
    outline = np.clip(outline - fill, 0.0, 1.0)[..., None]
    fill = fill[..., None]
    out = out * (1.0 - outline) + edge * outline
    out = out * (1.0 - fill) + level * fill
    return out.astype(hr.dtype, copy=False)

"""``ultrasound``: fewer scan lines, same depth sampling.

A B-mode image is assembled from vertical scan lines (A-lines), one per transmit/receive beam across the
transducer. Axial (depth, y) resolution is set by the pulse length and the echo sampling rate, which do
not change; lateral (x) resolution is set by how many lines are fired and how wide each beam is. A faster
or cheaper acquisition fires fewer lines, so the LR image keeps its full height and loses width: a Pillow
bicubic resize along x only, whose kernel (widened by the scale, as Pillow does) stands in for the wider
effective beam. Each column's depth profile is left untouched, and a model upsamples x only.
"""

from __future__ import annotations

import numpy as np

from medsr.degrade.bicubic import pil_resize


def ultrasound(
    hr: np.ndarray, scale: int, *, bit_depth: int = 8, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Downscale an ``(H, W, C)`` image in [0, 1] along x only: ``(H, W // scale, C)`` float32 in [0, 1].

    W must be a multiple of ``scale``. Deterministic (``rng`` unused); 8-bit levels when ``bit_depth == 8``.
    Pillow skips the vertical pass when the height is unchanged, so no pixel is mixed across rows.
    """
    height, width = hr.shape[:2]
    if width % scale:
        raise ValueError(f"image width {width} is not a multiple of scale {scale}")
    return pil_resize(hr, (height, width // scale), "bicubic", bit_depth)

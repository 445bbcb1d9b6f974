"""Difference maps you can read: colour scales with their colour bars, the scored border masked, and a
short text on what PSNR and SSIM say.

Maps are ``uint8 (H, W, 3)`` display images. The border that the scores leave out (``border`` pixels on each
side, :mod:`medsr.protocol`) is painted grey: its errors come from the image edge, not from the model, and
without the mask they show as bright strips that the numbers never counted.
"""

from __future__ import annotations

import numpy as np

from medsr.app.viewer import Legend
from medsr.io.image import MedicalImage

MASK_GREY = (96, 96, 96)
"""Colour of the border that the scores exclude."""

HEAT_STOPS = ("black 0%", "red 50%", "yellow 100%")
"""The CSS colour bar of :data:`HEAT_PALETTE`."""

SIGNED_COLOURS = ((40, 120, 255), (0, 0, 0), (255, 150, 0))
"""Signed maps: blue where the first image is darker, black where equal, orange where it is brighter."""

SIGNED_STOPS = ("rgb(40,120,255) 0%", "black 50%", "rgb(255,150,0) 100%")

SCORES_EXPLAINED = (
    "**Reading the scores.** PSNR compares pixel values: 10 log10(peak² / mean squared error), in dB, "
    "with the peak the image's whole intensity range. SSIM (0 to 1) compares local brightness, contrast and "
    "structure in small windows, closer to what an eye notices. Both only measure how close an output is to "
    "this original after an artificial degradation, not diagnostic value. On the same image, a gain of about "
    "0.3 dB or more over bicubic is real but subtle; 1 dB or more is usually visible at full zoom; SSIM "
    "differences below 0.005 are hard to see. Scores between modalities are not comparable: the peak is the "
    "image's whole range, so a CT whose stored range spans 4,096 to 65,536 values, with soft tissue in a "
    "few hundred of them, scores about 45 dB although its errors are several HU, while an 8-bit X-ray "
    "using its whole range scores about 35 dB. Compare a model with bicubic on the same image, never two "
    "images with each other."
)


MASK_INDEX = 255
"""Palette index of the masked border; indices 0..254 are the colour scale."""


def _palette(stops: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """A ``(256, 3)`` uint8 palette: 255 colours spread evenly through ``stops``, then :data:`MASK_GREY`."""
    at = np.linspace(0.0, 1.0, len(stops))
    levels = np.linspace(0.0, 1.0, MASK_INDEX)
    colours = np.stack([np.interp(levels, at, [c[i] for c in stops]) for i in range(3)], axis=-1)
    return np.vstack([np.rint(colours), MASK_GREY]).astype(np.uint8)


HEAT_PALETTE = _palette(((0, 0, 0), (255, 0, 0), (255, 255, 0)))
"""Absolute errors: black (0), red (half scale), yellow (full scale)."""

SIGNED_PALETTE = _palette(SIGNED_COLOURS)


def mask_border(indices: np.ndarray, border: int) -> np.ndarray:
    """A copy of an ``(H, W)`` index map with ``border`` pixels on each side set to :data:`MASK_INDEX`."""
    out = indices.copy()
    if border > 0:
        out[:border], out[-border:], out[:, :border], out[:, -border:] = (MASK_INDEX,) * 4
    return out


def error_indices(error: np.ndarray, full_scale: float, border: int) -> np.ndarray:
    """An ``(H, W)`` absolute error -> :data:`HEAT_PALETTE` indices (0 = none, 254 = ``full_scale`` or more)."""
    if full_scale <= 0:
        raise ValueError(f"full_scale must be positive, got {full_scale}")
    scaled = np.rint(np.clip(error / full_scale, 0.0, 1.0) * (MASK_INDEX - 1)).astype(np.uint8)
    return mask_border(scaled, border)


def signed_indices(difference: np.ndarray, full_scale: float, border: int) -> np.ndarray:
    """An ``(H, W)`` signed difference -> :data:`SIGNED_PALETTE` indices (0 = -full scale, 127 = 0, 254 = +)."""
    if full_scale <= 0:
        raise ValueError(f"full_scale must be positive, got {full_scale}")
    scaled = (np.clip(difference / full_scale, -1.0, 1.0) + 1.0) / 2.0
    return mask_border(np.rint(scaled * (MASK_INDEX - 1)).astype(np.uint8), border)


def error_map(error: np.ndarray, full_scale: float, border: int) -> np.ndarray:
    """An ``(H, W)`` absolute error -> ``uint8 (H, W, 3)`` heat colours, border masked."""
    return HEAT_PALETTE[error_indices(error, full_scale, border)]


def signed_map(difference: np.ndarray, full_scale: float, border: int) -> np.ndarray:
    """An ``(H, W)`` signed difference -> blue (<= -full_scale), black (0), orange (>= +full_scale)."""
    return SIGNED_PALETTE[signed_indices(difference, full_scale, border)]


def signed_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` per pixel, ``(H, W)`` (mean over channels) of two ``(H, W, C)`` images in [0, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return (a.astype(np.float32) - b.astype(np.float32)).mean(axis=-1)


def unit_of(image: MedicalImage) -> str:
    """The unit of the image's modality values: HU for CT, grey levels for 8-bit, else stored values."""
    if image.modality == "CT":
        return "HU"
    return "grey levels" if image.bit_depth <= 8 else "stored values"


def in_units(fraction: float, image: MedicalImage) -> str:
    """A fraction of the intensity range in the image's units, e.g. ``"41 HU"`` or ``"2.6 grey levels"``."""
    value = fraction * image.data_range
    return f"{value:.2g} {unit_of(image)}" if value < 10 else f"{value:,.0f} {unit_of(image)}"


def heat_legend(full_scale: float, image: MedicalImage, what: str) -> Legend:
    """The colour bar of an :func:`error_map`: 0, half and full scale, in % of the range and in units."""
    ticks = ("0", f"{full_scale / 2:.2%} ({in_units(full_scale / 2, image)})",
             f">= {full_scale:.2%} ({in_units(full_scale, image)})")
    return Legend(HEAT_STOPS, ticks, f"{what}; grey frame: border left out of the scores")


def signed_legend(full_scale: float, image: MedicalImage, what: str) -> Legend:
    """The colour bar of a :func:`signed_map`: -full scale, 0, +full scale."""
    ticks = (f"<= -{full_scale:.2%} (darker)", "0", f">= +{full_scale:.2%} (brighter, {in_units(full_scale, image)})")
    return Legend(SIGNED_STOPS, ticks, f"{what}; grey frame: border left out of the scores")


CONSISTENCY_SIGMAS = 3.0
"""Full scale of the consistency map's colour bar, in units of the input's estimated noise."""


def consistency_layer(sr: np.ndarray, lr: np.ndarray, scale: tuple[int, int], image: MedicalImage,
                      kernel: str = "bicubic") -> tuple[np.ndarray, Legend]:
    """The consistency map of a result (:func:`medsr.consistency.consistency_map`: the output degraded again
    with ``kernel``, minus its input, in units of the input's noise), as :data:`SIGNED_PALETTE` indices on the
    input's grid (mean over channels) with its colour bar: where the model made something its input cannot
    have given."""
    from medsr.consistency import consistency_map

    levels = 255.0 if image.bit_depth == 8 else 65535.0
    sigmas = consistency_map(sr, lr, scale, kernel, levels).mean(axis=-1)
    ticks = (f"<= -{CONSISTENCY_SIGMAS:g} noise sd (degrades darker than the input)", "0",
             f">= +{CONSISTENCY_SIGMAS:g} sd (brighter)")
    legend = Legend(SIGNED_STOPS, ticks, f"consistency: result degraded ({kernel}) minus the input, on the input's "
                                         "grid")
    return signed_indices(sigmas, CONSISTENCY_SIGMAS, 0), legend

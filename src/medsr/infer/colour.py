"""Colour images with grayscale models: the model on luminance, chroma by bicubic, as SR papers treat colour.

A 1-channel model given an RGB image can run on each channel (three forwards) or on luminance only (one).
The eye, and the PSNR/SSIM on Y that SR papers report, care about luminance detail; chroma carries little
high-frequency content, so bicubic upscaling loses little there. Conversion is ITU-R BT.601 full range
(JPEG/JFIF): Y, Cb, Cr in [0, 1] for RGB in [0, 1], Cb and Cr centred on 0.5. Pure functions on
``(H, W, 3)`` float arrays in [0, 1]; the model arrives as a callable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medsr.degrade.bicubic import pil_resize

_KR, _KB = 0.299, 0.114  # BT.601 luma weights of red and blue
_RGB_TO_YCBCR = np.array([
    [_KR, 1 - _KR - _KB, _KB],
    [-0.5 * _KR / (1 - _KB), -0.5 * (1 - _KR - _KB) / (1 - _KB), 0.5],
    [0.5, -0.5 * (1 - _KR - _KB) / (1 - _KR), -0.5 * _KB / (1 - _KR)],
])
_OFFSET = np.array([0.0, 0.5, 0.5])
# Row-vector form, float32: ycbcr = rgb @ _FORWARD + _OFFSET and rgb = ycbcr @ _INVERSE + _INVERSE_BIAS.
_FORWARD = _RGB_TO_YCBCR.T.astype(np.float32)
_INVERSE = np.linalg.inv(_RGB_TO_YCBCR).T.astype(np.float32)
_INVERSE_BIAS = (-_OFFSET @ np.linalg.inv(_RGB_TO_YCBCR).T).astype(np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB in [0, 1] -> ``(..., 3)`` float32 YCbCr (BT.601 full range, chroma centred on 0.5)."""
    out = np.asarray(rgb, dtype=np.float32) @ _FORWARD
    out += _OFFSET.astype(np.float32)
    return out


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: ``(..., 3)`` float32 RGB, not clipped (out-of-gamut values stay)."""
    out = np.asarray(ycbcr, dtype=np.float32) @ _INVERSE
    out += _INVERSE_BIAS
    return out


def luminance(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB -> ``(H, W, 1)`` float32 Y, the input a grayscale model sees in luminance mode."""
    return np.ascontiguousarray(rgb_to_ycbcr(rgb)[..., :1])


def with_chroma(sr_y: np.ndarray, lr_rgb: np.ndarray) -> np.ndarray:
    """RGB from a super-resolved ``(H', W', 1)`` luminance and the chroma of ``lr_rgb`` ``(H, W, 3)``.

    Cb and Cr are resized to ``(H', W')`` with Pillow bicubic (the filter of medsr's bicubic baseline, on its
    float path so chroma is not rounded to 8 bits first); the result is clipped to [0, 1], as the per-channel
    path clips each channel, -> ``(H', W', 3)`` float32.
    """
    height, width = sr_y.shape[:2]
    ycbcr = np.empty((height, width, 3), dtype=np.float32)
    ycbcr[..., :1] = sr_y
    ycbcr[..., 1:] = pil_resize(rgb_to_ycbcr(lr_rgb)[..., 1:], (height, width), "bicubic", bit_depth=32)
    rgb = ycbcr_to_rgb(ycbcr)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def upscale_luminance(rgb: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Super-resolve ``(H, W, 3)`` RGB with a 1-channel ``run`` (``(H, W, 1)`` -> ``(H', W', 1)``) on Y only."""
    return with_chroma(run(luminance(rgb)), rgb)


def runs_on_luminance(channels: int, model_channels: int, colour: str) -> bool:
    """Whether an image of ``channels`` goes through :func:`upscale_luminance`: RGB, a 1-channel model and
    ``colour == "luminance"`` (grey images and 3-channel models are never affected)."""
    return colour == "luminance" and channels == 3 and model_channels == 1

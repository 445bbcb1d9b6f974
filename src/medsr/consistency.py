"""Does an upscaled image agree with its input? The consistency map, and a projection that makes it agree.

An SR output ``y`` of an LR input ``x`` is *consistent* when degrading it again gives the input: ``D(y) == x``
for the degradation ``D`` the LR was made with. For the linear degradations (``bicubic``: Pillow's antialiased
bicubic on float data; ``box``: the mean of each ``scale x scale`` block, an ideal detector pixel) ``D`` is
separable, ``D(y) = Dy @ y @ Dx.T`` per channel, with one small matrix per axis. Then:

* the **consistency map** ``(D(y) - x) / sigma`` is the disagreement on the LR grid in units of the input's
  noise (``sigma`` estimated from the input itself, :func:`input_noise`): values within a few units are noise,
  larger ones mark where the output says something the input does not;
* the **projection** ``y + Dy^+ (x - D(y)) Dx^+.T`` (``^+`` the pseudo-inverse) changes ``y`` as little as
  possible (least squares) so that ``D`` of it equals ``x`` exactly, as the Consistency Enforcing Module of
  Explorable Super-Resolution does (Bahat & Michaeli, CVPR 2020). It restores whatever the model removed
  that the input holds, noise included, and keeps the detail the model added above the LR's Nyquist.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

KERNELS = ("bicubic", "box")


def _check(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown consistency kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")


@lru_cache(maxsize=32)
def axis_operator(size: int, factor: int, kernel: str) -> np.ndarray:
    """The ``(size // factor, size)`` float64 matrix that downscales one axis of ``size`` samples by ``factor``.

    ``bicubic`` is read off Pillow itself (its float path resizing the identity), so it is Pillow's kernel,
    antialiasing and edge handling exactly; ``box`` averages blocks of ``factor`` samples.
    """
    _check(kernel)
    if size % factor:
        raise ValueError(f"size {size} is not a multiple of the factor {factor}")
    out = size // factor
    if factor == 1:
        return np.eye(size)
    if kernel == "box":
        return np.kron(np.eye(out), np.full((1, factor), 1.0 / factor))
    identity = Image.fromarray(np.eye(size, dtype=np.float32), "F")  # row i is e_i
    rows = np.asarray(identity.resize((out, size), Image.Resampling.BICUBIC), dtype=np.float64)
    return rows.T  # resizing each row e_i gives column i of the operator


def downscale(image: np.ndarray, scale: int | tuple[int, int], kernel: str = "bicubic") -> np.ndarray:
    """``D(image)``: an ``(H, W, C)`` float image downscaled by ``scale`` ((sy, sx) or int), float64, unclipped."""
    dy, dx = _operators(image.shape, scale, kernel)
    return np.einsum("ih,hwc,jw->ijc", dy, np.asarray(image, dtype=np.float64), dx, optimize=True)


def _operators(shape: tuple[int, ...], scale: int | tuple[int, int], kernel: str) -> tuple[np.ndarray, np.ndarray]:
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    if len(shape) != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {shape}")
    return axis_operator(shape[0], sy, kernel), axis_operator(shape[1], sx, kernel)


@lru_cache(maxsize=32)
def _pseudo_inverse(size: int, factor: int, kernel: str) -> np.ndarray:
    return np.linalg.pinv(axis_operator(size, factor, kernel))


def project(sr: np.ndarray, lr: np.ndarray, scale: int | tuple[int, int], kernel: str = "bicubic") -> np.ndarray:
    """``sr`` ``(H, W, C)`` moved least in the least-squares sense so that ``downscale(result) == lr``.

    Returns float32 ``(H, W, C)``; the result is not clipped (clipping would break the equality).
    """
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    lr = np.asarray(lr, dtype=np.float64)
    expected = (sr.shape[0] // sy, sr.shape[1] // sx, sr.shape[2])
    if sr.ndim != 3 or lr.shape != expected:
        raise ValueError(f"an LR of shape {lr.shape} does not match an output of shape {sr.shape} at x{scale}")
    residual = lr - downscale(sr, scale, kernel)
    py, px = _pseudo_inverse(sr.shape[0], sy, kernel), _pseudo_inverse(sr.shape[1], sx, kernel)
    correction = np.einsum("hi,ijc,wj->hwc", py, residual, px, optimize=True)
    return (np.asarray(sr, dtype=np.float64) + correction).astype(np.float32)


def input_noise(lr: np.ndarray, levels: float = 255.0) -> np.ndarray:
    """Noise standard deviation of each channel of ``lr`` ``(H, W, C)``, estimated from the image itself.

    Donoho & Johnstone's wavelet estimate (:func:`skimage.restoration.estimate_sigma`), floored at the
    quantisation noise of ``levels`` steps (``1 / (levels * sqrt 12)``), so a clean image does not give zero.
    """
    from skimage.restoration import estimate_sigma

    lr = np.asarray(lr, dtype=np.float64)
    sigmas = np.atleast_1d(estimate_sigma(lr, channel_axis=-1, average_sigmas=False))
    return np.maximum(sigmas, 1.0 / (levels * np.sqrt(12.0)))


def consistency_map(
    sr: np.ndarray, lr: np.ndarray, scale: int | tuple[int, int], kernel: str = "bicubic", levels: float = 255.0
) -> np.ndarray:
    """``(downscale(sr) - lr) / sigma`` ``(h, w, C)`` float32: disagreement in units of the input's noise."""
    lr = np.asarray(lr, dtype=np.float64)
    down = downscale(sr, scale, kernel)
    if down.shape != lr.shape:
        raise ValueError(f"an LR of shape {lr.shape} does not match an output of shape {sr.shape} at x{scale}")
    return ((down - lr) / input_noise(lr, levels)).astype(np.float32)

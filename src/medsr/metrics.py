"""PSNR and SSIM with the conventions written down, one implementation for NumPy arrays and torch tensors.

Convention (used for every score medsr reports):

* Scores are computed on the image's own intensity scale: an 8-bit image at peak 255, a 16-bit image at its
  stored range (65535 for a full-range 16-bit PNG; for DICOM, the span of its value range). medsr's working
  images are floats in [0, 1] mapped linearly from that scale, so scoring them with ``data_range=1.0`` gives
  the same numbers (PSNR and SSIM are both invariant to scaling the images and ``data_range`` together).
* ``data_range`` is always explicit: never a peak taken from the data (such as ``target.max()``).
* Scores are computed per image, then averaged over images by the caller; never the PSNR of an MSE pooled over
  a data set.
* ``border`` pixels are cropped from each edge of both images before scoring (the SR literature crops the
  scale factor; callers pass it).
* PSNR = 10 log10(data_range^2 / MSE), MSE over all pixels and channels. Identical images give ``inf``.
* SSIM follows Wang et al. 2004: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population
  (co)variances, computed only where the window fits inside the image ("valid"), averaged over the map; for
  colour images the mean over channels. This equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=...)``.

Accepted shapes: NumPy ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``; torch ``(H, W)``, ``(C, H, W)`` or
``(N, C, H, W)``. One image gives a ``float``; a batch gives per-image values as a 1-D array (NumPy input) or
a float64 tensor (torch input). Computation is in float64 (float32 on devices without float64 support).
"""

from __future__ import annotations

import numpy as np
import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

ArrayLike = np.ndarray | torch.Tensor


def psnr(pred: ArrayLike, target: ArrayLike, data_range: float = 1.0, border: int = 0) -> float | ArrayLike:
    """Peak signal-to-noise ratio in dB of ``pred`` against ``target``, per image (``inf`` where equal)."""
    x, y, batched, as_numpy = _prepare(pred, target, data_range, border)
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    values = 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> inf
    return _finish(values, batched, as_numpy)


def ssim(pred: ArrayLike, target: ArrayLike, data_range: float = 1.0, border: int = 0) -> float | ArrayLike:
    """Structural similarity (Wang et al. 2004) of ``pred`` and ``target``, per image, mean over channels."""
    x, y, batched, as_numpy = _prepare(pred, target, data_range, border)
    n, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after the border crop, got {w}x{h}"
        )
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    # One filtering pass for the five local moments, stacked along the batch axis.
    moments = _gaussian_filter_valid(torch.cat([x, y, x * x, y * y, x * y]))
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.chunk(5)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    values = ssim_map.reshape(n, c, -1).mean(dim=2).mean(dim=1)
    return _finish(values, batched, as_numpy)


def _gaussian_filter_valid(images: torch.Tensor) -> torch.Tensor:
    """Separable 11-tap Gaussian (sigma 1.5, normalised) over ``(..., H, W)``, only where the window fits."""
    radius = SSIM_WINDOW // 2
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SSIM_SIGMA) ** 2)
    weights = (taps / taps.sum()).tolist()
    # Shifted views accumulated in place: the sums of a conv2d, about 5x faster than a float64 conv2d on CPU.
    out_h, out_w = images.shape[-2] - 2 * radius, images.shape[-1] - 2 * radius
    rows = images[..., 0:out_h, :] * weights[0]
    for k in range(1, SSIM_WINDOW):
        rows.add_(images[..., k:k + out_h, :], alpha=weights[k])
    out = rows[..., 0:out_w] * weights[0]
    for k in range(1, SSIM_WINDOW):
        out.add_(rows[..., k:k + out_w], alpha=weights[k])
    return out


def _prepare(
    pred: ArrayLike, target: ArrayLike, data_range: float, border: int
) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
    """Both inputs as float64 ``(N, C, H, W)`` tensors with the border cropped; whether batched / NumPy."""
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    as_numpy = not isinstance(pred, torch.Tensor)
    x, batched = _as_nchw(pred)
    y, _ = _as_nchw(target)
    if x.shape != y.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    y = y.to(x.device)
    if border:
        h, w = x.shape[-2:]
        if 2 * border >= min(h, w):
            raise ValueError(f"border {border} leaves nothing of a {w}x{h} image")
        x = x[..., border:h - border, border:w - border]
        y = y[..., border:h - border, border:w - border]
    return x, y, batched, as_numpy


def _as_nchw(image: ArrayLike) -> tuple[torch.Tensor, bool]:
    if isinstance(image, torch.Tensor):
        dtype = torch.float32 if image.device.type == "mps" else torch.float64
        t = image.to(dtype)
        if t.ndim == 2:
            return t[None, None], False
        if t.ndim == 3:
            return t[None], False
        if t.ndim == 4:
            return t, True
        raise ValueError(f"expected an (H, W), (C, H, W) or (N, C, H, W) tensor, got {tuple(image.shape)}")
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        return torch.from_numpy(array)[None, None], False
    if array.ndim == 3:
        return torch.from_numpy(array).permute(2, 0, 1)[None], False
    if array.ndim == 4:
        return torch.from_numpy(array).permute(0, 3, 1, 2), True
    raise ValueError(f"expected an (H, W), (H, W, C) or (N, H, W, C) array, got shape {array.shape}")


def _finish(values: torch.Tensor, batched: bool, as_numpy: bool) -> float | ArrayLike:
    if not batched:
        return float(values[0])
    if as_numpy:
        return values.detach().cpu().numpy()
    return values


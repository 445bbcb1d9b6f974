"""``realistic``: a randomly drawn imaging chain per image, as blind super-resolution trains (BSRGAN, Real-ESRGAN).

A real low-resolution radiograph was not made by Pillow's bicubic. Its detector integrated light over each
(larger) pixel (a box kernel), its optics and scintillator blurred it first (a Gaussian point-spread
function), and its read-out added noise: electronic noise is additive Gaussian, quantum (photon-counting)
noise is Poisson, so brighter pixels carry more absolute noise. Many archives then stored it as JPEG. A model
trained on one clean kernel sharpens noise into texture when any of these differ; one trained on a spread of
them learns to undo the family (Zhang et al., BSRGAN, ICCV 2021; Wang et al., Real-ESRGAN, ICCVW 2021).

Per call (per training patch) this draws:

- the downscaling kernel from ``kernels``: ``bicubic`` (Pillow, antialiased), ``box`` (the mean of each
  ``scale x scale`` block: an ideal detector pixel), or ``gaussian`` (a Gaussian PSF of ``blur_sigma`` HR
  pixels, then bicubic);
- the noise: Poisson with probability ``poisson_prob`` (``photons`` counts at full brightness, drawn
  log-uniformly), else Gaussian with ``noise_sigma`` grey levels of an 8-bit image (drawn uniformly);
- JPEG at ``jpeg_quality`` with probability ``jpeg_prob`` (8-bit images only).

A range ``(a, b)`` is drawn from per call; a single number fixes the value, so a fixed test setting is one
call away: ``kernels="box", noise_sigma=2.0`` is the 4x4 detector average plus 2 grey levels of noise that
``medsr evaluate --degradation realistic --param kernels=box --param noise_sigma=2`` scores.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medsr.degrade.bicubic import pil_resize, quantise
from medsr.degrade.blur_noise import gaussian_blur
from medsr.errors import ConfigError

KERNELS = ("bicubic", "box", "gaussian")


def _draw(rng: np.random.Generator, value: float | tuple[float, float], log: bool = False) -> float:
    """A fixed value, or one drawn uniformly (log-uniformly with ``log``) from a ``(low, high)`` range."""
    if isinstance(value, int | float):
        return float(value)
    low, high = (float(v) for v in value)
    if log:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def box_downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Mean of each ``scale x scale`` block of an ``(H, W, C)`` image (H, W multiples of ``scale``)."""
    height, width, channels = image.shape
    blocks = image.reshape(height // scale, scale, width // scale, scale, channels)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an ``(H, W, C)`` 8-bit-level image in [0, 1] as JPEG at ``quality`` and decode it again."""
    as_u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    mode = "RGB" if as_u8.shape[2] == 3 else "L"
    buffer = io.BytesIO()
    Image.fromarray(as_u8 if mode == "RGB" else as_u8[..., 0], mode).save(buffer, "JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0
    return decoded.reshape(image.shape)


def realistic(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    kernels: str = "bicubic,box,gaussian",
    blur_sigma: tuple[float, float] = (0.8, 2.0),
    noise_sigma: tuple[float, float] = (0.0, 3.0),
    poisson_prob: float = 0.25,
    photons: tuple[float, float] = (2000.0, 50000.0),
    jpeg_prob: float = 0.0,
    jpeg_quality: tuple[float, float] = (75.0, 95.0),
) -> np.ndarray:
    """Downscale ``hr`` by ``scale`` through a randomly drawn kernel, noise and (optionally) JPEG.

    ``hr``: ``(H, W, C)`` float in [0, 1], H and W multiples of ``scale``. Returns ``(H // scale, W // scale,
    C)`` float32 in [0, 1], on 8-bit levels when ``bit_depth == 8``. ``kernels`` is a comma-separated subset
    of ``bicubic``, ``box``, ``gaussian``, one drawn uniformly (a name listed twice is drawn twice as often:
    ``bicubic,box,box,gaussian`` draws the detector average half the time). ``noise_sigma`` is in grey levels
    of an 8-bit image (2.0 = 2/255 of full scale).
    """
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"image size {width}x{height} is not a multiple of scale {scale}")
    choices = [k.strip() for k in str(kernels).split(",") if k.strip()]
    unknown = [k for k in choices if k not in KERNELS]
    if not choices or unknown:
        raise ConfigError(f"kernels must name some of {', '.join(KERNELS)} (got {kernels!r})")
    rng = np.random.default_rng() if rng is None else rng
    kernel = choices[int(rng.integers(len(choices)))]
    size = (height // scale, width // scale)
    if kernel == "box":
        lr = box_downscale(hr.astype(np.float32, copy=False), scale)
    elif kernel == "gaussian":
        lr = pil_resize(gaussian_blur(hr, _draw(rng, blur_sigma)), size, "bicubic", 16)
    else:
        lr = pil_resize(hr, size, "bicubic", 16)
    if rng.random() < poisson_prob:
        counts = _draw(rng, photons, log=True)
        lr = rng.poisson(np.clip(lr, 0.0, 1.0) * counts) / counts
    else:
        sigma = _draw(rng, noise_sigma) / 255.0
        if sigma > 0:
            lr = lr + rng.normal(0.0, sigma, size=lr.shape)
    lr = quantise(lr, bit_depth)
    if bit_depth == 8 and rng.random() < jpeg_prob:
        lr = jpeg_roundtrip(lr, round(_draw(rng, jpeg_quality)))
    return lr.astype(np.float32)


def box_noise(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    noise_sigma: float = 2.0,
) -> np.ndarray:
    """``box-noise``: the fixed realistic test setting, a ``scale x scale`` detector average plus Gaussian noise.

    ``noise_sigma`` grey levels of an 8-bit image (default 2). Same shapes as :func:`realistic`.
    """
    return realistic(hr, scale, bit_depth=bit_depth, rng=rng, kernels="box", noise_sigma=float(noise_sigma),
                     poisson_prob=0.0, jpeg_prob=0.0)

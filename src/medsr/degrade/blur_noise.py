"""``bicubic-blur-noise``: optical blur, coarser sampling, then detector noise.

The imaging chain of a digital radiograph (and of most cameras) in three steps: the point-spread function
of the focal spot, scintillator and scatter blurs the image (a Gaussian of ``blur_sigma`` HR pixels); the
detector samples it on a coarser grid (Pillow bicubic downscale); and each LR pixel carries noise. Quantum
noise is Poisson: a pixel that collects ``photons`` counts at full brightness has a relative error of
``1 / sqrt(photons * value)``, so a low-dose exposure (fewer photons) is noisier. Electronic read-out noise
is additive Gaussian with standard deviation ``noise_sigma`` on the [0, 1] scale.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from medsr.degrade.bicubic import pil_resize, quantise
from medsr.errors import ConfigError

NOISE_KINDS = ("gaussian", "poisson", "none")


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the spatial axes of an ``(H, W, C)`` image with a Gaussian of ``sigma`` pixels (reflect edges)."""
    if sigma <= 0:
        return image.astype(np.float32, copy=False)
    return gaussian_filter(image.astype(np.float32, copy=False), sigma=(sigma, sigma, 0), mode="reflect")


def add_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    noise: str = "gaussian",
    noise_sigma: float = 0.01,
    photons: float = 1000.0,
) -> np.ndarray:
    """Add Gaussian read-out noise (std ``noise_sigma``) or Poisson quantum noise (``photons`` counts at 1.0).

    Returns float32 of the same shape, clipped to [0, 1].
    """
    if noise == "gaussian":
        noisy = image + rng.normal(0.0, noise_sigma, size=image.shape)
    elif noise == "poisson":
        if photons <= 0:
            raise ConfigError(f"photons must be positive, got {photons}")
        noisy = rng.poisson(np.clip(image, 0.0, 1.0) * photons) / photons
    elif noise == "none":
        noisy = image
    else:
        raise ConfigError(f"unknown noise {noise!r}; choose one of: {', '.join(NOISE_KINDS)}")
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def blur_noise(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    blur_sigma: float = 1.0,
    noise: str = "gaussian",
    noise_sigma: float = 0.01,
    photons: float = 1000.0,
) -> np.ndarray:
    """Gaussian blur, Pillow bicubic downscale by ``scale``, then Gaussian or Poisson noise.

    ``hr``: ``(H, W, C)`` float in [0, 1], H and W multiples of ``scale``. Returns
    ``(H // scale, W // scale, C)`` float32 in [0, 1], on 8-bit levels when ``bit_depth == 8``.
    ``rng`` seeds the noise (a fresh unseeded generator when None). ``noise`` is ``gaussian``
    (uses ``noise_sigma``), ``poisson`` (uses ``photons``) or ``none``.
    """
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"image size {width}x{height} is not a multiple of scale {scale}")
    rng = np.random.default_rng() if rng is None else rng
    blurred = gaussian_blur(hr, blur_sigma)
    lr = pil_resize(blurred, (height // scale, width // scale), "bicubic", bit_depth)
    return quantise(add_noise(lr, rng, noise, noise_sigma, photons), bit_depth)

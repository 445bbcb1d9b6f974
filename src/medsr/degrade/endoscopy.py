"""``endoscopy``: a small, soft camera whose frames are JPEG-compressed before anyone sees them.

Scope tips and capsule cameras use tiny lenses (defocus and lens blur: a Gaussian of ``blur_sigma`` HR
pixels) and small sensors (Pillow bicubic downscale), and compress every frame to fit the video link or the
capsule's radio budget (baseline JPEG at ``quality``, Pillow's default 4:2:0 chroma subsampling for colour).
The 8x8 block artefacts and ringing this adds are what a model must learn to remove along with the blur.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medsr.degrade.bicubic import pil_resize, quantise
from medsr.degrade.blur_noise import gaussian_blur
from medsr.errors import ConfigError


def jpeg_roundtrip(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """Encode an ``(H, W, C)`` image in [0, 1] (C = 1 or 3) as JPEG at ``quality`` in memory and decode it.

    JPEG holds 8 bits per sample, so the image is quantised to 8-bit first. Returns float32 in [0, 1],
    same shape.
    """
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality must be in 1..100, got {quality}")
    channels = image.shape[2]
    if channels not in (1, 3):
        raise ConfigError(f"JPEG needs 1 or 3 channels, got {channels}")
    as_u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(as_u8[..., 0], "L") if channels == 1 else Image.fromarray(as_u8, "RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(buffer)).astype(np.float32) / 255.0
    return decoded.reshape(image.shape)


def endoscopy(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    blur_sigma: float = 0.8,
    quality: int = 75,
) -> np.ndarray:
    """Gaussian blur, Pillow bicubic downscale by ``scale``, then a JPEG round trip at ``quality``.

    ``hr``: ``(H, W, C)`` float in [0, 1], C = 1 or 3, H and W multiples of ``scale``. Returns
    ``(H // scale, W // scale, C)`` float32 in [0, 1]. Deterministic (``rng`` unused). With ``bit_depth > 8``
    the JPEG error (decoded minus its 8-bit input) is added to the float LR, so the compression artefacts are
    imposed without throwing away the finer levels of 16-bit data.
    """
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"image size {width}x{height} is not a multiple of scale {scale}")
    lr = pil_resize(gaussian_blur(hr, blur_sigma), (height // scale, width // scale), "bicubic", bit_depth)
    if bit_depth == 8:
        return jpeg_roundtrip(lr, quality)
    as_8bit = quantise(lr, 8)
    return quantise(lr + (jpeg_roundtrip(as_8bit, quality) - as_8bit), bit_depth)

"""Bicubic downscaling exactly as Pillow does it: the LR inputs of the SRGAN literature.

Pillow's ``Image.resize(..., BICUBIC)`` widens its kernel by the scale factor (antialiasing), so it is
not the same as ``torch.nn.functional.interpolate(mode="bicubic")``. 8-bit data go through Pillow's own
8-bit path, so the pixels equal Pillow's output exactly; deeper data go through its 32-bit float path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def pil_resize(
    image: np.ndarray, size: tuple[int, int], method: str = "bicubic", bit_depth: int = 8
) -> np.ndarray:
    """Resize an ``(H, W, C)`` float image in [0, 1] to ``size = (height, width)`` with a Pillow filter.

    With ``bit_depth == 8`` the image is quantised to uint8 and resized by Pillow's 8-bit code (what the
    original projects did); otherwise each channel is resized in float32 and clipped to [0, 1].
    """
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    height, width = size
    resample = _FILTERS[method]
    if bit_depth == 8:
        as_u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        if as_u8.shape[2] == 3:
            out = np.asarray(Image.fromarray(as_u8, "RGB").resize((width, height), resample))
        else:
            out = np.stack(
                [np.asarray(Image.fromarray(as_u8[..., c], "L").resize((width, height), resample))
                 for c in range(as_u8.shape[2])],
                axis=-1,
            )
        return out.astype(np.float32) / 255.0
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F").resize(
            (width, height), resample))
        for c in range(image.shape[2])
    ]
    out = np.stack(channels, axis=-1).astype(np.float32, copy=False)
    return np.clip(out, 0.0, 1.0, out=out)


def bicubic(hr: np.ndarray, scale: int, bit_depth: int = 8) -> np.ndarray:
    """Downscale an ``(H, W, C)`` image in [0, 1] by ``scale`` with Pillow bicubic.

    H and W must be multiples of ``scale`` (crop first with :func:`crop_to_multiple`).
    """
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"image size {width}x{height} is not a multiple of scale {scale}")
    return pil_resize(hr, (height // scale, width // scale), "bicubic", bit_depth)


def crop_to_multiple(image: np.ndarray, multiple: int | tuple[int, int]) -> np.ndarray:
    """Centre-crop the spatial axes of ``(..., H, W, C)`` to multiples of ``multiple`` ((my, mx) or int)."""
    my, mx = (multiple, multiple) if isinstance(multiple, int) else multiple
    height, width = image.shape[-3], image.shape[-2]
    new_h, new_w = height - height % my, width - width % mx
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return image[..., top:top + new_h, left:left + new_w, :]


def quantise(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Clip to [0, 1] and, for ``bit_depth == 8``, round to the 256 levels an 8-bit file can hold.

    Deeper data stay float: the LR of a 16-bit image is compared with a float model output anyway.
    """
    clipped = np.clip(image, 0.0, 1.0)
    if bit_depth == 8:
        clipped = np.rint(clipped * 255.0) / 255.0
    return clipped.astype(np.float32)


def bicubic_degradation(
    hr: np.ndarray, scale: int, *, bit_depth: int = 8, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The ``bicubic`` degradation model (registry signature): :func:`bicubic`, deterministic, ``rng`` unused.

    ``(H, W, C)`` float in [0, 1] -> ``(H // scale, W // scale, C)`` float32 in [0, 1].
    """
    return bicubic(hr, scale, bit_depth)

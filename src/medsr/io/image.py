"""The in-memory image that every part of medsr passes around."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

DEFAULT_MAX_PIXELS = 50_000_000
"""Images larger than this are refused (decompression-bomb guard); override per call."""


def empty_reason(shape: tuple[int, ...]) -> str | None:
    """``"image has no pixels (5x0)"`` (width x height) for an image shape ``(H, W, C)`` or ``(F, H, W, C)`` that
    holds no pixel, else None. Readers and writers refuse such images: no command reads or writes one."""
    if all(shape):
        return None
    height, width = shape[-3:-1] if len(shape) >= 3 else (0, 0)
    frames = f", {shape[0]} frames" if len(shape) == 4 else ""
    return f"image has no pixels ({width}x{height}{frames})"


def modality_values(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Working pixels in [0, 1] -> modality values (HU for CT), float64, by the linear ``value_range``."""
    low, high = value_range
    return low + np.asarray(pixels).astype(np.float64) * (high - low)


@dataclass
class MedicalImage:
    """Pixels as float32 in [0, 1] plus what is needed to write them back exactly.

    ``pixels`` has shape ``(H, W, C)`` for one frame or ``(F, H, W, C)`` for a multi-frame file,
    with C = 1 (grayscale) or 3 (RGB). The working image is always "brighter = larger value":
    MONOCHROME1 DICOMs are inverted on read and restored on write.

    The mapping to stored values is linear,
    ``value = value_range[0] + pixels * (value_range[1] - value_range[0])``, where ``value`` is the modality
    value (for DICOM: after RescaleSlope/RescaleIntercept, e.g. HU for CT; for PNG/TIFF: the stored integer).
    For MONOCHROME1 the range is reversed (``value_range[0] > value_range[1]``): that is the inversion.
    """

    pixels: np.ndarray
    format: str  # "png" | "tiff" | "jpeg" | "dicom"
    bit_depth: int  # bits per sample as stored (8, 16; for DICOM: BitsStored)
    value_range: tuple[float, float]  # modality values that map to 0.0 and 1.0
    photometric: str = "MONOCHROME2"  # as stored: MONOCHROME1, MONOCHROME2, RGB, ...
    path: str | None = None
    modality: str | None = None  # DICOM Modality (CT, CR, DX, MR, US, ...) when known
    pixel_spacing: tuple[float, float] | None = None  # (row, column) mm, when known
    dataset: Any = None  # the pydicom Dataset (without pixel data needed for re-encoding) for DICOM
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific details a writer needs

    @property
    def is_multiframe(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[-1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[-3])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[-2])

    @property
    def data_range(self) -> float:
        """Peak used by metrics on this image's own scale (255 for 8-bit, 65535 for 16-bit, ...)."""
        return abs(float(self.value_range[1] - self.value_range[0]))

    def with_pixels(self, pixels: np.ndarray, **changes: Any) -> MedicalImage:
        """A copy with new pixels (e.g. after super-resolution), keeping how to write them back."""
        return replace(self, pixels=np.asarray(pixels, dtype=np.float32), **changes)

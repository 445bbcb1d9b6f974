"""Display windows for the web app: which (width, level) pairs to offer for an image, and which to open in.

A window is ``(width, level)`` in modality values (HU for CT, stored values for MR/CR, grey levels for PNG),
applied by :func:`medsr.app.logic.to_display` to every panel at once. The header's own window
(WindowCenter/WindowWidth) is what the acquiring site chose for reading, so it is the default where present.
"""

from __future__ import annotations

import numpy as np

from medsr.app.logic import WINDOW_PRESETS, default_window
from medsr.io.image import MedicalImage, modality_values

Window = tuple[float, float]

CT_PRESETS: dict[str, Window] = {**WINDOW_PRESETS, "Brain": (80.0, 40.0)}
"""CT reading windows (width, level) in HU: lung, mediastinum, bone, brain."""

FULL_RANGE = "Full range"
AUTO = "Auto (0.5-99.5 % of pixels)"
CUSTOM = "Custom"


def full_range_window(image: MedicalImage) -> Window:
    """The window that maps the image's whole value range onto black..white (the working image as is)."""
    low, high = sorted(float(v) for v in image.value_range)
    return high - low + 1.0, (low + high + 1.0) / 2


def auto_window(image: MedicalImage, low_pct: float = 0.5, high_pct: float = 99.5) -> Window:
    """A window spanning the ``low_pct``..``high_pct`` percentiles of the image's modality values.

    An MR or a 12-bit CR without a header window uses a small part of its stored range, so "full range"
    shows it grey and flat; the percentiles of its own pixels show its contrast.
    """
    values = modality_values(image.pixels, image.value_range)
    low, high = np.percentile(values, [low_pct, high_pct]) if values.size else (0.0, 1.0)
    return round(float(high - low) + 1.0, 1), round(float(low + high + 1.0) / 2, 1)


def label(name: str, window: Window) -> str:
    """``"Lung (W 1500 / L -600)"``: how a window is offered in the picker."""
    return f"{name} (W {window[0]:g} / L {window[1]:g})"


def window_options(image: MedicalImage) -> tuple[dict[str, Window | None], str]:
    """``label -> window`` to offer for a grey image, and the label to open in.

    Order: the DICOM header's window (the default where present), CT presets (lung, mediastinum, bone,
    brain) for CT, full range, auto (percentiles), custom (``None``: the W/L fields decide). Without a header
    window a CT opens in mediastinum, another DICOM (MR, CR, ...) in auto, and a PNG/TIFF in full range.
    """
    options: dict[str, Window | None] = {}
    header = default_window(image)
    if header is not None:
        options[label("DICOM header", header)] = header
    if image.modality == "CT":
        options.update({label(name, window): window for name, window in CT_PRESETS.items()})
    options[FULL_RANGE] = full_range_window(image)
    options[AUTO] = auto_window(image)
    options[CUSTOM] = None
    if header is not None:
        default = label("DICOM header", header)
    elif image.modality == "CT":
        default = label("Mediastinum", CT_PRESETS["Mediastinum"])
    elif image.format == "dicom":
        default = AUTO
    else:
        default = FULL_RANGE
    return options, default


def width_limits(image: MedicalImage) -> tuple[float, float]:
    """Bounds of the W/L control's width: 1 to twice the value range (wide enough to flatten any image)."""
    low, high = sorted(float(v) for v in image.value_range)
    return 1.0, max(2.0 * (high - low), 2.0)


def level_limits(image: MedicalImage) -> tuple[float, float]:
    """Bounds of the W/L control's level: the value range, widened by half on each side."""
    low, high = sorted(float(v) for v in image.value_range)
    span = max(high - low, 1.0)
    return low - span / 2, high + span / 2

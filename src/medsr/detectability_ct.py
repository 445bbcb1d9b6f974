"""CT low-contrast detectability, as the MITA-LCD phantom and the FDA DIDSR LCD-CT toolbox score it.

The task of :mod:`medsr.detectability` on CT slices in Hounsfield units: discs of 3-10 mm (each slice's
PixelSpacing turns millimetres into pixels) adding 3-14 HU, placed only inside the patient's body (never in
the air around it) and in soft tissue, on the HR slices of a split; signal-present and signal-absent slices
both go through the sparse-view degradation of ``medsr evaluate`` for the ``ct-sparse-view`` model. The
reference is the degraded image itself, the **sparse-view FBP** input a radiologist would otherwise read; a
classical denoiser of it (total variation, scikit-image's Chambolle solver) and the models are compared with it.

Pure functions on arrays here; the task itself runs in :func:`medsr.detectability.run_detectability`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsr.errors import ConfigError
from medsr.protocol import Method

REFERENCE = "sparse-view FBP"
SIZES_MM = (3.0, 5.0, 7.0, 10.0)
CONTRASTS_HU = (3.0, 5.0, 7.0, 10.0, 14.0)
DEGRADATION = "ct-sparse-view"
DEFAULT_MODEL = "ct-sparse-view"
GRID_SPACING = 56
"""Pixels between signal positions: the ROI of a 10 mm disc at ``FINEST_SPACING`` (50 px) and a little jitter."""
FINEST_SPACING = 0.6
"""mm per pixel of the finest slice the task sizes ROIs for (the test slices: 0.62 to 0.98 mm)."""
REALISATIONS = 24
"""Signal placements per slice (the grid shifted each time): a split holds few slices."""
BODY_HU = -500.0
"""HU above which a pixel may belong to the body (the largest such region, holes filled)."""
TISSUE_HU = (-200.0, 300.0)
"""Soft tissue and fat: every pixel of a signal's ROI lies in this range (no lung, bone or air in it)."""
ANISOTROPY = 0.02
"""Pixels whose row and column spacing differ by more than this fraction are refused (a disc would be an ellipse)."""


def mm_to_pixels(length_mm: float, spacing_mm: float) -> float:
    """``length_mm`` in pixels of ``spacing_mm`` millimetres (DICOM PixelSpacing)."""
    if spacing_mm <= 0:
        raise ValueError(f"pixel spacing must be positive, not {spacing_mm:g} mm")
    return float(length_mm) / float(spacing_mm)


def image_spacing(
    spacing: Sequence[float] | None, name: str, fallback: float | None = None,
    table: Mapping[str, float] | None = None,
) -> tuple[float, str]:
    """``(mm per pixel, where it came from)`` of an image whose header holds ``spacing`` ((row, column) mm or
    None), named ``name``: the header's, else ``table[name]``, else ``fallback``; ValueError (one line) if
    none is known or the pixels are not square."""
    if spacing is not None:
        row, column = (float(v) for v in spacing)
        if row <= 0 or column <= 0:
            raise ValueError(f"PixelSpacing {row:g}\\{column:g} mm is not positive")
        if abs(row - column) > ANISOTROPY * max(row, column):
            raise ValueError(f"pixels are not square (PixelSpacing {row:g}\\{column:g} mm): a disc would be an ellipse")
        return 0.5 * (row + column), "header"
    if table and name in table:
        return float(table[name]), "table"
    if fallback is not None:
        return float(fallback), "default"
    raise ValueError("no PixelSpacing in the file: give --pixel-spacing MM (or a CSV of file,pixel_spacing)")


def read_spacing_table(path: str | Path) -> dict[str, float]:
    """``{file name: mm}`` from a CSV with columns ``file`` and ``pixel_spacing`` (file names without folders)."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows or not {"file", "pixel_spacing"} <= set(rows[0]):
        raise ConfigError(f"{path}: expected a CSV with columns file,pixel_spacing")
    table = {}
    for line, row in enumerate(rows, start=2):
        try:
            value = float(row["pixel_spacing"])
        except (TypeError, ValueError):
            raise ConfigError(f"{path}, line {line}: pixel_spacing {row['pixel_spacing']!r} is not a number") from None
        if not value > 0:
            raise ConfigError(f"{path}, line {line}: pixel_spacing must be positive, not {value:g}")
        table[Path(row["file"]).name] = value
    return table


def body_mask(hu: np.ndarray, threshold: float = -500.0) -> np.ndarray:
    """``(H, W)`` bool: the patient's body, the largest connected region above ``threshold`` HU with its holes
    (lungs, bowel gas) filled; the table and the air around are outside."""
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(hu) > threshold)
    if count == 0:
        return np.zeros(np.shape(hu), dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def signal_mask(
    hu: np.ndarray, roi: int, *, body_hu: float = BODY_HU, tissue_hu: tuple[float, float] = TISSUE_HU,
) -> np.ndarray:
    """``(H, W)`` bool: where a signal may be centred: its ``roi`` x ``roi`` square (the ROI, centred on pixel
    ``roi // 2``) lies wholly in the body and in ``tissue_hu`` (soft tissue and fat: no lung, bone, air or
    organ edge against them in it, as the uniform background of an LCD phantom has none). The same mask for
    every signal class, so the class a position gets does not depend on the anatomy there."""
    hu = np.asarray(hu, dtype=np.float64)
    low, high = tissue_hu
    return _square_within(body_mask(hu, body_hu) & (hu >= low) & (hu <= high), roi)


def _square_within(mask: np.ndarray, size: int) -> np.ndarray:
    """Whether the ``size`` x ``size`` square with its pixel ``size // 2`` on each pixel lies wholly in ``mask``
    (outside the image counts as outside), by a summed-area table."""
    height, width = mask.shape
    half = size // 2
    padded = np.pad(mask.astype(np.int64), ((half, size - half), (half, size - half)))
    table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    total = (table[size:size + height, size:size + width] - table[:height, size:size + width]
             - table[size:size + height, :width] + table[:height, :width])
    return total == size * size


def fbp_input() -> Method:
    """The reference method: the degraded (sparse-view FBP) image itself, unchanged."""
    return lambda lr, size: np.asarray(lr, dtype=np.float32)


def tv_denoised(weight: float) -> Method:
    """The FBP input denoised by total variation (``skimage.restoration.denoise_tv_chambolle`` on the [0, 1]
    working image, per channel), clipped to [0, 1]."""
    if not weight > 0:
        raise ConfigError(f"the TV weight must be positive, not {weight:g}")

    def method(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        lr = np.asarray(lr, dtype=np.float64)
        out = np.stack([denoise_tv_chambolle(lr[..., c], weight=weight) for c in range(lr.shape[2])], axis=-1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    return method


def tv_name(weight: float) -> str:
    """The method name of :func:`tv_denoised` at ``weight``."""
    return f"TV-denoised FBP w={weight:g}"


def leading_methods(tv_weights: Sequence[float] = ()) -> dict[str, tuple[Method, str]]:
    """The CT task's own methods with their descriptions: the FBP input (the reference), then each TV weight."""
    methods = {REFERENCE: (fbp_input(), "the sparse-view FBP image itself (the degraded input; the reference)")}
    for weight in dict.fromkeys(tv_weights):
        methods[tv_name(weight)] = (tv_denoised(weight), f"the FBP input denoised by total variation "
                                    f"(skimage denoise_tv_chambolle, weight {weight:g} on the [0, 1] image)")
    return methods


def task_units(models: Sequence[str], device: str = "cpu") -> dict[str, Any]:
    """``value_range`` and ``raster_offset`` of the CT task: the first model's that works in HU, else those of
    the bundled ``ct-sparse-view`` (so signals and the degradation see HU without a model)."""
    from medsr.intensity import model_units
    from medsr.models import load_model

    for model in [*models, DEFAULT_MODEL]:
        units = model_units(getattr(load_model(model, device), "meta", None))
        if units["value_range"] is not None:
            return units
    raise ConfigError(f"no model gives the CT task's HU mapping (not even {DEFAULT_MODEL})")


def parse_pixel_spacing(text: str | None) -> tuple[float | None, dict[str, float]]:
    """``--pixel-spacing``: ``(mm, {})`` for a number, ``(None, table)`` for a CSV of file,pixel_spacing."""
    if text is None:
        return None, {}
    try:
        value = float(text)
    except ValueError:
        return None, read_spacing_table(text)
    if not value > 0:
        raise ConfigError(f"--pixel-spacing {text!r}: give a positive number of mm or a CSV of file,pixel_spacing")
    return value, {}


def is_ct_model(model: str, device: str = "cpu") -> bool:
    """Whether a model (bundled name or checkpoint) is a CT model: its header's modality, else its degradation."""
    from medsr.models import load_model

    meta = getattr(load_model(model, device), "meta", None) or {}
    config = (meta.get("training") or {}).get("config") or {}
    return str(meta.get("modality") or config.get("modality") or "").upper() == "CT" or \
        str(config.get("degradation", "")).startswith("ct-")

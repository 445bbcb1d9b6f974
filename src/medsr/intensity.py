"""Fixed modality-value ranges for models that work in physical units (CT in Hounsfield units).

An X-ray model sees each image on its own scale ([0, 1] spans the file's stored range). A CT model must not:
-1000 HU is air in every scanner's file, whatever its RescaleSlope/Intercept or bit depth. Such a model is
trained and run on one fixed mapping, ``value_range = (HU at 0, HU at 1)`` (e.g. ``(-1024, 3071)``), stored
in its header; :func:`to_value_range` puts any image on it (clipping values outside) and keeps the image's
writer able to write the result back in the same units (DICOM keeps its slope and intercept).

PNG/TIFF carry no units: a 16-bit raster is read as ``HU + raster_offset`` (1024 for the common
"HU + 1024" export, the convention of ``../shared/data/ct-slices``). 8-bit rasters hold display values,
not HU, and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medsr.errors import ConfigError
from medsr.io.image import MedicalImage, modality_values

SOURCE_RANGE = "medsr_source_value_range"
"""Key of ``MedicalImage.extra`` under which :func:`for_model` keeps the file's own ``value_range``."""


def remap(image: MedicalImage, value_range: Sequence[float]) -> MedicalImage:
    """``image`` with pixels re-expressed on ``value_range`` (same units as its own ``value_range``), clipped."""
    low, high = (float(v) for v in value_range)
    values = modality_values(image.pixels, image.value_range)
    return image.with_pixels(np.clip((values - low) / (high - low), 0.0, 1.0), value_range=(low, high))


def to_value_range(
    image: MedicalImage, value_range: Sequence[float], raster_offset: float = 0.0
) -> MedicalImage:
    """``image`` re-expressed so that pixel 0 is ``value_range[0]`` and 1 is ``value_range[1]`` (clipped).

    DICOM: modality values are what the file's rescale gives. PNG/TIFF: modality value = stored value -
    ``raster_offset``, and the returned ``value_range`` is in stored units (``+ raster_offset``). A model's
    output goes back on the file's own range (:func:`for_model` then :func:`restore`) before it is written:
    PNG/TIFF writers store pixels on the full integer range. ConfigError for an 8-bit raster, a range
    that does not increase, or an image with fewer than :data:`MIN_INSIDE` of its values within the range (a
    wrong rescale: the model would see one constant value).
    """
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ConfigError(f"value range {low:g}..{high:g} must increase")
    offset = 0.0 if image.format == "dicom" else float(raster_offset)
    if image.format != "dicom" and image.bit_depth <= 8:
        raise ConfigError(
            f"a model that works in modality values ({low:g}..{high:g}) needs a DICOM or a 16-bit PNG/TIFF "
            f"of value + {offset:g}, not an {image.bit_depth}-bit {image.format.upper()}"
        )
    _check_overlap(image, low + offset, high + offset, offset)
    return remap(image, (low + offset, high + offset))


MIN_INSIDE = 0.01
"""The smallest share of an image's pixels that must lie within a model's fixed value range (see
:func:`to_value_range`): below it the model would see a constant image and return a blank one."""


def _check_overlap(image: MedicalImage, low: float, high: float, offset: float) -> None:
    """ConfigError when fewer than :data:`MIN_INSIDE` of ``image``'s values lie within ``low..high``."""
    values = modality_values(image.pixels, image.value_range)
    inside = float(np.count_nonzero((values >= low) & (values <= high))) / max(values.size, 1)
    if inside < MIN_INSIDE:
        vmin, vmax = float(values.min()) - offset, float(values.max()) - offset
        raise ConfigError(
            f"its values {vmin:g}..{vmax:g} lie outside the model's range {low - offset:g}..{high - offset:g} "
            f"({inside:.1%} of pixels inside), so the result would be blank; check RescaleSlope/RescaleIntercept "
            "or choose another model"
        )


def restore(result: MedicalImage) -> MedicalImage:
    """A model's output back on the value range its input file had (recorded by :func:`for_model`),
    ready to be written; images that were not re-mapped come back unchanged."""
    original = result.extra.get(SOURCE_RANGE)
    if original is None or tuple(result.value_range) == tuple(original):
        return result
    extra = {k: v for k, v in result.extra.items() if k != SOURCE_RANGE}
    restored = remap(result, original)
    restored.extra = extra
    return restored


def clip_to_source(result: MedicalImage, source: MedicalImage) -> MedicalImage:
    """``result``, back on ``source``'s value range (:func:`restore`), clipped per frame and per channel to
    ``source``'s own [min, max]: the clipping ``clip_to_input`` promises, in the file's units (HU), also where
    the model's fixed range cut the input (values below -1024 HU never come back as -1024). In place."""
    if tuple(result.value_range) != tuple(source.value_range):
        raise ValueError("clip_to_source needs the result on the source's value range (restore it first)")
    low = source.pixels.min(axis=(-3, -2), keepdims=True)
    high = source.pixels.max(axis=(-3, -2), keepdims=True)
    np.clip(result.pixels, low, high, out=result.pixels)
    return result


def model_value_range(meta: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The fixed ``(low, high)`` a model's header asks for, or None (the image's own range)."""
    found = (meta or {}).get("value_range")
    return None if found is None else (float(found[0]), float(found[1]))


def model_units(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """``value_range`` and ``raster_offset`` of a model's header, as :class:`medsr.protocol.Protocol` takes them
    (None and 0 for models that work on each image's own range)."""
    return {"value_range": model_value_range(meta), "raster_offset": float((meta or {}).get("raster_offset", 0.0))}


def for_model(image: MedicalImage, meta: Mapping[str, Any] | None) -> MedicalImage:
    """``image`` on the value range of the model whose header is ``meta`` (unchanged for most models).

    The file's own range is kept in ``extra`` so that :func:`restore` can put the output back on it.
    """
    units = model_units(meta)
    if units["value_range"] is None:
        return image
    mapped = to_value_range(image, units["value_range"], units["raster_offset"])
    mapped.extra = {**image.extra, SOURCE_RANGE: tuple(image.value_range)}
    return mapped

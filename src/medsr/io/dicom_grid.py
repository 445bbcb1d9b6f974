"""Moving a DICOM header to a super-resolved pixel grid: the same field of view, ``sy`` x ``sx`` times the pixels.

Everything stated in pixels or per pixel changes: pixel spacings (top level and every functional group), the
position of the first pixel's centre, ultrasound regions, the pixel aspect ratio and overlay planes. The new grid
is the one ``torch`` interpolation with ``align_corners=False`` gives (medsr's models): new pixel ``i`` is
centred on old pixel coordinate ``(i + 0.5) / s - 0.5``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.valuerep import DS


def move_to_grid(ds: Dataset, sy: float, sx: float) -> None:
    """Rewrite ``ds`` (a copy of the source header) in place for pixels ``sy`` (rows) x ``sx`` (columns) finer."""
    _shift_positions(ds, sy, sx)  # needs the old spacings: first
    for item in _measures(ds):
        _scale_spacing(item, sy, sx)
    _scale_regions(ds, sy, sx)
    _scale_overlays(ds, sy, sx)
    if "PixelAspectRatio" in ds and (sy != sx):
        vertical, horizontal = (float(v) for v in ds.PixelAspectRatio)
        ratio = (vertical / sy) / (horizontal / sx)
        ds.PixelAspectRatio = [round(ratio * 1000), 1000]


def _first(item: Dataset | None, sequence: str) -> Dataset | None:
    items = item.get(sequence) if item is not None else None
    return items[0] if items else None


def _groups(ds: Dataset) -> tuple[Dataset | None, list[Dataset]]:
    """(the shared functional group or None, the per-frame functional groups) of an enhanced multi-frame file."""
    return _first(ds, "SharedFunctionalGroupsSequence"), list(ds.get("PerFrameFunctionalGroupsSequence", []))


def _measures(ds: Dataset) -> Iterator[Dataset]:
    """Every item that may hold a pixel spacing: the top level and each functional group's Pixel Measures."""
    shared, per_frame = _groups(ds)
    yield ds
    for group in [shared, *per_frame]:
        yield from (group or Dataset()).get("PixelMeasuresSequence", [])


def _scale_spacing(item: Dataset, sy: float, sx: float) -> None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in item and item[keyword].VM == 2:
            row, col = (float(v) for v in item[keyword].value)
            item[keyword].value = [DS(row / sy, auto_format=True), DS(col / sx, auto_format=True)]


def _frame_geometry(ds: Dataset) -> Iterator[tuple[Dataset, Dataset | None, Dataset | None]]:
    """(item holding ImagePositionPatient, item holding its ImageOrientationPatient, item holding its spacing)."""
    shared, per_frame = _groups(ds)
    if shared is None and not per_frame:
        yield ds, ds, ds
        return
    for group in [shared, *per_frame]:
        position = _first(group, "PlanePositionSequence")
        if position is not None:
            orientation = _first(group, "PlaneOrientationSequence") or _first(shared, "PlaneOrientationSequence")
            measures = _first(group, "PixelMeasuresSequence") or _first(shared, "PixelMeasuresSequence")
            yield position, orientation, measures


def _shift_positions(ds: Dataset, sy: float, sx: float) -> None:
    """Image Position (Patient) is the centre of the first pixel: it moves half an old pixel less half a new one."""
    for position, orientation, measures in _frame_geometry(ds):
        where = position.get("ImagePositionPatient")
        cosines = orientation.get("ImageOrientationPatient") if orientation is not None else None
        spacing = measures.get("PixelSpacing") if measures is not None else None
        if not where or len(where) != 3 or not cosines or len(cosines) != 6 or not spacing or len(spacing) != 2:
            continue
        row_dir, col_dir = np.array(cosines[:3], dtype=float), np.array(cosines[3:], dtype=float)
        down = (0.5 / sy - 0.5) * float(spacing[0])  # along a column: from one row to the next
        across = (0.5 / sx - 0.5) * float(spacing[1])
        moved = np.array(where, dtype=float) + across * row_dir + down * col_dir
        position.ImagePositionPatient = [DS(float(v), auto_format=True) for v in moved]


def _scale_regions(ds: Dataset, sy: float, sx: float) -> None:
    """Ultrasound regions are given in pixels and mm per pixel: move them to the new grid."""
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        for keyword, s in (("RegionLocationMinX0", sx), ("RegionLocationMinY0", sy)):
            if keyword in region:
                region[keyword].value = int(region[keyword].value * s)
        for keyword, s in (("RegionLocationMaxX1", sx), ("RegionLocationMaxY1", sy)):
            if keyword in region:
                region[keyword].value = int(round((region[keyword].value + 1) * s)) - 1
        for keyword, s in (("ReferencePixelX0", sx), ("ReferencePixelY0", sy)):
            if keyword in region:
                region[keyword].value = int(round(region[keyword].value * s))
        for keyword, s in (("PhysicalDeltaX", sx), ("PhysicalDeltaY", sy)):
            if keyword in region:
                region[keyword].value = region[keyword].value / s


def _scale_overlays(ds: Dataset, sy: float, sx: float) -> None:
    """Overlay planes (groups 6000-601E) cover the image pixel for pixel: repeat their bits on the new grid.

    An overlay kept in the pixel data's unused high bits, or a non-integer scale, cannot follow: it is removed
    rather than left covering a corner of the new image.
    """
    groups = sorted({tag.group for tag in ds.keys() if 0x6000 <= tag.group <= 0x601E and tag.group % 2 == 0})
    whole = float(sy).is_integer() and float(sx).is_integer() and min(sy, sx) >= 1
    for group in groups:
        if whole and (group, 0x3000) in ds and (group, 0x0010) in ds and (group, 0x0011) in ds:
            ry, rx = int(sy), int(sx)
            bits = ds.overlay_array(group).repeat(ry, axis=-2).repeat(rx, axis=-1)
            ds[group, 0x3000].value = pack_bits(bits.ravel())
            ds[group, 0x0010].value, ds[group, 0x0011].value = bits.shape[-2], bits.shape[-1]
            if (group, 0x0050) in ds and len(ds[group, 0x0050].value) == 2:
                row, col = ds[group, 0x0050].value
                ds[group, 0x0050].value = [(row - 1) * ry + 1, (col - 1) * rx + 1]
            if (group, 0x1301) in ds and ds[group, 0x1301].value not in (None, ""):  # ROI Area, in pixels
                ds[group, 0x1301].value = int(ds[group, 0x1301].value) * ry * rx
        else:
            for tag in [tag for tag in ds.keys() if tag.group == group]:
                del ds[tag]

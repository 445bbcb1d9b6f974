"""The slices of one DICOM series: which series a slice belongs to, and the order a reader scrolls them in.

A PACS viewer stacks a series' slices by where they are in the patient: along the slice normal (the cross
product of ImageOrientationPatient's row and column directions), by ImagePositionPatient. Where positions are
missing or the slices are not parallel, InstanceNumber orders them, and where that is missing too, their names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def series_uid(dataset: Any) -> str:
    """A dataset's SeriesInstanceUID, "" where it has none (or no dataset)."""
    if dataset is None:
        return ""
    return str(dataset.get("SeriesInstanceUID", "") or "").strip()


def _floats(value: Any, count: int) -> np.ndarray | None:
    try:
        numbers = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return numbers if numbers.shape == (count,) and np.all(np.isfinite(numbers)) else None


def slice_position(dataset: Any) -> float | None:
    """Where a slice lies along its normal in mm (ImagePositionPatient . (row x column direction)), or None
    where the header lacks a usable position or orientation."""
    if dataset is None:
        return None
    position = _floats(dataset.get("ImagePositionPatient"), 3)
    orientation = _floats(dataset.get("ImageOrientationPatient"), 6)
    if position is None or orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    if not np.linalg.norm(normal) > 0:
        return None
    return float(np.dot(position, normal / np.linalg.norm(normal)))


def instance_number(dataset: Any) -> int | None:
    """A slice's InstanceNumber, or None."""
    try:
        return int(str(dataset.get("InstanceNumber")).strip())
    except (AttributeError, TypeError, ValueError):
        return None


def _parallel(datasets: Sequence[Any]) -> bool:
    orientations = [_floats(ds.get("ImageOrientationPatient"), 6) for ds in datasets]
    return all(o is not None and np.allclose(o, orientations[0], atol=1e-4) for o in orientations)


def slice_order(datasets: Sequence[Any], names: Sequence[str] | None = None) -> tuple[list[int], str]:
    """The indices of ``datasets`` (pydicom datasets of one series) in reading order, and what ordered them.

    By position along the slice normal when every slice has one and all are parallel (``"position"``; in the
    direction InstanceNumber runs where every slice has one, else from the normal's negative side), else by
    InstanceNumber when every slice has one (``"instance number"``), else by ``names`` (``"file name"``).
    Ties keep InstanceNumber, then name order.
    """
    names = list(names) if names is not None else [""] * len(datasets)
    numbers = [instance_number(ds) for ds in datasets]
    tie = [(n if n is not None else math.inf, name) for n, name in zip(numbers, names, strict=True)]
    positions = [slice_position(ds) for ds in datasets]
    if datasets and all(p is not None for p in positions) and _parallel(datasets):
        order = sorted(range(len(datasets)), key=lambda i: (positions[i], tie[i]))
        if all(n is not None for n in numbers) and numbers[order[0]] > numbers[order[-1]]:
            order = sorted(range(len(datasets)), key=lambda i: (-positions[i], tie[i]))  # as the scanner counted
        return order, "position"
    if datasets and all(n is not None for n in numbers):
        return sorted(range(len(datasets)), key=lambda i: tie[i]), "instance number"
    return sorted(range(len(datasets)), key=lambda i: names[i]), "file name"

"""Which bundled model suits a file: chosen from its DICOM Modality when the user names no model.

A CT slice run through the chest X-ray model comes out sharpened like a radiograph, which no CT reader wants;
an ultrasound frame should be widened along x only. So ``medsr upscale`` without ``--model`` reads each
DICOM's Modality (0008,0060) from its header and picks the bundled model trained for it, and with ``--model``
it warns when the model was trained for another modality. PNG/TIFF carry no modality: they get the chest
default unless ``--modality`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydicom

from medsr.errors import ConfigError
from medsr.infer.files import Source
from medsr.io.find import RASTER_SUFFIXES, has_dicom_marker
from medsr.models import DEFAULT_MODEL

MODALITY_MODELS: dict[str, str] = {
    "CT": "ct-sparse-view",
    "US": "ultrasound-lateral-x4",
    "CR": DEFAULT_MODEL,
    "DX": DEFAULT_MODEL,
}
"""DICOM Modality -> the bundled model trained for it (CR and DX are radiographs)."""

_BUNDLED_MODALITIES: dict[str, tuple[str, ...]] = {
    "xray-x4": ("CR", "DX"),
    "xray-x4-bicubic": ("CR", "DX"),
    "xray-x4-swift": ("CR", "DX"),
    "swift-srresnet-xray-x4": ("CR", "DX"),
    "swift-srgan-xray-x4": ("CR", "DX"),
    "ultrasound-lateral-x4": ("US",),
    "ct-sparse-view": ("CT",),
}


def file_modality(path: Any) -> str | None:
    """A DICOM file's Modality (upper case), read from its header only; None for rasters or when absent."""
    try:
        if not has_dicom_marker(path) and Path(path).suffix.lower() in RASTER_SUFFIXES:
            return None
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"], force=True)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the reader itself, with its reason
        return None
    value = str(header.get("Modality", "") or "").strip().upper()
    return value or None


def model_modalities(meta: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The modalities a model was trained for: its header's ``modality``, else the bundled table; () unknown."""
    meta = meta or {}
    if meta.get("modality"):
        return tuple(str(m).upper() for m in str(meta["modality"]).replace("/", ",").split(","))
    return _BUNDLED_MODALITIES.get(str(meta.get("name", "")), ())


def model_for_modality(modality: str | None) -> str:
    """The bundled model ``medsr upscale`` runs on a file of ``modality`` (a DICOM Modality, or ``--modality``)."""
    return MODALITY_MODELS.get((modality or "").strip().upper(), DEFAULT_MODEL)


def mismatch(modality: str | None, meta: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The modalities a model was trained for when ``modality`` is not among them, else () (also when either is
    unknown: a PNG, or a user's checkpoint without a modality in its header)."""
    trained = model_modalities(meta)
    found = (modality or "").strip().upper()
    return trained if found and trained and found not in trained else ()


def plan_models(
    sources: Sequence[Source], model: str | None, modality: str | None = None
) -> tuple[list[tuple[str | None, list[Source]]], list[str]]:
    """Group ``sources`` by the model each should run with; also the lines that say what was chosen.

    ``model`` given: one group, every file on it. Otherwise each file's modality (``modality`` for all, else
    its DICOM Modality) picks from :data:`MODALITY_MODELS`; files without a known one get the default.
    """
    if modality is not None and modality.upper() not in MODALITY_MODELS:
        raise ConfigError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITY_MODELS)}")
    if model is not None:
        return [(model, list(sources))], []
    groups: dict[str, list[Source]] = {}
    unmatched: dict[str, int] = {}
    for source in sources:
        found = modality.upper() if modality else file_modality(source.path)
        name = model_for_modality(found)
        if found and found not in MODALITY_MODELS:
            unmatched[found] = unmatched.get(found, 0) + 1
        groups.setdefault(name, []).append(source)
    notes = [f"model {name} for {len(group)} file(s)" for name, group in groups.items()] if len(groups) > 1 else []
    if len(groups) == 1 and next(iter(groups)) != DEFAULT_MODEL:
        notes.append(f"model {next(iter(groups))} (chosen from the modality; --model overrides)")
    notes += [f"no bundled model for modality {m} ({n} file(s)): using {DEFAULT_MODEL}" for m, n in unmatched.items()]
    return list(groups.items()), notes


def modality_warnings(sources: Sequence[Source], meta: Mapping[str, Any] | None, name: str) -> list[str]:
    """One line per file whose DICOM Modality differs from the modalities ``name`` was trained for."""
    lines = []
    for source in sources:
        found = file_modality(source.path)
        trained = mismatch(found, meta)
        if trained:
            lines.append(f"warning: {source.path}: DICOM Modality {found}, but model {name} was trained for "
                         f"{'/'.join(trained)}")
    return lines

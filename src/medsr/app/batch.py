"""Batch mode of the web app: several uploads (or a whole DICOM series) upscaled as ``medsr upscale`` does,
one result per file, and one zip to download.

The uploads are stored under their safe names in a private temporary folder and run through
:func:`medsr.infer.files.upscale_files`, so whole images are processed (no centre crop), each file keeps its
format, and the derived DICOMs of one input series share one new series (one SeriesInstanceUID). In the zip
each derived series is a folder of its own.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from PIL import Image

from medsr.app import fidelity
from medsr.app.logic import SETTINGS, upload_name
from medsr.infer import InferenceSettings
from medsr.infer.files import Outcome, Source, upscale_files
from medsr.infer.modality import MODALITY_MODELS, file_modality, model_modalities
from medsr.models import load_model, model_name


@dataclass
class BatchRow:
    """What happened to one uploaded file, for the page's table."""

    file: str
    status: str
    size: str = ""
    seconds: float = 0.0
    archived_as: str = ""
    model: str = ""


@dataclass
class BatchResult:
    """All rows, in upload order, the zip of every written result, and notes for the page."""

    rows: list[BatchRow]
    zip_bytes: bytes
    written: int
    notes: list[str] = field(default_factory=list)


def upload_folder(name: str) -> str:
    """The folder part of an uploaded file's name (a folder upload names files by their path below it), made
    safe (each part through :func:`medsr.app.logic.upload_name`); "" for a plain file."""
    parts = str(name).replace("\\", "/").split("/")[:-1]
    safe = [upload_name(p) for p in parts if p.strip(" .")]
    return "/".join(safe)


def unique_names(names: Sequence[str]) -> list[str]:
    """Safe names (:func:`upload_folder` / :func:`medsr.app.logic.upload_name`), with ``-2``, ``-3``... added to
    repeats."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        folder = upload_folder(name)
        safe = (f"{folder}/" if folder else "") + upload_name(name)
        stem, dot, suffix = safe.rpartition(".")
        if not dot:
            stem, suffix = safe, ""
        candidate, n = safe, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem}-{n}.{suffix}" if suffix else f"{stem}-{n}"
        seen[candidate.lower()] = 1
        out.append(candidate)
    return out


def pixel_count(data: bytes) -> int:
    """Pixels (frames and colour samples included) of an uploaded file, from its header only; 0 if unknown.

    For the run-time estimate before a batch: reading headers costs milliseconds, decoding whole files not.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * frames * int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except Exception:  # not a DICOM: try the raster readers' header
        pass
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.width * im.height * (3 if im.mode in ("RGB", "RGBA", "P", "YCbCr") else 1)
    except Exception:  # unreadable: the batch itself will say why
        return 0


def lacks_series_uid(data: bytes) -> bool:
    """Whether an uploaded file is a DICOM without a SeriesInstanceUID (header only)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    except Exception:  # not a DICOM
        return False
    return not str(ds.get("SeriesInstanceUID", "") or "").strip()


def series_folder(path: Path) -> str:
    """The zip folder of a derived DICOM: its series (number, description, end of the UID), else ""."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not a DICOM (PNG, TIFF results): no folder
        return ""
    uid = str(getattr(ds, "SeriesInstanceUID", ""))
    number = str(getattr(ds, "SeriesNumber", "") or "")
    description = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(getattr(ds, "SeriesDescription",
                                                                                         "") or ""))[:40]
    parts = [p for p in ("series", number, description, uid.rsplit(".", 1)[-1][-8:]) if p]
    return "_".join(parts)


def model_for_file(path: Path, model: Any, device: str = "cpu") -> Any:
    """``model``, or the bundled model for the file's DICOM Modality when ``model`` was trained for another.

    As ``medsr upscale`` chooses without ``--model``: a CT slice gets ``ct-sparse-view`` and an ultrasound frame
    ``ultrasound-lateral-x4`` even when a chest model is selected. A model whose modalities are unknown (a
    user's checkpoint without one in its header) is the user's choice and is kept, as are rasters.
    """
    found = file_modality(path)
    trained = model_modalities(getattr(model, "meta", None))
    if found in MODALITY_MODELS and trained and found not in trained:
        return load_model(MODALITY_MODELS[found], device)
    return model


def run_batch(
    files: Sequence[tuple[str, bytes]],
    model: Any,
    *,
    fmt: str | None = None,
    on_file: Callable[[int, int, BatchRow], None] | None = None,
    by_modality: bool = False,
    device: str = "cpu",
    settings: InferenceSettings = SETTINGS,
) -> BatchResult:
    """Upscale every ``(name, bytes)`` upload with ``model``; ``on_file(done, total, row)`` after each file.

    ``fmt``: output format (``None`` keeps each input's, JPEG becomes PNG; ``"tiff"``, ``"png"``, ``"dcm"``).
    ``by_modality``: DICOM files get the bundled model of their Modality (:func:`model_for_file`, on
    ``device``); files are then run one model at a time, and rows keep upload order. A file that cannot be
    read or written is one row with its reason; the others go on. ``settings``: those of ``medsr upscale`` by
    default (the Faint findings choice changes them; a model chosen by modality gets them as
    :func:`medsr.app.fidelity.for_other_model` says, with a note).
    """
    names = unique_names([name for name, _ in files])
    buffer = io.BytesIO()
    written = 0
    with tempfile.TemporaryDirectory(prefix="medsr-app-batch-") as folder:
        inbox, outbox = Path(folder) / "in", Path(folder) / "out"
        inbox.mkdir()
        sources = []
        for name, (_, data) in zip(names, files, strict=True):
            (inbox / name).parent.mkdir(parents=True, exist_ok=True)
            (inbox / name).write_bytes(data)
            sources.append(Source(inbox / name, Path(name)))
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, source in enumerate(sources):
            chosen = model_for_file(source.path, model, device) if by_modality else model
            groups.setdefault(id(chosen), (chosen, []))[1].append(index)
        by_index: dict[int, BatchRow] = {}
        notes = []
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for chosen, indices in groups.values():
                used, note = (settings, "") if chosen is model else fidelity.for_other_model(
                    settings, chosen, model_name(chosen))
                notes += [note] if note else []
                outcomes = upscale_files([sources[i] for i in indices], outbox, chosen, fmt=fmt, settings=used)
                for index, outcome in zip(indices, outcomes, strict=True):
                    row = _row(outcome, names[index])
                    row.model = model_name(chosen)
                    if outcome.target is not None and outcome.target.is_file():
                        folder_name = series_folder(outcome.target)
                        row.archived_as = (f"{folder_name}/{outcome.target.name}" if folder_name
                                           else outcome.target.relative_to(outbox).as_posix())
                        archive.write(outcome.target, row.archived_as)
                        written += 1
                    by_index[index] = row
                    if on_file is not None:
                        on_file(len(by_index), len(sources), row)
        rows = [by_index[i] for i in range(len(sources))]
    no_uid = [name for name, (_, data) in zip(names, files, strict=True) if lacks_series_uid(data)]
    if no_uid:
        folders = sorted({upload_folder(n) or "the upload" for n in no_uid})
        notes.append(f"{len(no_uid)} DICOM file(s) have no SeriesInstanceUID: they are grouped by folder "
                     f"({', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}), one derived series each.")
    return BatchResult(rows, buffer.getvalue(), written, notes)


def _row(outcome: Outcome, name: str) -> BatchRow:
    if outcome.error is not None:
        return BatchRow(name, f"skipped: {outcome.error}")
    (w, h), (ow, oh) = outcome.in_size or (0, 0), outcome.out_size or (0, 0)
    frames = f", {outcome.frames} frames" if outcome.frames > 1 else ""
    return BatchRow(name, "done", f"{w} x {h} -> {ow} x {oh}{frames}", round(outcome.seconds, 2))
